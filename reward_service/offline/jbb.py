"""JailbreakBench replies as real third-party text for the grader: a fixed dev split and gold-format rows.

The data (`../shared/data/jbb/responses.jsonl`, read at run time, never copied into the repository) holds
replies of four chat models to jailbreak prompts, each with `jailbroken`: a judge model's verdict that the
reply is a harmful compliance with the (harmful) goal.

Split: by behaviour, once and for all: a behaviour is `dev` when sha256(behaviour) mod 5 == 0 (18 of the 77
behaviours, 277 of 1,231 rows), else `fit`. No fit may ever see a dev row; the dev rows only measure.

Labels:
  disallowed_content = jailbroken   (every goal is a should-refuse request: harmful compliance = harmful content
                                     was given; the benchmark's own judge)
  fully_complies     = our reading (`data/jbb_labels.jsonl`, keyed by `jbb_id`; the rule: `data/jbb_labels.md`):
                       full compliance, a direct attempt at the request however generic, declining none of it,
                       harmful or not. `jailbroken` is not that: a sanitised but complete treatment plan is not
                       jailbroken and complies; a reply that debunks the claim it was asked to argue is neither.
                       Rows we have not labelled (another file) carry no `fully_complies` label.
  apology, inability_to_comply, judgement
                     = our reading too (same file; the default policy's questions; data/jbb_labels.md).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from reward_service.paths import DATA_DIR

__all__ = ["DEV_MOD", "JBB_FILE", "JBB_LABELLED", "LABELS_FILE", "jbb_id", "jbb_rows", "jbb_split"]

DEV_MOD = 5  # 1 in DEV_MOD behaviours (by hash) is dev
JBB_FILE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "jbb" / "responses.jsonl"
JBB_LABELLED = ("disallowed_content", "fully_complies", "apology", "inability_to_comply", "judgement")
LABELS_FILE = DATA_DIR / "jbb_labels.jsonl"  # our reading of four propositions, data/jbb_labels.md

Split = Literal["dev", "fit"]


def jbb_split(behavior: str) -> Split:
    """'dev' or 'fit' for a behaviour name: deterministic, independent of the data file's order."""
    return "dev" if int(hashlib.sha256(behavior.encode()).hexdigest(), 16) % DEV_MOD == 0 else "fit"


def jbb_id(prompt: str, response: str) -> str:
    """A row's key in `data/jbb_labels.jsonl`: 16 hex digits of sha256(prompt NUL response); no text is stored."""
    return hashlib.sha256(f"{prompt}\0{response}".encode()).hexdigest()[:16]


def _our_labels(path: str | Path) -> dict[str, dict[str, bool]]:
    """{jbb_id: {proposition: label}} from our labels file; a missing file is an error, never "no labels"."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as e:
        raise FileNotFoundError(f"JBB labels file {path}: cannot read ({e.strerror or e})") from None
    return {r["id"]: {k: bool(v) for k, v in r.items() if k != "id"} for r in map(json.loads, filter(str.strip, lines))}


def jbb_rows(
    path: str | Path = JBB_FILE,
    split: Split | None = None,
    labels: tuple[str, ...] = JBB_LABELLED,
    labels_file: str | Path | None = LABELS_FILE,
) -> list[dict]:
    """Gold-format rows (prompt, completion, response_type, propositions) of one split (None: all).

    The conversation is the prompt the model actually saw (often adversarial); `goal` and `behavior` are kept.
    `labels_file=None` labels `fully_complies` = jailbroken, the proxy used before our labels (for before/after).
    """
    ours = _our_labels(labels_file) if labels_file is not None else {}
    out = []
    for line in Path(path).read_text().splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        if split is not None and jbb_split(r["behavior"]) != split:
            continue
        jb = bool(r["jailbroken"])
        props = {"disallowed_content": jb, "fully_complies": jb} if labels_file is None else {"disallowed_content": jb}
        props |= ours.get(jbb_id(r["prompt"], r["response"]), {})
        out.append(
            {
                "prompt": [{"role": "user", "content": r["prompt"]}],
                "completion": [{"role": "assistant", "content": r["response"]}],
                "response_type": "hard_refuse",
                "propositions": {k: v for k, v in props.items() if k in labels},
                "behavior": r["behavior"],
                "goal": r["goal"],
                "source": r["source"],
            }
        )
    return out
