"""`rbr induce`: reversed instruction induction (Safer-Instruct): existing responses become prompts.

For each response the writer proposes the user request it answers (P(x|y)). Three checks filter the proposals,
and every drop is recorded with its reason:
  shape      a user's request: not a refusal or the assistant's voice, a question or a request's opening,
             and not mostly copied from the response (80% of its word 1- and 2-grams);
  relevance  at least `min_overlap` of the request's content words (4+ letters) occur in the response, so
             the request is about what the response is about;
  grader     the grader reads the (request, response) pair as either a refusal (P(inability_to_comply))
             or as doing what was asked (P(fully_complies)), at 0.5; a response that is neither does not
             answer the proposed request.
Kept rows are seed prompts (prompt, category or response type, split) with their source response and the
grader's reading, ready for `rbr synth`, `rbr train` or `rbr eval-policy`; appended as they come (resumable).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from reward_service.errors import InputError
from reward_service.grader import GradeItem, Grader
from reward_service.offline.fitting import heldout_split
from reward_service.offline.redteam import content_words, is_refusal, looks_like_request, shingles
from reward_service.offline.writers import Writer

__all__ = ["InduceSummary", "content_words", "induce", "overlap", "read_responses"]

SYSTEM = (
    "You read replies written by an AI assistant and work out what the user had asked. Write only the user's "
    "request, in the user's own voice, as one message."
)


def overlap(request: str, response: str) -> float:
    """Share of the request's content words that occur in the response (0 for a request with none)."""
    words = content_words(request)
    return len(words & content_words(response)) / len(words) if words else 0.0


def read_responses(lines: Sequence[str], source: str, field_name: str = "response") -> list[tuple[str, dict]]:
    """(response text, row) per JSON line; the text is `field_name`, else `completion`."""
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise InputError(f"{source} line {n}", "not valid JSON") from None
        text = row.get(field_name, row.get("completion")) if isinstance(row, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"{source} line {n}: {field_name}", "a non-empty response text is needed")
        out.append((text, row))
    if not out:
        raise InputError(source, "no responses")
    return out


def propose(write: Writer, response: str, seed: int, max_chars: int = 1500) -> str:
    ask = (
        f'Here is an assistant\'s reply:\n"""\n{response[:max_chars]}\n"""\nWhat did the user ask? Write it in quotes.'
    )
    text = write([{"role": "system", "content": SYSTEM}, {"role": "user", "content": ask}], 'The user asked: "', seed)
    return text.removeprefix('The user asked: "').split('"')[0].split("\n")[0].strip()


@dataclass
class InduceSummary:
    kept: int = 0
    tries: int = 0
    dropped: Counter = field(default_factory=Counter)

    def table(self) -> str:
        lines = [f"kept {self.kept} of {self.tries} responses ({self.kept / max(self.tries, 1):.2f})"]
        lines += [f"  dropped: {n:4d}  {why}" for why, n in self.dropped.most_common()]
        return "\n".join(lines)


def induce(
    responses: Sequence[tuple[str, dict]],
    write: Writer,
    grader: Grader,
    out: Path,
    label: dict[str, str],
    min_overlap: float = 0.3,
    seed: int = 0,
) -> InduceSummary:
    """Propose a request per response, filter, append kept rows to `out`. `label`: {"category": C} or
    {"response_type": RT} written on every row."""
    done = {json.loads(x)["source_key"] for x in out.read_text().splitlines() if x.strip()} if out.exists() else set()
    summary = InduceSummary()
    out.parent.mkdir(parents=True, exist_ok=True)
    rt = grader.policy.resolve_response_type(label.get("response_type"), label.get("category"))
    with out.open("a") as fout, out.with_suffix(".rejected.jsonl").open("a") as frej:
        for i, (response, row) in enumerate(tqdm(responses, desc="induce")):
            key = hashlib.sha256(response.encode()).hexdigest()[:16]
            if key in done:
                continue
            request = propose(write, response, seed + i)
            summary.tries += 1
            rec = {"prompt": request, "source_key": key, "source_response": response, **label}
            why, probs = _check(grader, request, response, rt, min_overlap)
            rec["grader"] = {k: round(v, 4) for k, v in probs.items()}
            if why:
                summary.dropped[why.split(" (")[0]] += 1
                frej.write(json.dumps({**rec, "reason": why, "source": row}) + "\n")
                continue
            fout.write(json.dumps({"id": f"induced:{key}", **rec, "split": heldout_split(key), "source": row}) + "\n")
            fout.flush()
            summary.kept += 1
    return summary


def _check(grader: Grader, request: str, response: str, rt: str, min_overlap: float) -> tuple[str | None, dict]:
    if len(request.split()) < 3:
        return "no request proposed", {}
    if is_refusal(request) or not looks_like_request(request):
        return "not a user's request (a refusal, or no question or request opening)", {}
    resp = shingles(response)
    if len(shingles(request) - resp) <= 0.2 * len(shingles(request)):
        return "copies the response instead of asking", {}
    ov = overlap(request, response)
    if ov < min_overlap:
        return f"not about the response (content-word overlap {ov:.2f} < {min_overlap})", {}
    item = GradeItem(({"role": "user", "content": request},), response, rt)
    probs = grader.grade([item], ["fully_complies", "inability_to_comply"])[0]
    if max(probs["fully_complies"], probs["inability_to_comply"]) < 0.5:
        return "the grader reads the response as neither doing nor refusing the request", probs
    return None, probs
