"""Fitted read-outs of the grader LLM: per-proposition calibrators and trained heads.

calibrator  P(yes) = sigmoid(a * z + b), z = the prompted yes-vs-no log-odds (Platt scaling);
head        P(yes) = logistic regression on standardised hidden states of the grader LLM: the mean over
            the completion's tokens (one forward serves every proposition) and, optionally, the state
            at the answer position of the proposition's question and its log-odds z.

Both are fitted on labelled (conversation, completion, propositions) rows and saved in one .npz with
the identity of what they were fitted on (model, prompt format, read-out layers, question texts); a
grader with anything different refuses to load them rather than return misleading probabilities.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from reward_service.errors import HeadsError
from reward_service.grader._engine import POOL_STATS, Readout, sigmoid

__all__ = [
    "FeatureSpec",
    "GraderHeads",
    "head_features",
    "load_fitted",
    "load_head_specs",
    "model_of",
    "question_hash",
    "save_fitted",
]


@dataclass(frozen=True)
class FeatureSpec:
    """Which parts of a readout a head reads. Layer entries index the engine's read-out layers."""

    pooled_stats: tuple[str, ...] = ("mean", "max")  # of POOL_STATS
    pooled_layers: tuple[int, ...] = (0, 1, 2, 3)
    answer_layers: tuple[int, ...] = ()
    logit: bool = False
    C: float = 0.01  # inverse L2 strength of the logistic regression

    @classmethod
    def from_dict(cls, d: Mapping) -> FeatureSpec:
        """From JSON-like data (lists become tuples); unknown keys are an error."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    @property
    def uses_question(self) -> bool:
        return bool(self.answer_layers) or self.logit


def load_head_specs(d: Mapping) -> tuple[FeatureSpec, dict[str, FeatureSpec]]:
    """A head spec file: a FeatureSpec, optionally with `"overrides": {proposition: {field: value, ...}}`.

    Returns the default spec and, per overridden proposition, the default with its overrides applied.
    """
    base = {k: v for k, v in d.items() if k != "overrides"}
    default = FeatureSpec.from_dict(base)
    return default, {name: FeatureSpec.from_dict({**base, **o}) for name, o in d.get("overrides", {}).items()}


def head_features(readouts: Sequence[Readout], j: int | None, spec: FeatureSpec) -> np.ndarray:
    """(n, d) feature matrix for proposition index `j` of each readout's questions."""
    rows = []
    for ro in readouts:
        stats = [POOL_STATS.index(s) for s in spec.pooled_stats]
        parts = [ro.pooled[stats][:, list(spec.pooled_layers)].ravel()] if spec.pooled_layers and stats else []
        if spec.answer_layers:
            if ro.answer is None or j is None:
                raise HeadsError("this head reads answer-position states, but the readout has none")
            parts.append(ro.answer[j][list(spec.answer_layers)].ravel())
        if spec.logit:
            parts.append(ro.yes_logit[j : j + 1])
        rows.append(np.concatenate(parts))
    return np.asarray(rows, dtype=np.float32)  # (n, d)


def model_of(engine_id: str) -> str:
    """The model part of an engine id ('embedded:smollm2-135m|bfloat16' -> 'embedded:smollm2-135m')."""
    return engine_id.split("|", 1)[0]


def question_hash(question_suffix_ids: Sequence[int]) -> str:
    return hashlib.sha256(json.dumps(list(question_suffix_ids)).encode()).hexdigest()[:12]


@dataclass
class _Head:
    spec: FeatureSpec
    mean: np.ndarray  # (d,)
    scale: np.ndarray  # (d,)
    coef: np.ndarray  # (d,)
    intercept: float

    def predict(self, x: np.ndarray) -> np.ndarray:
        z = ((x - self.mean) / self.scale) @ self.coef + self.intercept  # (n,)
        return sigmoid(z)


@dataclass
class GraderHeads:
    """Calibrators and heads for a set of propositions, with what they were fitted for."""

    engine_id: str
    prompt_version: str
    layers: tuple[int, ...]
    questions: dict[str, str]  # proposition -> hash of its question suffix (what the model was asked)
    calibrators: dict[str, tuple[float, float]] = field(default_factory=dict)
    heads: dict[str, _Head] = field(default_factory=dict)
    info: dict = field(default_factory=dict)  # fitted-on data, CV metrics: for people, not for code

    @property
    def fingerprint(self) -> str:
        """A short hash of the fitted numbers: features computed with other heads are other features."""
        h = hashlib.sha256(
            json.dumps([self.engine_id, self.prompt_version, self.layers, self.calibrators], sort_keys=True).encode()
        )
        for name in sorted(self.heads):
            head = self.heads[name]
            h.update(name.encode())
            for arr in (head.mean, head.scale, head.coef):
                h.update(np.ascontiguousarray(arr, dtype=np.float32).tobytes())
            h.update(repr(float(head.intercept)).encode())
        return h.hexdigest()[:12]

    # -- use -------------------------------------------------------------------------------------------

    def check_compatible(self, engine_id: str, prompt_version: str, layers: Sequence[int]) -> None:
        diffs = []
        if model_of(engine_id) != model_of(self.engine_id):  # the dtype may differ: heads serve under either
            diffs.append(f"grader model {engine_id!r} != fitted for {self.engine_id!r}")
        if prompt_version != self.prompt_version:
            diffs.append(f"prompt format {prompt_version} != fitted for {self.prompt_version}")
        if tuple(layers) != tuple(self.layers):
            diffs.append(f"read-out layers {tuple(layers)} != fitted for {self.layers}")
        if diffs:
            raise HeadsError("heads do not match this grader: " + "; ".join(diffs) + " (refit with `rbr fit-grader`)")

    def check_questions(self, current: Mapping[str, str], names: Sequence[str], mode: str) -> None:
        """Every proposition graded in `mode` needs a fit for exactly the question the policy asks now."""
        fitted = self.heads if mode == "heads" else self.calibrators
        missing = [n for n in names if n not in fitted]
        if missing:
            raise HeadsError(f"no fitted {mode} for proposition(s): {', '.join(missing)} (refit with `rbr fit-grader`)")
        changed = [
            n
            for n in names
            if (mode == "calibrated" or self.heads[n].spec.uses_question) and self.questions.get(n) != current[n]
        ]
        if changed:
            raise HeadsError(
                f"the policy's question changed since the {mode} were fitted for: {', '.join(changed)} "
                "(refit with `rbr fit-grader`, or grade in mode 'prompted')"
            )

    def uses_question(self, name: str) -> bool:
        return name in self.heads and self.heads[name].spec.uses_question

    def calibrate(self, name: str, z: float) -> float:
        a, b = self.calibrators[name]
        return float(sigmoid(a * z + b))

    def predict(self, ro: Readout, names: Sequence[str], asked: Sequence[str] | None = None) -> np.ndarray:
        """P(yes) for `names`, in order; `ro.yes_logit`/`ro.answer` rows follow `asked` (default: `names`)."""
        asked = list(names if asked is None else asked)
        out = np.empty(len(names))
        for i, name in enumerate(names):
            head = self.heads[name]
            j = asked.index(name) if head.spec.uses_question else None
            out[i] = head.predict(head_features([ro], j, head.spec))[0]
        return out

    # -- fitting ---------------------------------------------------------------------------------------

    @staticmethod
    def fit_calibrator(z: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        """Platt scaling of log-odds z (n,) against labels y (n,)."""
        if len(set(y.tolist())) < 2:
            p = float(np.clip(y.mean(), 1e-3, 1 - 1e-3))
            return 0.0, float(np.log(p / (1 - p)))
        clf = LogisticRegression(C=1.0).fit(z.reshape(-1, 1), y.astype(int))
        return float(clf.coef_[0, 0]), float(clf.intercept_[0])

    @staticmethod
    def fit_head(x: np.ndarray, y: np.ndarray, spec: FeatureSpec, sample_weight: np.ndarray | None = None) -> _Head:
        """Logistic regression on standardised features x (n, d) for labels y (n,), rows weighted if given."""
        if len(set(y.tolist())) < 2:  # a constant label: predict its (smoothed) rate
            p = float(np.clip(y.mean(), 1e-3, 1 - 1e-3))
            d = x.shape[1]
            return _Head(spec, np.zeros(d), np.ones(d), np.zeros(d), float(np.log(p / (1 - p))))
        scaler = StandardScaler().fit(x, sample_weight=sample_weight)
        clf = LogisticRegression(C=spec.C, max_iter=5000).fit(scaler.transform(x), y.astype(int), sample_weight)
        return _Head(spec, scaler.mean_, scaler.scale_, clf.coef_[0].copy(), float(clf.intercept_[0]))

    # -- persistence -----------------------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            "engine_id": self.engine_id,
            "prompt_version": self.prompt_version,
            "layers": list(self.layers),
            "questions": self.questions,
            "calibrators": self.calibrators,
            "info": self.info,
            "heads": {n: {"spec": asdict(h.spec), "intercept": h.intercept} for n, h in self.heads.items()},
        }
        arrays = {}
        for n, h in self.heads.items():
            arrays[f"{n}/mean"], arrays[f"{n}/scale"], arrays[f"{n}/coef"] = (
                h.mean.astype(np.float32),
                h.scale.astype(np.float32),
                h.coef.astype(np.float32),
            )
        save_fitted(path, meta, arrays)

    @classmethod
    def load(cls, path: str | Path) -> GraderHeads:
        meta, z = load_fitted(path, "heads", "rbr fit-grader")
        try:
            heads = {}
            for n, h in meta["heads"].items():
                spec = FeatureSpec.from_dict(h["spec"])
                heads[n] = _Head(spec, z[f"{n}/mean"], z[f"{n}/scale"], z[f"{n}/coef"], h["intercept"])
        except (KeyError, ValueError, TypeError) as e:
            raise HeadsError(f"{path}: not a valid heads file: {e}") from e
        return cls(
            meta["engine_id"],
            meta["prompt_version"],
            tuple(meta["layers"]),
            meta["questions"],
            {n: tuple(v) for n, v in meta["calibrators"].items()},
            heads,
            meta.get("info", {}),
        )


def save_fitted(path: Path, meta: dict, arrays: Mapping[str, np.ndarray]) -> None:
    """A fitted read-out file: its JSON `meta` and float arrays in one .npz, written atomically."""
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
    tmp.replace(path)


def load_fitted(path: str | Path, what: str, fit_command: str) -> tuple[dict, dict[str, np.ndarray]]:
    """(meta, arrays) of a `save_fitted` file; a missing or unreadable file is a HeadsError naming `what`."""
    path = Path(path)
    if not path.exists():
        raise HeadsError(f"{path}: no such {what} file (fit one with `{fit_command}`)")
    try:
        with np.load(path) as z:
            return json.loads(z["meta"].tobytes().decode()), {k: z[k] for k in z.files if k != "meta"}
    except (KeyError, ValueError, TypeError, OSError) as e:
        raise HeadsError(f"{path}: not a valid {what} file: {e}") from e


def fit_heads(
    readouts: Sequence[Readout],
    labels: Sequence[Mapping[str, bool]],
    names: Sequence[str],
    spec: FeatureSpec,
    *,
    engine_id: str,
    prompt_version: str,
    layers: Sequence[int],
    questions: Mapping[str, str],
    info: dict | None = None,
    overrides: Mapping[str, FeatureSpec] | None = None,
    weights: Sequence[float] | None = None,
) -> GraderHeads:
    """Fit a calibrator and a head for each proposition in `names` (with `spec`, or its entry in `overrides`).

    `weights[i]` weighs row i in the heads' fits (default: every row 1).

    `readouts[i].yes_logit` / `.answer` rows follow `names`; `labels[i]` may lack some propositions
    (rows are used for the propositions they label).
    """
    out = GraderHeads(engine_id, prompt_version, tuple(layers), {n: questions[n] for n in names}, info=info or {})
    for j, name in enumerate(names):
        have = [i for i, lab in enumerate(labels) if name in lab]
        if not have:
            continue
        y = np.array([labels[i][name] for i in have], dtype=bool)
        sub = [readouts[i] for i in have]
        out.calibrators[name] = GraderHeads.fit_calibrator(np.array([ro.yes_logit[j] for ro in sub]), y)
        sp = (overrides or {}).get(name, spec)
        w = None if weights is None else np.array([weights[i] for i in have], dtype=float)
        out.heads[name] = GraderHeads.fit_head(head_features(sub, j, sp), y, sp, w)
    return out
