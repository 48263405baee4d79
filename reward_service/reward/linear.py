"""The RBR linear model: R = R_rm + w[response_type] . features, with w fitted by a hinge loss.

For one response type, every ordered pair (better, worse) of completions of the same prompt should get
R(better) >= R(worse) + margin. The fit minimises the mean hinge loss

    (1/K) sum_k max(0, margin_k + R(worse_k) - R(better_k))  [+ l1 |w|_1]  [+ l2 |w|^2]

with the reward model's weight fixed at 1. That is a linear program (a convex QP with l2), solved
exactly with HiGHS rather than by a fixed number of gradient steps:

    min_{w, xi >= 0}  (1/K) sum xi_k + l1 sum |w_j|    s.t.  xi_k >= margin_k + drm_k + w . dx_k
    dx_k = x(worse_k) - x(better_k)   (K, d)        drm_k = rm(worse_k) - rm(better_k)   (K,)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from itertools import pairwise
from pathlib import Path

import numpy as np
from scipy import sparse

from propositions import Policy, class_vertices
from reward_service.errors import InputError, WeightsMismatchError

__all__ = [
    "FitResult",
    "PairSet",
    "RBRWeights",
    "fit_hinge",
    "make_pairs",
    "order_violations",
    "pairwise_error_rate",
]


@dataclass
class PairSet:
    """Ordered pairs of one response type: row indices of the better and worse completion, and margins."""

    better: np.ndarray  # (K,) int
    worse: np.ndarray  # (K,) int
    margin: np.ndarray  # (K,) float

    def __len__(self) -> int:
        return len(self.better)


def make_pairs(
    prompt_ids: Sequence[str],
    labels: Sequence[str],
    ordering: Sequence[str],
    margins: Mapping[str, float] | None = None,
    default_margin: float = 1.0,
) -> PairSet:
    """Every (better, worse) pair of rows sharing a prompt whose labels differ in `ordering` (best first).

    The margin of a pair is `margins[worse label]` (default `default_margin`). A label not in the
    ordering, or an ordering with ties (a repeated label), is an InputError: such pairs have no order.
    """
    if len(set(ordering)) != len(ordering):
        dup = next(x for x in ordering if list(ordering).count(x) > 1)
        raise InputError("ordering", f"label {dup!r} appears twice: ties cannot be ordered")
    rank = {label: i for i, label in enumerate(ordering)}
    unknown = sorted({lab for lab in labels if lab not in rank})
    if unknown:
        raise InputError("completion_label", f"unknown label(s) {unknown}; the ordering is {list(ordering)}")
    margins = dict(margins or {})
    by_prompt: dict[str, list[int]] = {}
    for i, pid in enumerate(prompt_ids):
        by_prompt.setdefault(pid, []).append(i)
    better, worse, margin = [], [], []
    for rows in by_prompt.values():
        for i in rows:
            for j in rows:
                if rank[labels[i]] < rank[labels[j]]:
                    better.append(i)
                    worse.append(j)
                    margin.append(margins.get(labels[j], default_margin))
    return PairSet(np.array(better, dtype=int), np.array(worse, dtype=int), np.array(margin, dtype=float))


@dataclass
class FitResult:
    weights: np.ndarray  # (d,)
    loss: float  # mean hinge loss at the optimum (without the penalty)
    objective: float  # loss + penalty
    pairs: int


def hinge_loss(x: np.ndarray, rm: np.ndarray, pairs: PairSet, w: np.ndarray) -> float:
    r = rm + x @ w  # (n,)
    return float(np.maximum(0.0, pairs.margin + r[pairs.worse] - r[pairs.better]).mean())


def fit_hinge(
    x: np.ndarray,
    rm: np.ndarray,
    pairs: PairSet,
    l1: float = 0.0,
    l2: float = 0.0,
    order: Sequence[np.ndarray] = (),
    order_margin: float = 1.0,
    rbr_alone: float = 0.0,
    max_weight: float | None = None,
) -> FitResult:
    """Exact minimiser of the mean hinge loss (+ penalties). x: (n, d) features, rm: (n,) RM scores.

    `rbr_alone`: weight of a second mean hinge loss on the same pairs with the RM left out, so that the RBR
    term orders them by itself too, not only where the RM leaves it room (the objective is then
    hinge(RM + RBR) + rbr_alone * hinge(RBR)). `max_weight`: a bound on every |w_j| (a box; with l2 = 0 the
    fit stays a linear program).

    `order`: feature vectors of crisp completions per class, best class first ((m_c, d) each, as
    propositions.class_vertices gives them). With it the fit is constrained so that every completion of a
    class scores at least `order_margin` above every completion of the next class, RM held equal:

        lo_c <= w . a  for a in class c,   w . b <= hi_c  for b in class c,   hi_{c+1} + order_margin <= lo_c
    """
    if len(pairs) == 0:
        raise InputError("pairs", "no ordered pairs: every prompt needs completions with at least two labels")
    k, d = len(pairs), x.shape[1]
    dx = x[pairs.worse] - x[pairs.better]  # (K, d)
    const = pairs.margin + rm[pairs.worse] - rm[pairs.better]  # (K,)
    slack_cost = np.full(k, 1.0 / k)  # (K,)
    if rbr_alone > 0:  # the same pairs again, without the RM: K more slacks
        dx, const = np.vstack([dx, dx]), np.concatenate([const, pairs.margin])  # (2K, d), (2K,)
        slack_cost = np.concatenate([slack_cost, np.full(k, rbr_alone / k)])
    a, b = _constraints(dx, const, order, order_margin)
    w = _solve(a, b, d, slack_cost, len(order), l1, l2, max_weight)
    loss = hinge_loss(x, rm, pairs, w)
    alone = rbr_alone * hinge_loss(x, np.zeros_like(rm), pairs, w) if rbr_alone > 0 else 0.0
    return FitResult(w, loss, loss + alone + l1 * float(np.abs(w).sum()) + l2 * float(w @ w), len(pairs))


def _constraints(dx: np.ndarray, const: np.ndarray, order: Sequence[np.ndarray], order_margin: float):
    """Rows A v <= b over v = [w+ (d), w- (d), xi (K), lo (C), hi (C)]; w = w+ - w-."""
    k, c = len(dx), len(order)
    blocks = [sparse.hstack([dx, -dx, -sparse.identity(k), sparse.csr_matrix((k, 2 * c))])]  # xi >= const + dx.w
    rhs = [-const]
    for j, v in enumerate(order):  # lo_j <= w.a and w.b <= hi_j for every vertex of class j
        e = sparse.csr_matrix(([1.0] * len(v), (range(len(v)), [j] * len(v))), shape=(len(v), c))
        zeros, none = sparse.csr_matrix((len(v), k)), sparse.csr_matrix((len(v), c))
        blocks += [sparse.hstack([-v, v, zeros, e, none]), sparse.hstack([v, -v, zeros, none, -e])]
        rhs += [np.zeros(len(v)), np.zeros(len(v))]
    n = 2 * dx.shape[1] + k + 2 * c
    for j in range(c - 1):  # hi_{j+1} - lo_j <= -order_margin
        row = np.zeros(n)
        row[n - 2 * c + j], row[n - c + j + 1] = -1.0, 1.0
        blocks.append(sparse.csr_matrix(row))
        rhs.append(np.array([-order_margin]))
    return sparse.vstack(blocks, format="csr"), np.concatenate(rhs)


def _solve(a, b, d: int, slack_cost: np.ndarray, c: int, l1: float, l2: float, max_weight: float | None) -> np.ndarray:
    """min l1 |w|_1 + slack_cost . xi [+ l2 |w|^2] s.t. A v <= b, by HiGHS (an LP, or a QP with l2); returns w."""
    import highspy

    k = len(slack_cost)
    n = 2 * d + k + 2 * c
    inf = highspy.kHighsInf
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    upper = np.full(n, inf)
    if max_weight is not None:
        upper[: 2 * d] = max_weight  # w+ and w- in [0, B]: |w| <= B
    h.addVars(n, np.concatenate([np.zeros(2 * d + k), np.full(2 * c, -inf)]), upper)  # lo, hi free
    cost = np.concatenate([np.full(2 * d, l1), slack_cost, np.zeros(2 * c)])
    h.changeColsCost(n, np.arange(n, dtype=np.int32), cost)
    h.addRows(
        len(b), np.full(len(b), -inf), b, a.nnz, a.indptr[:-1].astype(np.int32), a.indices.astype(np.int32), a.data
    )
    if l2 > 0:
        # l2 |w+ - w-|^2 = [w+; w-]^T [[I, -I], [-I, I]] [w+; w-]; HiGHS minimises c.x + 1/2 x^T Q x
        q = sparse.bmat([[sparse.identity(d), -sparse.identity(d)], [-sparse.identity(d), sparse.identity(d)]])
        q = sparse.block_diag([2 * l2 * q, sparse.csc_matrix((k + 2 * c, k + 2 * c))], format="csc")
        tril = sparse.tril(q, format="csc")  # HiGHS takes the lower triangle, column-wise
        idx = (tril.indptr.astype(np.int32), tril.indices.astype(np.int32), tril.data)
        h.passHessian(n, tril.nnz, highspy.HessianFormat.kTriangular, *idx)
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        raise RuntimeError(f"HiGHS did not solve the hinge fit: {h.modelStatusToString(h.getModelStatus())}")
    sol = np.array(h.getSolution().col_value)
    return sol[:d] - sol[d : 2 * d]


def order_violations(policy: Policy, weights: RBRWeights, margin: float = 0.0) -> list[tuple[str, str, str, float]]:
    """Where the weights score a crisp completion of a worse class above one of a better class, RM equal.

    Per response type and consecutive pair of classes in the policy's ordering (both with crisp
    completions): (response type, better class, worse class, gap), gap = best score in the worse class -
    worst score in the better class, listed when gap > -margin. Empty: the weights keep the policy's order.
    """
    out = []
    for rt, spec in policy.response_types.items():
        vertices = class_vertices(policy, rt)
        classes = [cl for cl in spec.ordering if cl in vertices]
        for better, worse in pairwise(classes):
            gap = float(weights.rbr_score(rt, vertices[worse]).max() - weights.rbr_score(rt, vertices[better]).min())
            if gap > -margin:
                out.append((rt, better, worse, round(gap, 4)))
    return out


def pairwise_error_rate(reward: np.ndarray, pairs: PairSet) -> float:
    """Fraction of ordered pairs whose better completion does not get the strictly higher reward."""
    if len(pairs) == 0:
        return float("nan")
    return float((reward[pairs.better] <= reward[pairs.worse]).mean())


@dataclass
class RBRWeights:
    """Fitted weights per response type and what they were fitted for.

    Loading checks them against the running policy: weights fitted for another policy version or other
    feature names would silently score the wrong features, so that is an error naming what differs.
    """

    policy_hash: str
    feature_names: dict[str, list[str]]  # response type -> feature names, in weight order
    weights: dict[str, list[float]]  # response type -> weights
    reward_model: str  # identity of the RM whose weight was fixed at 1
    data: dict  # what it was fitted on
    metrics: dict  # e.g. pairwise error rates on held-out prompts

    @property
    def version(self) -> str:
        blob = json.dumps([self.policy_hash, self.feature_names, self.weights, self.reward_model], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def scaled(self, k: float) -> RBRWeights:
        """These weights times `k` (a new version): 0 leaves the helpful-only RM, the paper's Helpful-PPO."""
        if k == 1:
            return self
        w = {rt: [k * v for v in ws] for rt, ws in self.weights.items()}
        return replace(self, weights=w, data={**self.data, "rbr_scale": k})

    def rbr_score(self, response_type: str, features: np.ndarray) -> np.ndarray:
        """w[response_type] . features; features (..., d) -> (...)."""
        return features @ np.asarray(self.weights[response_type])

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        body = {"version": self.version, **asdict(self)}
        path.write_text(json.dumps(body, indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path, policy: Policy) -> RBRWeights:
        path = Path(path)
        try:
            raw = json.loads(path.read_text())
            w = cls(
                **{k: raw[k] for k in ("policy_hash", "feature_names", "weights", "reward_model", "data", "metrics")}
            )
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
            raise WeightsMismatchError(f"{path}: not a readable weights file: {e}") from e
        diffs = []
        if w.policy_hash != policy.hash:
            diffs.append(f"policy hash {w.policy_hash} != running policy {policy.hash}")
        for rt in policy.response_types:
            want = list(policy.feature_names(rt))
            have = w.feature_names.get(rt)
            if have is None:
                diffs.append(f"no weights for response type {rt!r}")
            elif have != want:
                missing, extra = sorted(set(want) - set(have)), sorted(set(have) - set(want))
                detail = f"missing {missing}, unexpected {extra}" if missing or extra else "same names, other order"
                diffs.append(f"{rt}: feature names differ ({detail})")
            elif len(w.weights.get(rt, [])) != len(want):
                diffs.append(f"{rt}: {len(w.weights.get(rt, []))} weights for {len(want)} features")
        if diffs:
            raise WeightsMismatchError(f"{path} does not match the running policy: " + "; ".join(diffs))
        return w
