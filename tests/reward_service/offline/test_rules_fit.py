"""fit_rule_weights: the rule term learns SoFA's ordering over a base reward that prefers obeying the user, and keeps
an irrelevant rule's term small (probabilities scripted from labels; the real heads: research/rule_grader.py)."""

from __future__ import annotations

import numpy as np

from propositions import RULE_FEATURES, RULE_PROPOSITIONS
from reward_service.config import DATA_DIR
from reward_service.offline.rules import fit_rule_weights, read_triplets

BASE = {"breaks": 2.0, "keeps_announced": 0.0, "keeps_silent": -0.5, "helpful": 4.0, "over_applies": 0.5}


def test_the_rule_term_outweighs_a_base_reward_that_prefers_obeying():
    lines = (DATA_DIR / "rules" / "triplets.jsonl").read_text().splitlines()[:200]
    triplets = read_triplets(lines, "triplets")
    rng = np.random.default_rng(0)
    labels = np.array([[t.labels[p] for p in RULE_PROPOSITIONS] for t in triplets], dtype=float)
    probs = np.clip(0.1 + 0.8 * labels + rng.normal(0, 0.05, labels.shape), 0, 1)  # a good but imperfect grader
    base = np.array([BASE[t.completion_kind] for t in triplets]) + rng.normal(0, 0.1, len(triplets))
    w = fit_rule_weights(triplets, probs, base, "scripted")
    v = dict(zip(RULE_FEATURES, w.weights, strict=True))
    assert v["breaks"] < 0 < v["keeps_announced"], v
    for kind in ("related", "attack"):
        m = w.metrics[kind]
        assert m["error_base_reward"] > 0.3 and m["error_with_rule_term_heldout_rules"] < 0.1, (kind, m)
    assert w.metrics["unrelated_helpful_abs_rule_term_heldout_rules"]["median"] < 0.5
