"""Labelled prompts for the prompt classifier (`rbr fit-classifier`), read at run time, with a fixed dev split.

Each row: the conversation up to the completion, its content-policy category, where it came from, and its
split. Sources:
  gold    the paper's human-labelled rows (`--gold`): each distinct conversation once, with its category;
          `dev` when sha256(conversation JSON) mod 5 == 0 (about 70 of 350), else `fit`.
  jbb     JailbreakBench (`--jbb`): each behaviour's plain goal and every distinct jailbreak prompt built on it
          (GCG suffixes, PAIR role-play, ...): harmful requests. The category is the nearest of the default
          policy's (JBB_CATEGORY); dev by behaviour (`offline.jbb.jbb_split`: the split every JBB fit keeps).
  prompts our own prompt files (`--prompts`, each line `prompt` + `category`): fit only.
A category the served policy does not have is an error (a user's own policy brings its own labelled prompts).

The dev rows are third-party prompts no fit sees; `evaluate` measures a classifier on them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from propositions import Policy
from reward_service.errors import InputError
from reward_service.offline.jbb import jbb_split

__all__ = [
    "JBB_CATEGORY",
    "LOOKALIKE_CATEGORIES",
    "PromptRow",
    "bag_of_words",
    "evaluate",
    "prompt_rows",
    "source_weights",
]

# JailbreakBench's categories -> the default policy's (C erotic, H hate, K criminal advice; -R refuse).
JBB_CATEGORY = {"Sexual/Adult content": "C-R", "Harassment/Discrimination": "H-R"}  # every other one: K-R
JBB_OTHER = "K-R"
# Benign look-alikes: requests on a sensitive topic that the policy answers (where over-refusal shows).
LOOKALIKE_CATEGORIES = ("C-C", "H-C", "K-C", "SH-C")

Split = Literal["fit", "dev"]


@dataclass(frozen=True)
class PromptRow:
    conversation: tuple[Mapping[str, str], ...]
    category: str
    source: str  # gold | jbb:<attack> | a prompt file's name
    split: Split

    @property
    def text(self) -> str:
        """The conversation as one text (what the bag-of-words baseline reads)."""
        return "\n".join(m["content"] for m in self.conversation)


def _dev_by_hash(key: str) -> Split:
    return "dev" if int(hashlib.sha256(key.encode()).hexdigest(), 16) % 5 == 0 else "fit"


def _lines(path: str | Path) -> Iterable[dict]:
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise InputError(str(path), f"cannot read ({e.strerror or e})") from None
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                yield json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"{path} line {n}", f"malformed JSON: {e.msg}") from None


def _conversation(prompt) -> tuple[Mapping[str, str], ...]:
    return ({"role": "user", "content": prompt},) if isinstance(prompt, str) else tuple(map(dict, prompt))


def prompt_rows(
    policy: Policy, gold: str | Path | None = None, jbb: str | Path | None = None, prompts: Sequence[str | Path] = ()
) -> list[PromptRow]:
    """Rows from each source given, deduplicated by conversation (the first source keeps a duplicate)."""
    rows: list[PromptRow] = []
    if gold is not None:
        for r in _lines(gold):
            conv = _conversation(r["prompt"])
            rows.append(PromptRow(conv, r["category"], "gold", _dev_by_hash(json.dumps(list(conv)))))
    if jbb is not None:
        for r in _lines(jbb):
            cat, split = JBB_CATEGORY.get(r["category"], JBB_OTHER), jbb_split(r["behavior"])
            attack = r["source"].split("/")[0]
            rows.append(PromptRow(_conversation(r["goal"]), cat, "jbb:goal", split))
            rows.append(PromptRow(_conversation(r["prompt"]), cat, f"jbb:{attack}", split))
    for path in prompts:
        for r in _lines(path):
            rows.append(PromptRow(_conversation(r["prompt"]), r["category"], Path(path).name, "fit"))
    unknown = sorted({r.category for r in rows} - set(policy.categories))
    if unknown:
        known = ", ".join(policy.categories)
        raise InputError("category", f"{', '.join(unknown)} not among the policy's categories ({known})")
    seen: set[str] = set()
    out = []
    for r in rows:
        key = json.dumps([dict(m) for m in r.conversation], sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def evaluate(policy: Policy, rows: Sequence[PromptRow], predicted: Sequence[Mapping[str, float]]) -> dict:
    """Dev measures of P(category) predictions: accuracy and confusion by category (the most likely) and by
    response type (the most likely, summing its categories, as the service scores), harmful (any response type
    but comply) vs benign F1, and the share of benign look-alikes called harmful; per source."""
    cats = list(policy.categories)
    rts = list(policy.response_types)
    true_c = [r.category for r in rows]
    pred_c = [max(p, key=p.__getitem__) for p in predicted]
    true_rt = [policy.categories[c] for c in true_c]
    rt_probs = [policy.response_type_probabilities(p) for p in predicted]
    pred_rt = [max(q, key=q.__getitem__) for q in rt_probs]  # the response type the service scores under

    def confusion(labels: list[str], t: list[str], p: list[str]) -> list[list[int]]:
        m = np.zeros((len(labels), len(labels)), dtype=int)
        for a, b in zip(t, p, strict=True):
            m[labels.index(a), labels.index(b)] += 1
        return m.tolist()

    def harm(sub: list[int]) -> dict:
        y = np.array([true_rt[i] != "comply" for i in sub])
        yhat = np.array([pred_rt[i] != "comply" for i in sub])
        tp, fp, fn = int((y & yhat).sum()), int((~y & yhat).sum()), int((y & ~yhat).sum())
        look = [i for i in sub if true_c[i] in LOOKALIKE_CATEGORIES]
        return {
            "n": len(sub),
            "harmful_f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None,
            "harmful_recall": tp / (tp + fn) if tp + fn else None,
            "false_harmful_lookalike": float(np.mean([pred_rt[i] != "comply" for i in look])) if look else None,
            "n_lookalike": len(look),
            "false_harmful_benign": float(np.mean(yhat[~y])) if (~y).any() else None,
            "category_accuracy": float(np.mean([true_c[i] == pred_c[i] for i in sub])),
            "response_type_accuracy": float(np.mean([true_rt[i] == pred_rt[i] for i in sub])),
        }

    every = list(range(len(rows)))
    by_source = {}
    for src in sorted({r.source.split(":")[0] for r in rows}):
        by_source[src] = harm([i for i in every if rows[i].source.split(":")[0] == src])
    return {
        **harm(every),
        "by_source": by_source,
        "categories": cats,
        "category_confusion": confusion(cats, true_c, pred_c),
        "response_types": rts,
        "response_type_confusion": confusion(rts, true_rt, pred_rt),
    }


def source_weights(rows: Sequence[PromptRow]) -> list[float]:
    """Row weights under which each source (gold, JailbreakBench, each prompt file) weighs the same, mean 1:
    JailbreakBench's ~800 jailbreak prompts would otherwise outweigh ~280 gold conversations."""
    group = [r.source.split(":")[0] for r in rows]
    counts = {g: group.count(g) for g in set(group)}
    return [len(rows) / (len(counts) * counts[g]) for g in group]


def bag_of_words(
    fit: Sequence[PromptRow], rows: Sequence[PromptRow], categories: list[str], weights: Sequence[float] | None = None
) -> list[dict[str, float]]:
    """The baseline: TF-IDF of word 1-2-grams and a logistic regression, fitted on `fit` (weighted as the
    classifier is); P(category) of `rows`."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    tf = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit([r.text for r in fit])
    x, y = tf.transform([r.text for r in fit]), [r.category for r in fit]
    clf = LogisticRegression(C=10.0, max_iter=5000).fit(x, y, sample_weight=weights)
    p = clf.predict_proba(tf.transform([r.text for r in rows]))  # (n, k fitted)
    return [{c: float(row[list(clf.classes_).index(c)]) if c in clf.classes_ else 0.0 for c in categories} for row in p]
