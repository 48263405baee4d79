"""A warm-start mixture for supervised fine-tuning: the policy's behaviour, shown on text we can defend.

Rows (JSON lines): `prompt` (messages), `completion` (the assistant's reply), `response_type`, `source`.
  hard_refuse   our training prompts (`--prompts`, response type hard_refuse) and the gold set's hard-refuse
                conversations, each answered with a real brief refusal: a JailbreakBench reply our readers
                labelled apology + inability, no judgement, no harmful content, under 160 characters (these are
                generic: "I'm sorry, but I can't fulfill this request."), picked per prompt, never the reply to
                that prompt; the JailbreakBench goals themselves are not used as prompts (they are eval prompts)
  safe_refuse_* the gold set's self-harm conversations whose human labels put the reply in the class `ideal`
                or `minimum_acceptable_style`, with that reply
  comply        the gold set's comply conversations whose labelled reply is `ideal` or
                `minimum_acceptable_style`, with that reply; and answers to harmless requests (`--answers`,
                e.g. data/grader_aug/harmless.jsonl) labelled as fully complying, from the sources named
No text is written here: every completion is a third-party reply. Read at run time from `../shared` and the
files given; the output goes wherever the user says (never into `data/`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from propositions import Policy, classes_holding
from reward_service.grader import iter_jsonl, parse_item
from reward_service.offline.comparisons import pick
from reward_service.offline.jbb import JBB_FILE, LABELS_FILE, jbb_rows

__all__ = ["answer_rows", "brief_refusals", "gold_rows", "hard_refuse_prompts", "refusal_rows"]

MAX_REFUSAL_CHARS = 160
GOOD = ("ideal", "minimum_acceptable_style")


def _row(prompt: list[dict], completion: str, response_type: str, source: str) -> dict:
    return {"prompt": prompt, "completion": completion, "response_type": response_type, "source": source}


def brief_refusals(path: str | Path = JBB_FILE, labels_file: str | Path = LABELS_FILE) -> list[str]:
    """Distinct real brief refusals of the JailbreakBench fit split (see the module docstring), sorted."""
    out = set()
    for r in jbb_rows(path, "fit", labels_file=labels_file):
        p, text = r["propositions"], r["completion"][0]["content"].strip()
        if p.get("apology") and p.get("inability_to_comply") and not p.get("judgement"):
            if not p["disallowed_content"] and len(text) < MAX_REFUSAL_CHARS:
                out.add(text)
    return sorted(out)


def refusal_rows(prompts: Iterable[list[dict]], refusals: Sequence[str], source: str) -> list[dict]:
    """Each hard-refuse prompt answered with one of `refusals`, the same one on every run."""
    if not refusals:
        raise ValueError("no brief refusals to answer hard-refuse prompts with")
    return [_row(p, pick(refusals, json.dumps(p)), "hard_refuse", f"{source}+jbb-refusal") for p in prompts]


def gold_rows(lines: Iterable[str], source: str, policy: Policy) -> tuple[list[dict], list[list[dict]]]:
    """(comply and self-harm rows whose labelled reply is of a good class, the hard-refuse conversations)."""
    rows, hard = [], []
    for n, obj in iter_jsonl(lines, source):
        item = parse_item(obj, policy, f"{source} line {n}")
        prompt = [dict(m) for m in item.conversation]
        if item.response_type == "hard_refuse":
            hard.append(prompt)
            continue
        labels = obj.get("propositions") or {}
        if all(p in labels for p in policy.required_propositions(item.response_type)):
            classes = classes_holding(policy, item.response_type, labels)
            if len(classes) == 1 and classes[0] in GOOD:
                rows.append(_row(prompt, item.completion, item.response_type, "gold"))
    return rows, hard


def hard_refuse_prompts(lines: Iterable[str], source: str, policy: Policy, split: str | None) -> list[list[dict]]:
    """The hard-refuse prompts of a seed-prompts file (`prompt`, `category` | `response_type`, `split`)."""
    out = []
    for n, obj in iter_jsonl(lines, source):
        item = parse_item({**obj, "completion": ""}, policy, f"{source} line {n}")
        if item.response_type == "hard_refuse" and (split is None or obj.get("split") == split):
            out.append([dict(m) for m in item.conversation])
    return out


def answer_rows(lines: Iterable[str], source: str, sources: Sequence[str] | None = None) -> list[dict]:
    """Fully complying answers to harmless requests (`prompt`, `completion`, `propositions.fully_complies`)."""
    out = []
    for _, obj in iter_jsonl(lines, source):
        if (obj.get("propositions") or {}).get("fully_complies") and (sources is None or obj.get("source") in sources):
            prompt = [{"role": "user", "content": obj["prompt"]}]
            out.append(_row(prompt, obj["completion"], "comply", f"answer:{obj.get('source', source)}"))
    return out
