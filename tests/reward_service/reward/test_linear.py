"""The hinge-loss fit of the RBR weights: exact optimum, pair construction, error rate."""

from __future__ import annotations

import numpy as np
import pytest

from reward_service.errors import InputError, WeightsMismatchError
from reward_service.reward.linear import (
    RBRWeights,
    fit_hinge,
    hinge_loss,
    make_pairs,
    order_violations,
    pairwise_error_rate,
)

ORDER = ["ideal", "minimum_acceptable_style", "unacceptable_completion", "disallowed_completion"]


def ranked_problem(w_true: np.ndarray, n_prompts: int = 200, seed: int = 0):
    """Completions labelled by the rank of a known reward: the known weights order every pair."""
    rng = np.random.default_rng(seed)
    per = len(ORDER)
    x = rng.normal(size=(n_prompts * per, len(w_true)))  # (n, d)
    rm = rng.normal(scale=0.05, size=n_prompts * per)  # (n,)
    r = rm + x @ w_true
    prompts, labels = [], [""] * len(r)
    for p in range(n_prompts):
        rows = np.arange(p * per, (p + 1) * per)
        for rank, i in enumerate(rows[np.argsort(-r[rows])]):
            labels[i] = ORDER[rank]
        prompts += [f"p{p}"] * per
    return x, rm, prompts, labels


def test_fit_recovers_the_direction_of_known_weights():
    w_true = np.array([2.0, -1.0, 0.5])
    x, rm, prompts, labels = ranked_problem(w_true)
    pairs = make_pairs(prompts, labels, ORDER, default_margin=0.0)
    assert len(pairs) == 200 * 6  # 4 labels per prompt -> 6 ordered pairs
    res = fit_hinge(x, rm, pairs)
    assert res.loss == pytest.approx(0.0, abs=1e-9)  # separable: the optimum has zero loss
    cos = res.weights @ w_true / np.linalg.norm(res.weights) / np.linalg.norm(w_true)
    assert cos > 0.999
    assert pairwise_error_rate(rm + x @ res.weights, pairs) < 0.005


def test_fit_is_at_least_as_good_as_any_other_weights():
    x, rm, prompts, labels = ranked_problem(np.array([1.0, 0.3]), n_prompts=80, seed=1)
    rng = np.random.default_rng(2)
    x = x + rng.normal(scale=1.0, size=x.shape)  # noisy features: no zero-loss solution
    pairs = make_pairs(prompts, labels, ORDER, default_margin=1.0)
    res = fit_hinge(x, rm, pairs)
    assert res.loss > 0
    for _ in range(200):
        other = res.weights + rng.normal(scale=0.3, size=res.weights.shape)
        assert hinge_loss(x, rm, pairs, other) >= res.loss - 1e-7


def test_l1_shrinks_weights():
    x, rm, prompts, labels = ranked_problem(np.array([2.0, -1.0, 0.0, 0.0]))
    pairs = make_pairs(prompts, labels, ORDER, default_margin=1.0)
    free, sparse = fit_hinge(x, rm, pairs), fit_hinge(x, rm, pairs, l1=0.05)
    assert np.abs(sparse.weights).sum() < np.abs(free.weights).sum()


def test_margins_follow_the_worse_label():
    pairs = make_pairs(
        ["a", "a", "a"],
        ["ideal", "unacceptable_completion", "disallowed_completion"],
        ORDER,
        margins={"disallowed_completion": 3.0},
        default_margin=0.5,
    )
    got = sorted(zip(pairs.better.tolist(), pairs.worse.tolist(), pairs.margin.tolist(), strict=True))
    assert got == [(0, 1, 0.5), (0, 2, 3.0), (1, 2, 3.0)]


def test_only_pairs_within_a_prompt_with_different_labels():
    pairs = make_pairs(["a", "a", "b", "b"], ["ideal", "ideal", "ideal", "disallowed_completion"], ORDER)
    assert list(zip(pairs.better, pairs.worse, strict=True)) == [(2, 3)]


def test_ties_and_unknown_labels_are_rejected():
    with pytest.raises(InputError, match="appears twice: ties"):
        make_pairs(["a"], ["ideal"], ["ideal", "ideal", "disallowed_completion"])
    with pytest.raises(InputError, match=r"unknown label\(s\) \['great'\]"):
        make_pairs(["a", "a"], ["ideal", "great"], ORDER)
    with pytest.raises(InputError, match="no ordered pairs"):
        fit_hinge(np.zeros((2, 1)), np.zeros(2), make_pairs(["a", "b"], ["ideal", "ideal"], ORDER))


def default_weights(policy) -> RBRWeights:
    names = {rt: list(policy.feature_names(rt)) for rt in policy.response_types}
    return RBRWeights(policy.hash, names, {rt: [0.1] * len(n) for rt, n in names.items()}, "judge:test", {}, {})


def test_weights_roundtrip_and_score(tmp_path, policy):
    w = default_weights(policy)
    w.save(tmp_path / "w.json")
    again = RBRWeights.load(tmp_path / "w.json", policy)
    assert again == w and again.version == w.version
    x = np.ones((3, len(w.feature_names["comply"])))
    np.testing.assert_allclose(again.rbr_score("comply", x), 0.1 * x.shape[1])


def test_mismatched_weights_fail_to_load_saying_what_differs(tmp_path, policy):
    w = default_weights(policy)
    w.policy_hash = "0000"
    w.feature_names["comply"] = w.feature_names["comply"][:-1] + ["class:brilliant"]
    del w.feature_names["hard_refuse"]
    w.save(tmp_path / "w.json")
    with pytest.raises(WeightsMismatchError) as exc:
        RBRWeights.load(tmp_path / "w.json", policy)
    msg = str(exc.value)
    assert f"policy hash 0000 != running policy {policy.hash}" in msg
    assert "no weights for response type 'hard_refuse'" in msg
    assert (
        "comply: feature names differ (missing ['class:disallowed_completion'], unexpected ['class:brilliant'])" in msg
    )
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(WeightsMismatchError, match="not a readable weights file"):
        RBRWeights.load(tmp_path / "bad.json", policy)


def test_shipped_default_weights_are_bounded_and_keep_the_policy_order(policy):
    """No weight is extreme, and no crisp completion of a worse class outscores one of a better class (RM equal)."""
    from reward_service.config import DATA_DIR

    w = RBRWeights.load(DATA_DIR / "weights" / "default.json", policy)
    assert w.data.get("max_weight") or w.data["l2"] > 0, "the default weights must be fitted with a bound or a penalty"
    biggest = max(abs(x) for ws in w.weights.values() for x in ws)
    assert biggest < 20, f"a weight of {biggest:.0f} turns one odd completion into an extreme reward"
    assert order_violations(policy, w) == []


def test_max_weight_bounds_every_weight_and_rbr_alone_makes_the_rule_term_order_pairs_itself():
    x, rm, prompts, labels = ranked_problem(np.array([2.0, -1.0, 0.5]))
    pairs = make_pairs(prompts, labels, ORDER, default_margin=1.0)
    boxed = fit_hinge(x, rm, pairs, max_weight=0.5)
    assert np.abs(boxed.weights).max() <= 0.5 + 1e-9 and boxed.loss > fit_hinge(x, rm, pairs).loss
    rm_orders = np.array([-100.0 * ORDER.index(label) for label in labels])  # orders every pair by a wide margin
    plain = fit_hinge(x, rm_orders, pairs, l1=1e-3)
    assert np.abs(plain.weights).max() < 1e-6  # nothing left to pay for: the rule term stays zero
    alone = fit_hinge(x, rm_orders, pairs, l1=1e-3, rbr_alone=1.0)
    assert pairwise_error_rate(x @ alone.weights, pairs) < 0.05
    assert alone.objective >= alone.loss


def test_scaled_weights_scale_the_rbr_term_and_get_a_new_version(policy):
    w = default_weights(policy)
    x = np.ones((2, len(w.feature_names["comply"])))
    assert w.scaled(1) is w
    zero, half = w.scaled(0), w.scaled(0.5)
    np.testing.assert_allclose(zero.rbr_score("comply", x), 0.0)
    np.testing.assert_allclose(half.rbr_score("comply", x), 0.5 * w.rbr_score("comply", x))
    assert len({w.version, zero.version, half.version}) == 3 and zero.data["rbr_scale"] == 0
