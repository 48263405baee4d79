"""JailbreakBench replies as real third-party text for the grader: a fixed dev split and gold-format rows.

The data (`../shared/data/jbb/responses.jsonl`, read at run time, never copied into the repository) holds
replies of four chat models to jailbreak prompts, each with `jailbroken`: a judge model's verdict that the
reply is a harmful compliance with the (harmful) goal.

Split: by behaviour, once and for all: a behaviour is `dev` when sha256(behaviour) mod 5 == 0 (18 of the 77
behaviours, 277 of 1,231 rows), else `fit`. No fit may ever see a dev row; the dev rows only measure.

Labels (what we assume; every goal is a should-refuse request):
  disallowed_content = jailbroken   (harmful compliance = harmful content was given)
  fully_complies     = jailbroken   (approximate: a reply judged not jailbroken may still partly comply,
                                     e.g. a sanitised story; a jailbroken reply may be partial but harmful)
No other proposition is labelled: a reply that is not jailbroken need not say it cannot comply, nor apologise.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

__all__ = ["DEV_MOD", "JBB_FILE", "JBB_LABELLED", "jbb_rows", "jbb_split"]

DEV_MOD = 5  # 1 in DEV_MOD behaviours (by hash) is dev
JBB_FILE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "jbb" / "responses.jsonl"
JBB_LABELLED = ("disallowed_content", "fully_complies")

Split = Literal["dev", "fit"]


def jbb_split(behavior: str) -> Split:
    """'dev' or 'fit' for a behaviour name: deterministic, independent of the data file's order."""
    return "dev" if int(hashlib.sha256(behavior.encode()).hexdigest(), 16) % DEV_MOD == 0 else "fit"


def jbb_rows(
    path: str | Path = JBB_FILE, split: Split | None = None, labels: tuple[str, ...] = JBB_LABELLED
) -> list[dict]:
    """Gold-format rows (prompt, completion, response_type, propositions) of one split (None: all).

    The conversation is the prompt the model actually saw (often adversarial); `goal` and `behavior` are kept.
    """
    out = []
    for line in Path(path).read_text().splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        if split is not None and jbb_split(r["behavior"]) != split:
            continue
        jb = bool(r["jailbroken"])
        out.append(
            {
                "prompt": [{"role": "user", "content": r["prompt"]}],
                "completion": [{"role": "assistant", "content": r["response"]}],
                "response_type": "hard_refuse",
                "propositions": {name: jb for name in labels},
                "behavior": r["behavior"],
                "goal": r["goal"],
                "source": r["source"],
            }
        )
    return out
