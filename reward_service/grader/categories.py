"""The prompt classifier: P(category) over the policy's content categories, read from the grader LLM.

It reads `Readout.prompt` (the mean hidden state over the conversation's tokens and over its last message's,
at chosen read-out layers), which the forward pass that grades a completion computes anyway: the grader
prompt puts the conversation before the completion, so under causal attention those states are the
prompt's alone. A multinomial logistic regression on the standardised states gives P(category); the
content policy maps categories to response types.

Fitted on labelled prompts by `rbr fit-classifier` and saved in one .npz with what it was fitted for
(grader model, prompt format, read-out layers, the policy's categories); a grader with anything different
refuses to load it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from reward_service.errors import HeadsError
from reward_service.grader._engine import PROMPT_STATS, Readout
from reward_service.grader.heads import load_fitted, model_of, save_fitted

__all__ = ["CategoryClassifier", "ClassifierSpec", "prompt_features"]


@dataclass(frozen=True)
class ClassifierSpec:
    """Which prompt states the classifier reads. Layer entries index the engine's read-out layers."""

    stats: tuple[str, ...] = ("last_turn",)
    layers: tuple[int, ...] = (2, 3)
    C: float = 0.003  # inverse L2 strength of the logistic regression

    def __post_init__(self) -> None:
        unknown = [s for s in self.stats if s not in PROMPT_STATS]
        if unknown or not self.stats or not self.layers:
            raise ValueError(f"stats must be a non-empty subset of {PROMPT_STATS} and layers non-empty")


def prompt_features(readouts: Sequence[Readout], spec: ClassifierSpec) -> np.ndarray:
    """(n, d) features of each readout's prompt states."""
    rows = []
    for ro in readouts:
        if ro.prompt is None:
            raise HeadsError("the prompt classifier reads hidden states, which this grader engine does not return")
        rows.append(ro.prompt[[PROMPT_STATS.index(s) for s in spec.stats]][:, list(spec.layers)].ravel())
    return np.asarray(rows, dtype=np.float32)  # (n, d)


@dataclass
class CategoryClassifier:
    """P(category | prompt) for one policy's categories, with what it was fitted for."""

    categories: tuple[str, ...]  # the classes, in coef row order
    spec: ClassifierSpec
    mean: np.ndarray  # (d,)
    scale: np.ndarray  # (d,)
    coef: np.ndarray  # (k, d)
    intercept: np.ndarray  # (k,)
    engine_id: str
    prompt_version: str
    layers: tuple[int, ...]
    info: dict = field(default_factory=dict)  # fitted-on data and dev metrics: for people, not for code

    @classmethod
    def fit(
        cls,
        readouts: Sequence[Readout],
        labels: Sequence[str],
        categories: Sequence[str],
        spec: ClassifierSpec,
        *,
        engine_id: str,
        prompt_version: str,
        layers: Sequence[int],
        info: dict | None = None,
        weights: Sequence[float] | None = None,
    ) -> CategoryClassifier:
        """Fit on prompts' readouts and their categories (each one of `categories`; a category with no
        example keeps probability ~0); `weights[i]` weighs prompt i (default: every prompt 1)."""
        unknown = sorted(set(labels) - set(categories))
        if unknown:
            raise HeadsError(f"labels name categories the policy does not have: {', '.join(unknown)}")
        x = prompt_features(readouts, spec)  # (n, d)
        w = None if weights is None else np.asarray(weights, dtype=float)
        scaler = StandardScaler().fit(x, sample_weight=w)
        present = sorted(set(labels), key=list(categories).index)
        if len(present) < 2:
            raise HeadsError(f"a classifier needs examples of two categories or more, not {present}")
        clf = LogisticRegression(C=spec.C, max_iter=5000).fit(scaler.transform(x), list(labels), sample_weight=w)
        k, d = len(categories), x.shape[1]
        coef, intercept = np.zeros((k, d)), np.full(k, -30.0)  # absent categories: logit -30
        rows = [list(categories).index(c) for c in clf.classes_]
        if len(clf.classes_) == 2:  # sklearn's binary case: one row for the second class
            coef[rows[1]], intercept[rows[1]] = clf.coef_[0], clf.intercept_[0]
            intercept[rows[0]] = 0.0
        else:
            coef[rows], intercept[rows] = clf.coef_, clf.intercept_
        return cls(
            tuple(categories), spec, scaler.mean_, scaler.scale_, coef, intercept,
            engine_id, prompt_version, tuple(layers), info or {},
        )  # fmt: skip

    def check_compatible(self, engine_id: str, prompt_version: str, layers: Sequence[int], categories) -> None:
        diffs = []
        if model_of(engine_id) != model_of(self.engine_id):
            diffs.append(f"grader model {engine_id!r} != fitted for {self.engine_id!r}")
        if prompt_version != self.prompt_version:
            diffs.append(f"prompt format {prompt_version} != fitted for {self.prompt_version}")
        if tuple(layers) != tuple(self.layers):
            diffs.append(f"read-out layers {tuple(layers)} != fitted for {self.layers}")
        if tuple(categories) != self.categories:
            diffs.append(f"policy categories {tuple(categories)} != fitted for {self.categories}")
        if diffs:
            raise HeadsError(
                "the prompt classifier does not match this grader: " + "; ".join(diffs) + " (refit with "
                "`rbr fit-classifier`)"
            )

    def predict(self, readouts: Sequence[Readout]) -> list[dict[str, float]]:
        """P(category) for each readout's prompt; each dict sums to 1."""
        z = ((prompt_features(readouts, self.spec) - self.mean) / self.scale) @ self.coef.T + self.intercept  # (n, k)
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)  # (n, k)
        return [dict(zip(self.categories, map(float, row), strict=True)) for row in p]

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            "categories": list(self.categories),
            "spec": asdict(self.spec),
            "engine_id": self.engine_id,
            "prompt_version": self.prompt_version,
            "layers": list(self.layers),
            "info": self.info,
        }
        save_fitted(
            path, meta, {k: getattr(self, k).astype(np.float32) for k in ("mean", "scale", "coef", "intercept")}
        )

    @classmethod
    def load(cls, path: str | Path) -> CategoryClassifier:
        meta, z = load_fitted(path, "prompt classifier", "rbr fit-classifier")
        try:
            arrays = {k: z[k] for k in ("mean", "scale", "coef", "intercept")}
            spec = ClassifierSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in meta["spec"].items()})
            return cls(
                tuple(meta["categories"]), spec, **arrays, engine_id=meta["engine_id"],
                prompt_version=meta["prompt_version"], layers=tuple(meta["layers"]), info=meta.get("info", {}),
            )  # fmt: skip
        except (KeyError, ValueError, TypeError) as e:
            raise HeadsError(f"{path}: not a valid prompt classifier file: {e}") from e
