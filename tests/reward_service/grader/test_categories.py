"""The prompt classifier: P(category) from prompt states, persistence, and refusing a mismatched grader."""

from __future__ import annotations

import numpy as np
import pytest

from propositions import load_policy
from reward_service.errors import HeadsError
from reward_service.grader._engine import Readout
from reward_service.grader.categories import (
    CategoryClassifier,
    ClassifierSpec,
    prompt_features,
)

H, CATS = 8, ("None", "K-R", "SH-R1")
ID = dict(engine_id="embedded:smollm2-135m|float32", prompt_version="v", layers=(8, 12, 16, 20))


def readouts(labels: list[str], seed: int = 0) -> list[Readout]:
    """Readouts whose last-turn state at read-out layer 3 carries the category along its own direction."""
    rng = np.random.default_rng(seed)
    out = []
    for c in labels:
        prompt = rng.normal(size=(2, 4, H)).astype(np.float32)  # (PROMPT_STATS, L, H)
        prompt[1, 3, CATS.index(c)] += 4.0
        out.append(Readout(np.zeros(0), np.zeros((4, 4, H), np.float32), None, 1, prompt))
    return out


def test_the_classifier_reads_the_category_from_the_prompt_states_and_survives_a_round_trip(tmp_path):
    labels = [CATS[i % 3] for i in range(90)]
    clf = CategoryClassifier.fit(readouts(labels), labels, ("C-R", *CATS), ClassifierSpec(C=1.0), **ID)
    test = [CATS[i % 3] for i in range(30)]
    p = clf.predict(readouts(test, seed=1))
    assert all(abs(sum(d.values()) - 1) < 1e-9 for d in p)
    assert np.mean([max(d, key=d.get) == c for d, c in zip(p, test, strict=True)]) > 0.9
    assert max(d["C-R"] for d in p) < 1e-6  # no example: never predicted
    clf.save(tmp_path / "c.npz")
    again = CategoryClassifier.load(tmp_path / "c.npz")
    q = again.predict(readouts(test, seed=1))
    assert all(abs(a[k] - b[k]) < 1e-4 for a, b in zip(p, q, strict=True) for k in a)


def test_a_binary_fit_and_the_features_it_reads():
    labels = ["None", "K-R"] * 20
    clf = CategoryClassifier.fit(
        readouts(labels), labels, CATS, ClassifierSpec(stats=("last_turn",), layers=(3,)), **ID
    )
    assert prompt_features(readouts(["None"]), clf.spec).shape == (1, H)
    p = clf.predict(readouts(["K-R", "None"], seed=2))
    assert p[0]["K-R"] > 0.5 > p[1]["K-R"] and p[0]["SH-R1"] < 1e-6


def test_a_mismatched_grader_or_policy_and_bad_labels_are_refused():
    labels = [CATS[i % 3] for i in range(30)]
    clf = CategoryClassifier.fit(readouts(labels), labels, CATS, ClassifierSpec(), **ID)
    clf.check_compatible("embedded:smollm2-135m|bfloat16", "v", ID["layers"], CATS)  # the dtype may differ
    with pytest.raises(HeadsError, match="policy categories"):
        clf.check_compatible(ID["engine_id"], "v", ID["layers"], ("None", "K-R"))
    with pytest.raises(HeadsError, match="prompt format"):
        clf.check_compatible(ID["engine_id"], "w", ID["layers"], CATS)
    with pytest.raises(HeadsError, match="does not have: X"):
        CategoryClassifier.fit(readouts(["None", "None"]), ["X", "None"], CATS, ClassifierSpec(), **ID)
    with pytest.raises(HeadsError, match="no hidden states|does not return"):
        prompt_features([Readout(np.zeros(1), np.zeros((4, 0, 0)), None, 1)], ClassifierSpec())


def test_response_type_probabilities_sum_the_categories_of_each_response_type():
    policy = load_policy()
    p = policy.response_type_probabilities({"None": 0.2, "K-C": 0.1, "K-R": 0.3, "SH-R1": 0.4})
    assert p["comply"] == pytest.approx(0.3) and p["hard_refuse"] == pytest.approx(0.3)
    assert p["safe_refuse_1"] == pytest.approx(0.4) and p["safe_refuse_2"] == 0.0
