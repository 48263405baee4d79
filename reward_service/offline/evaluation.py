"""Measuring a grader against human labels: accuracy at 0.5, AUROC and calibration error per proposition.

Also the bag-of-words baseline every grader figure is read against: a TF-IDF logistic regression per
proposition on the completion text, fitted the same way (K-fold, grouped by prompt); the readers of labelled
rows (gold format, augmentation files, the JailbreakBench fit split) that `rbr eval-grader` and
`rbr fit-grader` fit and score on.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold

from propositions import InputError, Policy
from reward_service.grader import GradeItem, Grader, iter_jsonl, parse_item

__all__ = [
    "GOLD_PROPOSITIONS_KEY",
    "Labelled",
    "LabelledRow",
    "PropositionScore",
    "bow_baseline",
    "cross_validated_probs",
    "expected_calibration_error",
    "fold_indices",
    "labelled_names",
    "read_extra",
    "read_labelled",
    "score_propositions",
]

MIN_POSITIVES = 5  # macro averages use propositions with at least this many positives (and negatives)
GOLD_PROPOSITIONS_KEY = "propositions"  # a gold row's {proposition: true|false} map


@dataclass
class Labelled:
    """Graded items with their human labels (only propositions the policy knows) and fit weights."""

    items: list[GradeItem] = field(default_factory=list)
    labels: list[dict[str, bool]] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)

    def rows(self) -> list[LabelledRow]:
        return [
            LabelledRow(it.conversation, it.completion, lab) for it, lab in zip(self.items, self.labels, strict=True)
        ]

    def __add__(self, other: Labelled) -> Labelled:
        return Labelled(self.items + other.items, self.labels + other.labels, self.weights + other.weights)


def read_labelled(lines: Sequence[str], source: str, policy: Policy, weight: float = 1.0) -> Labelled:
    """Gold-format JSON lines: an item (prompt/conversation, completion, response type) + a propositions map."""
    out = Labelled()
    for n, obj in iter_jsonl(lines, source):
        where = f"{source} line {n}"
        if not isinstance(obj, dict) or not isinstance(obj.get(GOLD_PROPOSITIONS_KEY), dict):
            raise InputError(f"{where}: propositions", "missing: a gold row needs a {name: true|false} map")
        lab = obj[GOLD_PROPOSITIONS_KEY]
        bad = [k for k, v in lab.items() if not isinstance(v, bool)]
        if bad:
            raise InputError(f"{where}: propositions.{bad[0]}", "must be true or false")
        out.items.append(parse_item(obj, policy, where))
        out.labels.append({k: v for k, v in lab.items() if k in policy.propositions})
        out.weights.append(weight)
    if not out.items:
        raise InputError(source, "no labelled rows")
    return out


def read_extra(aug: Sequence[str], jbb_file: str | None, jbb_weight: float, policy: Policy) -> Labelled:
    """Extra training rows: every augmentation file (weight 1), then the JailbreakBench fit split (`jbb_weight`)."""
    out = Labelled()
    for f in aug:
        try:
            lines = Path(f).read_text().splitlines()
        except OSError as e:
            raise InputError(f, f"cannot read: {e.strerror or e}") from None
        out += read_labelled(lines, f, policy)
    if jbb_file:
        from reward_service.offline.jbb import jbb_rows

        for n, r in enumerate(jbb_rows(jbb_file, "fit"), 1):
            out.items.append(parse_item(r, policy, f"{jbb_file} fit row {n}"))
            out.labels.append(dict(r["propositions"]))
            out.weights.append(jbb_weight)
    return out


def labelled_names(policy: Policy, labels: Sequence[Mapping[str, bool]]) -> list[str]:
    """The policy's propositions that some row labels, in policy order."""
    seen = {k for lab in labels for k in lab}
    return [p for p in policy.propositions if p in seen]


@dataclass(frozen=True)
class LabelledRow:
    conversation: tuple[Mapping[str, str], ...]
    completion: str
    labels: Mapping[str, bool]

    @property
    def group(self) -> str:
        """Rows sharing a prompt share a group, so no fold sees the prompt of a row it scores."""
        last_user = [m["content"] for m in self.conversation if m["role"] == "user"][-1:]
        return hashlib.sha256(json.dumps(last_user).encode()).hexdigest()[:16]


@dataclass
class PropositionScore:
    n: int
    positives: int
    accuracy: float
    auroc: float | None
    ece: float

    def as_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


@dataclass
class Report:
    propositions: dict[str, PropositionScore] = field(default_factory=dict)

    @property
    def counted(self) -> list[str]:
        return [
            p
            for p, s in self.propositions.items()
            if s.positives >= MIN_POSITIVES and s.n - s.positives >= MIN_POSITIVES and s.auroc is not None
        ]

    @property
    def macro_auroc(self) -> float:
        c = self.counted
        return float(np.mean([self.propositions[p].auroc for p in c])) if c else float("nan")

    @property
    def macro_accuracy(self) -> float:
        c = self.counted
        return float(np.mean([self.propositions[p].accuracy for p in c])) if c else float("nan")

    def as_dict(self) -> dict:
        return {
            "macro_auroc": round(self.macro_auroc, 4),
            "macro_accuracy": round(self.macro_accuracy, 4),
            "macro_over": self.counted,
            "propositions": {p: s.as_dict() for p, s in self.propositions.items()},
        }


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Mean |accuracy - confidence| over equal-width probability bins, weighted by bin size."""
    idx = np.minimum((p * bins).astype(int), bins - 1)
    ece = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            ece += m.mean() * abs(y[m].mean() - p[m].mean())
    return float(ece)


def score_propositions(labels: Mapping[str, np.ndarray], probs: Mapping[str, np.ndarray]) -> Report:
    """labels[p]: (n,) bool, probs[p]: (n,) P(yes) for the same rows."""
    rep = Report()
    for p, y in labels.items():
        y = np.asarray(y, dtype=bool)
        q = np.asarray(probs[p], dtype=float)
        auroc = float(roc_auc_score(y, q)) if 0 < y.sum() < len(y) else None
        rep.propositions[p] = PropositionScore(
            n=len(y),
            positives=int(y.sum()),
            accuracy=float(((q >= 0.5) == y).mean()),
            auroc=auroc,
            ece=expected_calibration_error(y.astype(float), q),
        )
    return rep


def fold_indices(groups: Sequence[str], k: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """K (train, test) index splits with no group on both sides; deterministic."""
    uniq = sorted(set(groups), key=lambda g: hashlib.sha256(g.encode()).hexdigest())
    rank = {g: i for i, g in enumerate(uniq)}
    codes = np.array([rank[g] for g in groups])
    return list(GroupKFold(n_splits=k).split(np.zeros(len(groups)), groups=codes))


def _bow_text(row: LabelledRow) -> str:
    return row.completion


def bow_baseline(
    rows: Sequence[LabelledRow], props: Sequence[str], k: int | None = 5, extra: Sequence[LabelledRow] = ()
) -> dict[str, np.ndarray]:
    """Out-of-fold P(yes) of a TF-IDF + logistic regression per proposition.

    With k=None it fits on `extra` only and scores every row (a baseline fitted elsewhere).
    Rows in `extra` are always added to every fold's training data.
    """
    n = len(rows)
    splits = fold_indices([r.group for r in rows], k) if k else [(np.arange(0), np.arange(n))]
    out = {p: np.full(n, np.nan) for p in props}
    for train_idx, test_idx in splits:
        train = [rows[i] for i in train_idx] + list(extra)
        vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
        x_train = vec.fit_transform([_bow_text(r) for r in train])
        x_test = vec.transform([_bow_text(rows[i]) for i in test_idx])
        for p in props:
            have = [i for i, r in enumerate(train) if p in r.labels]
            y = np.array([train[i].labels[p] for i in have], dtype=int)
            if len(set(y)) < 2:
                out[p][test_idx] = y.mean() if len(y) else 0.5
                continue
            clf = LogisticRegression(C=10.0, max_iter=2000).fit(x_train[have], y)
            out[p][test_idx] = clf.predict_proba(x_test)[:, 1]
    return out


def cross_validated_probs(
    grader: Grader,
    gold: Labelled,
    extra: Labelled,
    names: Sequence[str],
    k: int,
    mode: str,
    spec,
    overrides=None,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """Out-of-fold P(yes) per gold row: heads (or calibrators) fitted K times, grouped by prompt.

    Every fold fits on its gold rows plus all of `extra`; no row is scored by a fit that saw its prompt.
    """
    ros = grader.readouts(gold.items, [names] * len(gold.items), progress=progress)
    extra_ros = grader.readouts(extra.items, [names] * len(extra.items), progress=progress) if extra.items else []
    groups = [r.group for r in gold.rows()]
    probs = {p: np.full(len(gold.items), np.nan) for p in names}
    for train, test in fold_indices(groups, k):
        fitted = grader.fit_heads(
            [ros[i] for i in train] + extra_ros,
            [gold.labels[i] for i in train] + extra.labels,
            [gold.weights[i] for i in train] + extra.weights,
            names,
            spec,
            overrides,
        )
        for i in test:
            if mode == "calibrated":
                row = {p: fitted.calibrate(p, float(ros[i].yes_logit[j])) for j, p in enumerate(names)}
            else:
                row = dict(zip(names, fitted.predict(ros[i], names), strict=True))
            for p in names:
                probs[p][i] = row[p]
    return probs
