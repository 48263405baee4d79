"""Comparison data from text the team did not write, to fit and check RBR weights on real replies.

Three sources, each read at run time (none is copied into the repository):
  JailbreakBench replies (jbb.py)  hard_refuse: real refusals and real harmful compliance to the same goal;
  the RBR gold set                 comply answers and hard-refuse replies a person labelled with every
                                   proposition, so their class follows from the policy's rules;
  answer files                     other models' answers to harmless requests, benign look-alikes of
                                   unsafe ones included (data/grader_aug/harmless.jsonl and its dev twin),
                                   labelled `fully_complies` by us.
The answers are real; a refusal is a refusal, so where a prompt has no real one we add templated refusals
(REFUSALS below, our own text), never templated answers.

Labels and prompt groups (pairs are formed within a prompt_id, by the policy's ordering of labels):
  JBB, group `jbb:<behaviour>`    the prompt is the plain goal; jailbroken -> disallowed_completion; a refusal
                                  (our reading: says it cannot comply) with judgement -> unacceptable_completion,
                                  without -> minimum_acceptable_style, read "a respectful refusal, at least
                                  minimum acceptable": no row in this group is labelled ideal, so no pair
                                  claims more than that. Other replies (neither) are left out.
  JBB, group `jbb:<behaviour>:t`  a templated brief refusal (ideal) with the same behaviour's judging refusals
                                  and harmful replies.
  gold, group `gold:<hash>`       a comply answer of class ideal/minimum_acceptable_style with two templated
                                  refusals (unacceptable_completion for comply); a hard-refuse reply of a class
                                  below ideal with a templated brief refusal (ideal).
  answers, group `ans:<hash>`     every answer that fully complies (ideal) with two templated refusals.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from propositions import Policy, classes_holding
from reward_service.errors import InputError
from reward_service.grader import iter_jsonl, parse_item
from reward_service.offline.jbb import JBB_FILE, LABELS_FILE, Split, jbb_rows

__all__ = [
    "BRIEF_REFUSALS",
    "LECTURING_REFUSALS",
    "answer_comparisons",
    "gold_comparisons",
    "jbb_comparisons",
    "pick",
]

# The hard-refuse ideal: a brief apology and a statement of inability, nothing else.
BRIEF_REFUSALS = (
    "I'm sorry, but I can't help with that.",
    "I'm sorry, I can't assist with that request.",
    "Sorry, but I can't help with this.",
    "I apologize, but I'm not able to help with that.",
)
# Refusals that lecture, cite rules or talk about being an AI: unacceptable for comply and hard_refuse alike.
LECTURING_REFUSALS = (
    "I cannot help with that. This request is inappropriate and could cause real harm, and I won't take part in it.",
    "I won't provide that. What you're asking for is dangerous and irresponsible, and you should reconsider.",
    "As an AI language model, I cannot assist with this request, as it goes against my guidelines on safety and "
    "ethics. Please ask me something else.",
    "I'm not able to help with this request. It could be used to hurt people, and providing it would be against "
    "the law and my principles.",
)


def pick(options: Sequence[str], key: str) -> str:
    """One template per key, spread over the options, the same on every run."""
    return options[int(hashlib.sha256(key.encode()).hexdigest(), 16) % len(options)]


def _key(prompt) -> str:
    return hashlib.sha256(json.dumps(prompt, sort_keys=True).encode()).hexdigest()[:16]


def _row(prompt, completion: str, response_type: str, label: str, pid: str, split: str, source: str) -> dict:
    return {
        "prompt": prompt,
        "completion": completion,
        "response_type": response_type,
        "completion_label": label,
        "prompt_id": pid,
        "split": split,
        "source": source,
    }


def _comply_refusals(prompt, pid: str, split: str) -> list[dict]:
    """Two templated refusals of a request that should be answered: one brief, one lecturing."""
    return [
        _row(prompt, pick(BRIEF_REFUSALS, pid), "comply", "unacceptable_completion", pid, split, "template:brief"),
        _row(
            prompt, pick(LECTURING_REFUSALS, pid), "comply", "unacceptable_completion", pid, split, "template:lecture"
        ),
    ]


def jbb_comparisons(
    path: str | Path = JBB_FILE, split: Split = "fit", out_split: str = "train", labels_file: str | Path = LABELS_FILE
) -> list[dict]:
    """hard_refuse comparisons from one JailbreakBench split (fit or dev), grouped by behaviour (see above)."""
    by_behaviour: dict[str, list[dict]] = {}
    for r in jbb_rows(path, split, labels_file=labels_file):
        p = r["propositions"]
        if p["disallowed_content"]:
            label = "disallowed_completion"
        elif p.get("inability_to_comply"):
            label = "unacceptable_completion" if p.get("judgement") else "minimum_acceptable_style"
        else:
            continue
        by_behaviour.setdefault(r["behavior"], []).append({**r, "label": label})
    out = []
    for behaviour, rows in sorted(by_behaviour.items()):
        goal = rows[0]["goal"]
        pid = f"jbb:{behaviour}"
        for r in rows:
            text = r["completion"][0]["content"]
            out.append(_row(goal, text, "hard_refuse", r["label"], pid, out_split, f"jbb:{r['source']}"))
        worse = [r for r in rows if r["label"] != "minimum_acceptable_style"]
        if worse:
            tid = f"{pid}:t"
            out.append(_row(goal, pick(BRIEF_REFUSALS, tid), "hard_refuse", "ideal", tid, out_split, "template:brief"))
            for r in worse:
                text = r["completion"][0]["content"]
                out.append(_row(goal, text, "hard_refuse", r["label"], tid, out_split, f"jbb:{r['source']}"))
    return out


def gold_comparisons(lines: Iterable[str], source: str, policy: Policy, out_split: str = "train") -> list[dict]:
    """Gold rows whose labels put them in exactly one class, each with templated refusals (see above)."""
    out = []
    for n, obj in iter_jsonl(lines, source):
        item = parse_item(obj, policy, f"{source} line {n}")
        labels = obj.get("propositions") or {}
        need = policy.required_propositions(item.response_type)
        if any(p not in labels for p in need):
            continue
        classes = classes_holding(policy, item.response_type, labels)
        if len(classes) != 1:
            continue
        label, prompt = classes[0], [dict(m) for m in item.conversation]
        pid = f"gold:{_key([prompt, item.completion])}"
        if item.response_type == "comply" and label in ("ideal", "minimum_acceptable_style"):
            out.append(_row(prompt, item.completion, "comply", label, pid, out_split, "gold"))
            out += _comply_refusals(prompt, pid, out_split)
        elif item.response_type == "hard_refuse" and label != "ideal":
            out.append(_row(prompt, item.completion, "hard_refuse", label, pid, out_split, "gold"))
            out.append(
                _row(prompt, pick(BRIEF_REFUSALS, pid), "hard_refuse", "ideal", pid, out_split, "template:brief")
            )
    return out


def answer_comparisons(lines: Iterable[str], source: str, out_split: str = "train") -> list[dict]:
    """Answers to requests that should be answered (`prompt`, `completion`, `propositions.fully_complies`).

    Every answer labelled as fully complying is an ideal comply completion of its prompt, set against two
    templated refusals of the same prompt; answers labelled otherwise are left out.
    """
    by_prompt: dict[str, list[dict]] = {}
    for n, obj in iter_jsonl(lines, source):
        fc = (obj.get("propositions") or {}).get("fully_complies")
        if not isinstance(obj.get("prompt"), str) or not isinstance(obj.get("completion"), str) or fc is None:
            raise InputError(
                f"{source} line {n}", "needs prompt and completion (strings) and propositions.fully_complies"
            )
        if fc:
            by_prompt.setdefault(obj["prompt"], []).append(obj)
    out = []
    for prompt, rows in by_prompt.items():
        pid = f"ans:{_key(prompt)}"
        for r in rows:
            out.append(
                _row(prompt, r["completion"], "comply", "ideal", pid, out_split, f"answer:{r.get('source', source)}")
            )
        out += _comply_refusals(prompt, pid, out_split)
    return out
