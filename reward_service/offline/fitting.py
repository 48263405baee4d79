"""Comparison data -> features file -> fitted RBR weights, and the pairwise error-rate report.

Comparison data (JSON lines): `prompt`, `completion`, `response_type` (or `category`),
`completion_label`, optional `prompt_id`, `category`, `split` ("train" / "heldout"). One prompt appears
with several completions; the policy's ordering of labels says which completion should score higher.

Features file (JSON lines, from `rbr features`): `prompt_id`, `response_type`, `completion_label`,
`split`, `rm`, `features` {name: value}, `scorer` (who computed the row: grader, mode, policy, RM).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from propositions import Policy, class_vertices
from reward_service.errors import InputError
from reward_service.grader import GradeItem, iter_jsonl, parse_item
from reward_service.reward.linear import PairSet, RBRWeights, fit_hinge, make_pairs, pairwise_error_rate

__all__ = [
    "ComparisonRow",
    "FeatureRow",
    "error_rates",
    "fit_weights",
    "read_comparisons",
    "read_features",
    "reward_model_of",
    "write_features",
]

SPLITS = ("train", "heldout")


@dataclass
class ComparisonRow:
    item: GradeItem
    prompt_id: str
    completion_label: str
    split: str


@dataclass
class FeatureRow:
    prompt_id: str
    response_type: str
    completion_label: str
    split: str
    rm: float
    features: dict[str, float]
    scorer: str = ""  # JSON {grader, mode, policy, reward_model}: what computed the row (Scorer.identity)

    def as_json(self) -> str:
        return json.dumps(self.__dict__)


def heldout_split(prompt_id: str, frac: float = 0.2) -> str:
    """Deterministic split by prompt, for data that does not say."""
    h = int(hashlib.sha256(prompt_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "heldout" if h < frac else "train"


def read_comparisons(lines: Sequence[str], source: str, policy: Policy) -> list[ComparisonRow]:
    rows = []
    for n, obj in iter_jsonl(lines, source):
        where = f"{source} line {n}"
        item = parse_item(obj, policy, where)
        label = obj.get("completion_label")
        ordering = policy.response_types[item.response_type].ordering
        if label not in ordering:
            raise InputError(f"{where}: completion_label", f"{label!r} is not one of {list(ordering)}")
        pid = (
            obj.get("prompt_id")
            or hashlib.sha256(json.dumps([list(map(dict, item.conversation))]).encode()).hexdigest()[:16]
        )
        split = obj.get("split") or heldout_split(pid)
        if split not in SPLITS:
            raise InputError(f"{where}: split", f"{split!r} is not one of {list(SPLITS)}")
        rows.append(ComparisonRow(item, str(pid), label, split))
    if not rows:
        raise InputError(source, "no rows")
    return rows


def read_features(path: str | Path) -> list[FeatureRow]:
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as e:
        raise InputError(str(path), f"cannot read: {e.strerror or e}") from None
    rows = []
    for n, obj in iter_jsonl(lines, str(path)):
        try:
            rows.append(FeatureRow(**obj))
        except TypeError as e:
            raise InputError(f"{path} line {n}", f"not a features row: {e}") from None
    if not rows:
        raise InputError(str(path), "no rows")
    return rows


def write_features(
    path: str | Path, rows: Sequence[ComparisonRow], scored: Sequence, policy: Policy, scorer: str
) -> None:
    """One FeatureRow per comparison row; `scored`: the Scorer's output for the rows' items, `scorer` its identity."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for r, s in zip(rows, scored, strict=True):
            names = policy.feature_names(s.response_type)
            feats = {n: round(float(v), 6) for n, v in zip(names, s.features, strict=True)}
            row = FeatureRow(r.prompt_id, s.response_type, r.completion_label, r.split, round(s.rm, 6), feats, scorer)
            f.write(row.as_json() + "\n")


def reward_model_of(rows: Sequence[FeatureRow], source: str) -> str:
    """The identity of the RM that scored every row (fitted weights record it); InputError if rows disagree."""
    scorers = sorted({r.scorer for r in rows})
    if len(scorers) > 1:
        raise InputError(source, f"rows were scored by different graders/RMs: {scorers}")
    try:
        return json.loads(scorers[0])["reward_model"]
    except (ValueError, KeyError, TypeError):
        raise InputError(source, "rows do not say which RM scored them; rerun `rbr features`") from None


def _matrix(rows: Sequence[FeatureRow], names: Sequence[str], where: str) -> np.ndarray:
    missing = sorted(set(names) - set(rows[0].features)) if rows else []
    if missing:
        raise InputError(where, f"features file lacks features {missing} that the policy defines")
    return np.array([[r.features[n] for n in names] for r in rows], dtype=float)  # (n, d)


def _pairs(rows: Sequence[FeatureRow], ordering: Sequence[str], margins: Mapping[str, float] | None) -> PairSet:
    return make_pairs([r.prompt_id for r in rows], [r.completion_label for r in rows], ordering, margins)


def fit_weights(
    rows: Sequence[FeatureRow],
    policy: Policy,
    reward_model: str,
    data: dict,
    margins: Mapping[str, float] | None = None,
    l1: float = 0.0,
    l2: float = 0.0,
    order_margin: float | None = 1.0,
    rbr_alone: float = 0.0,
    max_weight: float | None = None,
) -> RBRWeights:
    """Fit w per response type on the train split (RM weight fixed at 1).

    `order_margin`: every crisp completion of a class scores at least this much above every crisp
    completion of the next class in the policy's ordering (linear.fit_hinge's order constraints); None
    fits without them. `rbr_alone`: weight of the hinge loss of the RBR term alone; `max_weight`: a bound
    on every |weight| (linear.fit_hinge).
    """
    names, weights, fit_info = {}, {}, {}
    for rt, spec in policy.response_types.items():
        names[rt] = list(policy.feature_names(rt))
        sub = [r for r in rows if r.response_type == rt and r.split == "train"]
        pairs = _pairs(sub, spec.ordering, margins) if sub else PairSet(np.zeros(0, int), np.zeros(0, int), np.zeros(0))
        if len(pairs) == 0:
            weights[rt] = [0.0] * len(names[rt])  # no data: the RM alone decides; recorded below
            fit_info[rt] = {"pairs": 0, "note": "no training pairs: weights are zero"}
            continue
        order = []
        if order_margin is not None:
            vertices = class_vertices(policy, rt)
            order = [vertices[c] for c in spec.ordering if c in vertices]
        x, rm = _matrix(sub, names[rt], rt), np.array([r.rm for r in sub])
        res = fit_hinge(x, rm, pairs, l1, l2, order, order_margin or 0.0, rbr_alone, max_weight)
        weights[rt] = [float(v) for v in res.weights]
        fit_info[rt] = {"pairs": res.pairs, "train_hinge_loss": round(res.loss, 6)}
    return RBRWeights(
        policy.hash,
        names,
        weights,
        reward_model,
        {
            **data,
            "margins": dict(margins or {}),
            "l1": l1,
            "l2": l2,
            "order_margin": order_margin,
            "rbr_alone": rbr_alone,
            "max_weight": max_weight,
        },
        {"fit": fit_info},
    )


def error_rates(rows: Sequence[FeatureRow], policy: Policy, weights: RBRWeights, split: str | None = "heldout") -> dict:
    """Pairwise error rate of RM only, RBR only and RM + RBR, per response type and over all pairs."""
    out: dict[str, dict[str, float]] = {"rm": {}, "rbr": {}, "rm_rbr": {}}
    wrong = {k: 0 for k in out}
    total = 0
    for rt, spec in policy.response_types.items():
        sub = [r for r in rows if r.response_type == rt and (split is None or r.split == split)]
        if not sub:
            continue
        pairs = _pairs(sub, spec.ordering, None)
        if len(pairs) == 0:
            continue
        x = _matrix(sub, weights.feature_names[rt], rt)
        rm = np.array([r.rm for r in sub])
        rbr = weights.rbr_score(rt, x)
        for key, reward in (("rm", rm), ("rbr", rbr), ("rm_rbr", rm + rbr)):
            out[key][rt] = round(pairwise_error_rate(reward, pairs), 4)
            wrong[key] += int((reward[pairs.better] <= reward[pairs.worse]).sum())
        total += len(pairs)
    for key in out:
        out[key]["all"] = round(wrong[key] / total, 4) if total else float("nan")
    return {"error_rate": out, "pairs": total, "split": split or "all"}


def plot_reward_histograms(rows: Sequence[FeatureRow], policy: Policy, weights: RBRWeights, path: Path) -> None:
    """Histograms of reward per completion label, centred per prompt on its ideal completions' mean."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rts = [rt for rt in policy.response_types if any(r.response_type == rt for r in rows)]
    fig, axes = plt.subplots(len(rts), 2, figsize=(11, 2.8 * len(rts)), squeeze=False)
    for row_ax, rt in zip(axes, rts, strict=True):
        sub = [r for r in rows if r.response_type == rt]
        x = _matrix(sub, weights.feature_names[rt], rt)
        rm = np.array([r.rm for r in sub])
        for ax, (title, reward) in zip(
            row_ax, (("RM only", rm), ("RM + RBR", rm + weights.rbr_score(rt, x))), strict=True
        ):
            centre = {}
            for pid in {r.prompt_id for r in sub}:
                ideal = [reward[i] for i, r in enumerate(sub) if r.prompt_id == pid and r.completion_label == "ideal"]
                centre[pid] = float(np.mean(ideal)) if ideal else float("nan")
            per_label = {}
            for label in policy.response_types[rt].ordering:
                vals = [reward[i] - centre[r.prompt_id] for i, r in enumerate(sub) if r.completion_label == label]
                per_label[label] = [v for v in vals if np.isfinite(v)]
            everything = [v for vals in per_label.values() for v in vals]
            bins = np.linspace(min(everything), max(everything), 41) if everything else 10
            for label, vals in per_label.items():
                if vals:
                    ax.hist(vals, bins=bins, alpha=0.5, label=f"{label} ({len(vals)})")
            ax.axvline(0, color="k", lw=0.8)
            ax.set_title(f"{rt}: {title}", fontsize=9)
            ax.set_xlabel("reward − mean reward of the prompt's ideal completions", fontsize=8)
        if row_ax[0].get_legend_handles_labels()[0]:
            row_ax[0].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
