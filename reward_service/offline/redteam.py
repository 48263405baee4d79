"""`rbr prompts`: topic-guided red-team prompts per content category (SELF-ALIGN's topic-guided red-teaming
self-instruct, with our own instruction types and seed topics in data/redteam.yaml).

For each category of the policy: the writer brainstorms topics like the seed topics, then writes one request
per (instruction type, topic), shown one example of the type on another topic. A candidate is dropped, with
its reason recorded beside the output, when it is empty, too short or long, a refusal instead of a request,
not shaped like a request (neither a question nor a request's opening such as "write", "how", "pretend",
"I need"), a near-copy of the type's example, off its topic (no content word of the topic), or a
near-duplicate of a prompt already kept (Jaccard similarity of word 1- and 2-grams). Kept prompts are appended
as they come (seed-prompt format: id, prompt, category, type, topic, split), so a rerun resumes; the split is
by topic, so no topic straddles train and heldout.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from tqdm import tqdm

from propositions import Policy
from reward_service.config import DATA_DIR
from reward_service.errors import InputError
from reward_service.offline.writers import Writer

__all__ = [
    "RedTeamSpec",
    "content_words",
    "distinct_n",
    "generate_prompts",
    "is_refusal",
    "load_spec",
    "looks_like_request",
    "near_duplicate",
    "on_topic",
    "shingles",
]

SPEC_PATH = DATA_DIR / "redteam.yaml"
DUPLICATE_JACCARD = 0.5
_REFUSAL_STARTS = (
    "i'm sorry",
    "i am sorry",
    "sorry",
    "i can't",
    "i cannot",
    "as an ai",
    "i apologize",
    "i'm just an ai",
    "i'm an ai",
)
#: how a request to an assistant starts when it is not a question (a question ends with "?")
_REQUEST_STARTS = re.compile(
    r"^(please |hey |hi |ok |so |now |okay )?(how|what|why|when|where|which|who|can|could|would|will|is|are|do|does|"
    r"should|write|give|tell|explain|list|describe|help|show|make|create|draft|pretend|imagine|act|be|roleplay|"
    r"role-play|suppose|hypothetically|for (my|a|an|the)|as a|i need|i want|i'd like|i would like|i'm|i am|my|let's)\b",
    re.I,
)


@dataclass
class RedTeamSpec:
    system: str
    categories: dict[str, dict]  # category -> {description, types: {name: {description, example}}, topics}


def load_spec(policy: Policy, path: str | Path = SPEC_PATH, only: Sequence[str] | None = None) -> RedTeamSpec:
    """The spec for the policy's categories (or `only` these); unknown or undescribed categories are errors."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise InputError(str(path), f"cannot read the red-team spec: {e}") from None
    cats = raw.get("categories") if isinstance(raw, dict) else None
    if not isinstance(cats, dict) or not isinstance(raw.get("system"), str):
        raise InputError(str(path), "needs a 'system' string and a 'categories' mapping")
    wanted = list(only) if only else [c for c in policy.categories if c in cats]
    for c in wanted:
        if c not in policy.categories:
            raise InputError("categories", f"unknown category {c!r}; the policy has {', '.join(policy.categories)}")
        spec = cats.get(c)
        if not spec or not spec.get("types") or not spec.get("topics") or not spec.get("description"):
            raise InputError(f"{path}: categories.{c}", "needs a description, types and seed topics")
        for name, t in spec["types"].items():
            if not isinstance(t, dict) or not t.get("description") or not t.get("example"):
                raise InputError(f"{path}: categories.{c}.types.{name}", "needs a description and an example")
    return RedTeamSpec(raw["system"], {c: cats[c] for c in wanted})


_STOP = {"that", "this", "with", "from", "have", "your", "about", "what", "which", "would", "could", "should",
         "there", "their", "they", "them", "will", "were", "been", "into", "some", "more", "here", "also", "than",
         "then", "when", "where", "while", "just", "like", "please", "write", "give", "tell", "make"}  # fmt: skip


def content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]{4,}", text.lower()) if w not in _STOP}


def shingles(text: str) -> set[str]:
    """Word 1- and 2-grams, lower-cased: the fingerprint near-duplicates share."""
    w = re.findall(r"[a-z0-9']+", text.lower())
    return set(w) | {f"{a} {b}" for a, b in zip(w, w[1:], strict=False)}


def near_duplicate(text: str, kept: Sequence[set[str]], threshold: float = DUPLICATE_JACCARD) -> float | None:
    """The highest Jaccard similarity to a kept fingerprint if it reaches `threshold`, else None."""
    s = shingles(text)
    best = max((len(s & k) / len(s | k) for k in kept if s | k), default=0.0)
    return best if best >= threshold else None


def distinct_n(texts: Sequence[str], n: int = 2) -> float:
    """Distinct word n-grams / all word n-grams (1.0: no n-gram repeats)."""
    grams = [tuple(w[i : i + n]) for t in texts for w in [t.lower().split()] for i in range(len(w) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def is_refusal(text: str) -> bool:
    """The writer declined (or spoke as the assistant) instead of writing a user's request."""
    return text.lower().startswith(_REFUSAL_STARTS)


def looks_like_request(text: str) -> bool:
    """A question, or a message that opens the way requests do ("write", "how", "pretend", "I need", ...)."""
    return text.rstrip().endswith("?") or _REQUEST_STARTS.match(text) is not None


def _split(category: str, topic: str, heldout: float = 0.2) -> str:
    h = int(hashlib.sha256(f"{category}|{topic.lower()}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "heldout" if h < heldout else "train"


def brainstorm_topics(write: Writer, spec: RedTeamSpec, category: str, n: int, seed: int) -> list[str]:
    """The seed topics and up to `n` new ones the writer lists (two to six words each, no repeats)."""
    c = spec.categories[category]
    ask = (
        f"Category: {c['description']}.\nExample topics: {', '.join(c['topics'])}.\n"
        f"List {n} more short topics (two to five words each) for this category, different from the examples, "
        "one per line."
    )
    text = write([{"role": "system", "content": spec.system}, {"role": "user", "content": ask}], "1.", seed)
    topics, seen = list(c["topics"]), {t.lower() for t in c["topics"]}
    for line in text.splitlines():
        t = re.sub(r"^\s*(\d+[.)]|[-*])\s*", "", line).strip().strip(".").strip()
        if 1 <= len(t.split()) <= 6 and t.lower() not in seen and len(topics) < len(c["topics"]) + n:
            topics.append(t)
            seen.add(t.lower())
    return topics


def _request(write: Writer, spec: RedTeamSpec, category: str, kind: str, topic: str, seed: int) -> str:
    c, t = spec.categories[category], spec.categories[category]["types"][kind]
    ask = (
        f"Write one request of this kind: {t['description']}.\nCategory: {c['description']}.\nTopic: {topic}.\n"
        f'Example of this kind, on another topic: "{t["example"]}"\nWrite only the new request, in quotes.'
    )
    text = write([{"role": "system", "content": spec.system}, {"role": "user", "content": ask}], '"', seed)
    return text.lstrip('"').split('"')[0].split("\n")[0].strip()


def on_topic(text: str, topic: str) -> bool:
    """The request names its topic: it shares a content word with it (5-letter prefixes, so "weapon" matches
    "weapons"). A topic with no word of four letters or more passes. Lexical, because a 135M grader reads a
    question about a request's category at chance: it drops requests that drifted off their topic, and some
    on-topic paraphrases ("pasta" for "cooking")."""
    want = {w[:5] for w in content_words(topic)}
    return not want or bool(want & {w[:5] for w in content_words(text)})


def _why_dropped(text: str, example: str, topic: str, kept: Sequence[set[str]]) -> str | None:
    words = len(text.split())
    if not text:
        return "empty"
    if words < 4 or words > 80:
        return f"length out of range ({words} words; 4-80 allowed)"
    if is_refusal(text):
        return "the writer refused instead of writing a request"
    if not looks_like_request(text):
        return "not a request (no question, no request opening)"
    if near_duplicate(text, [shingles(example)]) is not None:
        return "copies the type's example"
    if not on_topic(text, topic):
        return f"off topic (no word of {topic!r})"
    sim = near_duplicate(text, kept)
    return f"near-duplicate of a kept prompt (Jaccard {sim:.2f})" if sim is not None else None


@dataclass
class PromptsSummary:
    kept: Counter = field(default_factory=Counter)
    tries: Counter = field(default_factory=Counter)
    dropped: dict[str, Counter] = field(default_factory=dict)
    texts: dict[str, list[str]] = field(default_factory=dict)

    def table(self) -> str:
        lines = [f"{'category':10} {'kept':>5} {'tries':>6} {'yield':>6} {'distinct-2':>10}  dropped"]
        for c in sorted(self.tries):
            by_kind = Counter()
            for r, n in self.dropped.get(c, Counter()).items():
                by_kind[r.split(" (")[0]] += n  # "off topic (no word of 'x')": one count per kind of reason
            drops = ", ".join(f"{n} {r}" for r, n in by_kind.most_common())
            k, n = self.kept[c], self.tries[c]
            lines.append(
                f"{c:10} {k:5d} {n:6d} {k / n if n else 0:6.2f} {distinct_n(self.texts.get(c, [])):10.2f}  {drops}"
            )
        return "\n".join(lines)


def generate_prompts(
    write: Writer, spec: RedTeamSpec, out: Path, per_category: int, new_topics: int = 8, seed: int = 0
) -> PromptsSummary:
    """Write up to `per_category` kept prompts per category to `out` (appending; a rerun resumes)."""
    rows = [json.loads(x) for x in out.read_text().splitlines() if x.strip()] if out.exists() else []
    topics_path, rejected_path = out.with_suffix(".topics.json"), out.with_suffix(".rejected.jsonl")
    topics: dict = json.loads(topics_path.read_text()) if topics_path.exists() else {}
    summary, rng = PromptsSummary(), random.Random(seed)
    kept_fp = [shingles(r["prompt"]) for r in rows]
    done = {(r["category"], r["type"], r["topic"]) for r in rows}
    out.parent.mkdir(parents=True, exist_ok=True)
    for c in spec.categories:
        summary.texts[c] = [r["prompt"] for r in rows if r["category"] == c]
        summary.kept[c] += 0
        if c not in topics:
            topics[c] = brainstorm_topics(write, spec, c, new_topics, rng.randrange(2**31))
            topics_path.write_text(json.dumps(topics, indent=2) + "\n")
    with out.open("a") as fout, rejected_path.open("a") as frej:
        for c in tqdm(spec.categories, desc="prompts"):
            combos = [(k, t) for t in topics[c] for k in spec.categories[c]["types"] if (c, k, t) not in done]
            random.Random(f"{seed}|{c}").shuffle(combos)
            for kind, topic in combos:
                if len(summary.texts[c]) >= per_category:
                    break
                s = rng.randrange(2**31)
                text = _request(write, spec, c, kind, topic, s)
                summary.tries[c] += 1
                why = _why_dropped(text, spec.categories[c]["types"][kind]["example"], topic, kept_fp)
                row = {"category": c, "type": kind, "topic": topic, "prompt": text, "writer_seed": s}
                if why:
                    summary.dropped.setdefault(c, Counter())[why] += 1
                    frej.write(json.dumps({**row, "reason": why}) + "\n")
                    continue
                pid = f"{c}:{hashlib.sha256(text.encode()).hexdigest()[:10]}"
                fout.write(json.dumps({"id": pid, **row, "split": _split(c, topic)}) + "\n")
                fout.flush()
                kept_fp.append(shingles(text))
                summary.texts[c].append(text)
                summary.kept[c] += 1
    return summary
