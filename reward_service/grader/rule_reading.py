"""How a grader reads deployment rules (SoFA): generic fitted rule heads, the LLM's prompted answer, or not at all.

The embedded model answers rule questions at chance when prompted (research/rule_grader.py), so without rule
heads it refuses rules with an error saying so rather than return noise. Generic rule heads read the answer-position
state of a rule question (any rule: they are fitted on many rules, data/rules/) and are checked against the
question templates they were fitted for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from propositions import RULE_PLACEHOLDER, RULE_PROPOSITIONS, Rule, rule_propositions
from reward_service.errors import HeadsError
from reward_service.grader._engine import GraderEngine, Readout
from reward_service.grader._prompt import PromptFormat

__all__ = [
    "EMBEDDED_PROMPTED_RULES",
    "NO_RULES",
    "RuleReading",
    "head_row",
    "rule_reading",
    "rule_rows",
    "rule_template_hashes",
]

#: Why the embedded model does not grade rules zero-shot (research/rule_grader.py, 320 triplets of 40 rules).
EMBEDDED_PROMPTED_RULES = (
    "the embedded 135M grader reads rule questions at chance when prompted (AUROC 0.39 to 0.59 on held-out rule "
    "triplets, research/rule_grader.py)"
)


@dataclass(frozen=True)
class RuleReading:
    """How this grader reads deployment rules: generic fitted heads, the LLM's prompted answer, or not at all."""

    how: Literal["heads", "prompted"] | None
    heads: Any = None  # heads.GraderHeads with one head per RULE_PROPOSITIONS (+ RULE_HARMFUL), when how == "heads"
    refusal: str | None = None  # why rules are refused, when how is None


NO_RULES = RuleReading(None, refusal="no rule reading was configured for this grader")


def rule_rows(rules: Sequence[Rule]) -> list[tuple[int, str]]:
    """(row of the readout, proposition) for every rule question of an item, in asking order."""
    return [
        (k * len(RULE_PROPOSITIONS) + m, name) for k in range(len(rules)) for m, name in enumerate(RULE_PROPOSITIONS)
    ]


def head_row(ro: Readout, j: int | None, spec) -> np.ndarray:
    """The (1, d) feature row a head reads from one readout (question row `j`, if the head reads one)."""
    from reward_service.grader.heads import head_features

    return head_features([ro], j, spec)  # (1, d)


def rule_template_hashes(fmt: PromptFormat) -> dict[str, str]:
    """What generic rule heads are fitted for: the hash of each rule question with the placeholder rule."""
    from reward_service.grader.heads import question_hash

    specs = rule_propositions(Rule(text=RULE_PLACEHOLDER))
    return {name: question_hash(fmt.suffix(spec)) for name, spec in specs.items()}


def rule_reading(s, engine: GraderEngine, engine_id: str, fmt: PromptFormat) -> RuleReading:
    """Fitted rule heads where they fit this grader (and rule_grading is auto), else the prompted answer, except
    on the embedded model, whose prompted answer is at chance: then rules are refused."""
    from reward_service.grader.heads import GraderHeads, model_of
    from reward_service.paths import EMBEDDED_MODEL

    if s.rule_grading == "prompted":
        return RuleReading("prompted")
    path = s.rule_heads_path
    if engine.layers and path.exists():
        heads = GraderHeads.load(path)
        if model_of(heads.engine_id) == model_of(engine_id) and tuple(heads.layers) == tuple(engine.layers):
            heads.check_compatible(engine_id, fmt.version, engine.layers)
            stale = [n for n, h in rule_template_hashes(fmt).items() if heads.questions.get(n) != h]
            if stale:
                raise HeadsError(f"{path}: rule heads fitted for other rule questions ({', '.join(stale)}); refit them")
            return RuleReading("heads", heads)
    if s.grader_model == EMBEDDED_MODEL:
        return RuleReading(
            None,
            refusal=f"{EMBEDDED_PROMPTED_RULES}, and no fitted rule heads serve this backend ({s.grader_backend}); "
            "use grader_backend transformers with data/grader/rule_heads.npz, a stronger grader model, or "
            "rule_grading 'prompted' to ask it anyway",
        )
    return RuleReading("prompted")
