"""Trained heads and calibrators: fitting, persistence and refusing a mismatched grader."""

from __future__ import annotations

import numpy as np
import pytest

from reward_service.errors import HeadsError
from reward_service.grader._engine import Readout
from reward_service.grader.heads import FeatureSpec, GraderHeads, fit_heads, head_features

RNG = np.random.default_rng(0)
H = 16


def fake_readouts(n: int, signal: np.ndarray) -> list[Readout]:
    """Readouts whose layer-1 mean state carries `signal` (n,) along one direction."""
    out = []
    for i in range(n):
        pooled = RNG.normal(size=(2, 4, H)).astype(np.float32)
        pooled[0, 1, 3] += 3.0 * signal[i]
        out.append(Readout(np.array([signal[i] * 2.0 - 1.0, 0.0]), pooled, None, 10))
    return out


def fitted(y: np.ndarray, spec: FeatureSpec) -> tuple[GraderHeads, list[Readout]]:
    ros = fake_readouts(len(y), y.astype(float))
    labels = [{"a": bool(v), "b": bool(i % 2)} for i, v in enumerate(y)]
    heads = fit_heads(
        ros,
        labels,
        ["a", "b"],
        spec,
        engine_id="m|bf16",
        prompt_version="v",
        layers=(8, 12, 16, 20),
        questions={"a": "qa", "b": "qb"},
    )
    return heads, ros


def test_head_learns_the_signal_and_roundtrips(tmp_path):
    y = RNG.random(200) < 0.4
    heads, ros = fitted(y, FeatureSpec(pooled_stats=("mean",), pooled_layers=(1,), C=1.0))
    p = np.array([heads.predict(ro, ["a"])[0] for ro in ros])
    assert ((p >= 0.5) == y).mean() > 0.95
    heads.save(tmp_path / "h.npz")
    again = GraderHeads.load(tmp_path / "h.npz")
    p2 = np.array([again.predict(ro, ["a"])[0] for ro in ros])
    np.testing.assert_allclose(p, p2, atol=1e-5)
    assert again.calibrators == heads.calibrators
    assert again.heads["a"].spec == heads.heads["a"].spec
    assert again.fingerprint == heads.fingerprint  # the same fit, saved and loaded


def test_fingerprint_changes_with_any_fitted_number():
    y = RNG.random(100) < 0.5
    heads, _ = fitted(y, FeatureSpec(pooled_stats=("mean",), pooled_layers=(1,), C=1.0))
    before = heads.fingerprint
    heads.heads["b"].coef = heads.heads["b"].coef.copy()
    heads.heads["b"].coef[0] += 1e-3
    assert heads.fingerprint != before


def test_calibrator_follows_the_log_odds():
    y = RNG.random(300) < 0.5
    heads, ros = fitted(y, FeatureSpec())
    a, _ = heads.calibrators["a"]
    assert a > 0
    assert heads.calibrate("a", 1.0) > 0.5 > heads.calibrate("a", -1.0)


def test_feature_shapes():
    ros = fake_readouts(3, np.zeros(3))
    assert head_features(ros, None, FeatureSpec()).shape == (3, 2 * 4 * H)
    assert head_features(ros, 0, FeatureSpec(pooled_stats=("max",), pooled_layers=(0, 2), logit=True)).shape == (
        3,
        2 * H + 1,
    )
    with pytest.raises(HeadsError, match="answer-position"):
        head_features(ros, 0, FeatureSpec(answer_layers=(0,)))


def test_mismatched_grader_is_refused(tmp_path):
    heads, _ = fitted(RNG.random(40) < 0.5, FeatureSpec())
    heads.check_compatible("m|bf16", "v", (8, 12, 16, 20))
    with pytest.raises(HeadsError, match="grader model 'other|bf16' != fitted for 'm|bf16'"):
        heads.check_compatible("other|bf16", "v", (8, 12, 16, 20))
    with pytest.raises(HeadsError, match="read-out layers"):
        heads.check_compatible("m|bf16", "v", (1, 2))
    with pytest.raises(HeadsError, match="no fitted heads for proposition"):
        heads.check_questions({"a": "qa", "c": "qc"}, ["c"], "heads")
    with pytest.raises(HeadsError, match="question changed"):
        heads.check_questions({"a": "changed"}, ["a"], "calibrated")
    with pytest.raises(HeadsError, match="no such heads file"):
        GraderHeads.load(tmp_path / "missing.npz")
    (tmp_path / "bad.npz").write_bytes(b"not an npz")
    with pytest.raises(HeadsError, match="not a valid heads file"):
        GraderHeads.load(tmp_path / "bad.npz")


def test_overrides_give_one_proposition_its_own_spec():
    from reward_service.grader.heads import load_head_specs

    default, overrides = load_head_specs(
        {"pooled_stats": ["mean"], "pooled_layers": [1], "C": 1.0, "overrides": {"a": {"pooled_layers": [0, 1]}}}
    )
    assert default == FeatureSpec(pooled_stats=("mean",), pooled_layers=(1,), C=1.0)
    assert overrides == {"a": FeatureSpec(pooled_stats=("mean",), pooled_layers=(0, 1), C=1.0)}
    y = RNG.random(120) < 0.5
    ros = fake_readouts(len(y), y.astype(float))
    labels = [{"a": bool(v), "b": bool(v)} for v in y]
    heads = fit_heads(
        ros,
        labels,
        ["a", "b"],
        default,
        engine_id="m",
        prompt_version="v",
        layers=(8, 12, 16, 20),
        questions={"a": "qa", "b": "qb"},
        overrides=overrides,
    )
    assert heads.heads["a"].spec == overrides["a"] and heads.heads["a"].coef.shape == (2 * H,)
    assert heads.heads["b"].spec == default and heads.heads["b"].coef.shape == (H,)
    with pytest.raises(TypeError):
        load_head_specs({"overrides": {"a": {"no_such_field": 1}}})


def test_answer_rows_follow_the_asked_questions_only():
    """A head reading answer states finds its row among the asked questions, not among all names."""
    from reward_service.grader.heads import load_head_specs

    rng = np.random.default_rng(1)
    y = rng.random(150) < 0.5
    ros = []
    for v in y:
        pooled = rng.normal(size=(2, 4, H)).astype(np.float32)
        answer = rng.normal(size=(2, 4, H)).astype(np.float32)  # rows: questions "x", "a"
        answer[1, 2, 5] += 3.0 * v  # the signal sits in the answer state of question "a"
        ros.append(Readout(np.zeros(2), pooled, answer, 10))
    default, overrides = load_head_specs({"pooled_layers": [0], "C": 1.0, "overrides": {"a": {"answer_layers": [2]}}})
    labels = [{"a": bool(v), "x": bool(v)} for v in y]
    heads = fit_heads(
        ros,
        labels,
        ["x", "a"],
        default,
        engine_id="m",
        prompt_version="v",
        layers=(8, 12, 16, 20),
        questions={"x": "qx", "a": "qa"},
        overrides=overrides,
    )
    assert heads.uses_question("a") and not heads.uses_question("x")
    # served: the grader asks only "a", so the readout holds one answer row
    served = [Readout(np.zeros(1), ro.pooled, ro.answer[1:], 10) for ro in ros]
    p = np.array([heads.predict(ro, ["x", "a"], asked=["a"])[1] for ro in served])
    assert ((p >= 0.5) == y).mean() > 0.9
    np.testing.assert_allclose(p, [heads.predict(ro, ["x", "a"])[1] for ro in ros])  # same as all asked
