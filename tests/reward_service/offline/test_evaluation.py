"""Grader metrics and the bag-of-words baseline."""

from __future__ import annotations

import numpy as np
import pytest

from reward_service.offline.evaluation import (
    LabelledRow,
    bow_baseline,
    expected_calibration_error,
    fold_indices,
    score_propositions,
)


def test_ece_hand_computed():
    y = np.array([1, 0, 1, 1], dtype=float)
    p = np.array([0.95, 0.95, 0.15, 0.15])  # bin 9: acc .5 conf .95; bin 1: acc 1 conf .15
    assert expected_calibration_error(y, p) == pytest.approx(0.5 * 0.45 + 0.5 * 0.85)


def test_score_propositions_and_macro_excludes_rare():
    rng = np.random.default_rng(0)
    y = rng.random(40) < 0.5
    labels = {"good": y, "rare": np.array([True] * 2 + [False] * 38)}
    probs = {"good": np.where(y, 0.9, 0.1), "rare": np.full(40, 0.2)}
    rep = score_propositions(labels, probs)
    assert rep.propositions["good"].auroc == 1.0 and rep.propositions["good"].accuracy == 1.0
    assert rep.counted == ["good"]
    assert rep.macro_auroc == 1.0


def test_folds_never_split_a_group():
    groups = [f"g{i % 7}" for i in range(50)]
    folds = fold_indices(groups, 5)
    assert sorted(np.concatenate([t for _, t in folds]).tolist()) == list(range(50))
    for train, test in folds:
        assert not {groups[i] for i in train} & {groups[i] for i in test}


def test_bow_baseline_learns_a_lexical_proposition():
    rows = [
        LabelledRow(
            ({"role": "user", "content": f"q{i}"},),
            ("I'm sorry, I can't do that." if i % 2 else f"Here is answer number {i} for you."),
            {"apology": bool(i % 2)},
        )
        for i in range(40)
    ]
    probs = bow_baseline(rows, ["apology"], k=4)["apology"]
    y = np.array([r.labels["apology"] for r in rows])
    assert ((probs >= 0.5) == y).mean() == 1.0
