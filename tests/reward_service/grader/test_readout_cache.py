"""The on-disk readout cache keeps what the engine returned (float16 only where that loses no range)."""

import numpy as np

from reward_service.grader._engine import Readout
from reward_service.grader._readout_cache import load_readout, save_readout


def _readout(scale: float) -> Readout:
    rng = np.random.default_rng(0)
    pooled = (rng.standard_normal((4, 2, 8)) * scale).astype(np.float32)  # (stats, layers, H)
    answer = (rng.standard_normal((3, 2, 8)) * scale).astype(np.float32)  # (questions, layers, H)
    prompt = (rng.standard_normal((2, 2, 8)) * scale).astype(np.float32)  # (PROMPT_STATS, layers, H)
    return Readout(np.array([0.5, -1.0, 2.0], dtype=np.float32), pooled, answer, 17, prompt)


def test_large_hidden_states_survive_the_cache(tmp_path):
    ro = _readout(1e5)  # Gemma 3's residual stream reaches values above float16's 65504
    save_readout(tmp_path / "a.npz", ro)
    back = load_readout(tmp_path / "a.npz")
    assert np.isfinite(back.pooled).all() and np.isfinite(back.answer).all()
    np.testing.assert_allclose(back.pooled, ro.pooled, rtol=1e-6)
    np.testing.assert_allclose(back.answer, ro.answer, rtol=1e-6)
    np.testing.assert_allclose(back.prompt, ro.prompt, rtol=1e-6)
    assert back.tokens == 17


def test_ordinary_hidden_states_are_stored_as_float16(tmp_path):
    ro = _readout(3.0)
    save_readout(tmp_path / "b.npz", ro)
    with np.load(tmp_path / "b.npz") as z:
        assert z["pooled"].dtype == np.float16
    np.testing.assert_allclose(load_readout(tmp_path / "b.npz").pooled, ro.pooled, rtol=1e-3, atol=1e-3)
