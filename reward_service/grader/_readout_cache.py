"""Grader readouts on disk (the readout cache): one .npz per item and question set, float16 where it fits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from reward_service.grader._engine import Readout

__all__ = ["load_readout", "save_readout"]


def _compact(a: np.ndarray) -> np.ndarray:
    """float16 where every value fits in it; float32 otherwise (some models' hidden states reach 1e5 and more)."""
    return a.astype(np.float16) if np.abs(a).max(initial=0.0) < np.finfo(np.float16).max else a.astype(np.float32)


def save_readout(path: Path, ro: Readout) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    arrays: dict[str, Any] = {"yes_logit": ro.yes_logit, "pooled": _compact(ro.pooled), "tokens": ro.tokens}
    if ro.answer is not None:
        arrays["answer"] = _compact(ro.answer)
    if ro.prompt is not None:
        arrays["prompt"] = _compact(ro.prompt)
    np.savez(tmp, **arrays)
    tmp.replace(path)


def load_readout(path: Path) -> Readout:
    with np.load(path) as z:
        answer = z["answer"].astype(np.float32) if "answer" in z else None
        prompt = z["prompt"].astype(np.float32) if "prompt" in z else None
        return Readout(z["yes_logit"], z["pooled"].astype(np.float32), answer, int(z["tokens"]), prompt)
