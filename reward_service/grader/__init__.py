"""The grader: (conversation, completion, response type) x proposition names -> P(yes).

_grader.py         the Grader: readouts of the grader LLM (cached), probabilities, categories, rules
_modes.py          how a readout becomes P(yes), one reader per mode (prompted, calibrated, heads)
_engine.py         the transformers engine (one prefix forward, question suffixes on its KV cache)
_logprob_engines.py  the vLLM and OpenAI-compatible engines (prompted and calibrated modes)
_prompt.py         the grader prompt and its token layout; items.py what an item is and its validation
heads.py, categories.py, rule_reading.py   fitted read-outs: proposition heads, prompt classifier, rule heads
"""

from __future__ import annotations

from reward_service.config import MODES, Mode
from reward_service.grader._grader import READOUT_CHUNK, Grader
from reward_service.grader.items import GradeItem, ItemLimits, iter_jsonl, parse_item
from reward_service.grader.rule_reading import RuleReading, rule_template_hashes

__all__ = [
    "MODES",
    "READOUT_CHUNK",
    "GradeItem",
    "Grader",
    "ItemLimits",
    "Mode",
    "RuleReading",
    "iter_jsonl",
    "parse_item",
    "rule_template_hashes",
]
