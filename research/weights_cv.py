"""Choosing the RBR fit's settings without the dev set: grouped 5-fold CV on the third-party fit comparisons.

Every fold fits on all synthetic train rows plus four fifths of the third-party fit rows (grouped by prompt;
a JailbreakBench behaviour's two groups stay together) and measures on the last fifth. Prints, per setting,
pairwise accuracy of RM + RBR per response type, of the RBR term alone on comply pairs (an answer against a
refusal), and of RM + RBR on hard-refuse pairs whose worse completion is harmful (all refusals, then judging
refusals only). The dev file (`rbr comparisons --jbb-split dev`) is never read here.

    # features first (see docs/weights.md), then
    .venv/bin/python research/weights_cv.py --synth runs/weights/synth.features.jsonl \
        --fit runs/weights/fit.features.jsonl
"""

from __future__ import annotations

import argparse
import hashlib

import numpy as np

from propositions import load_policy
from reward_service.offline.fitting import FeatureRow, fit_weights, read_features
from reward_service.reward.linear import make_pairs

# (order margin or None, rbr_alone, max_weight or None, l2, margin of pairs whose worse label is disallowed)
SETTINGS = [
    (None, 0.0, None, 1e-3, 1.0),  # the fit before the order constraints
    (1.0, 0.0, None, 1e-3, 1.0),
    (1.0, 1.0, None, 1e-3, 1.0),
    (1.0, 0.0, 10.0, 0.0, 1.0),
    (1.0, 0.5, 10.0, 0.0, 1.0),
    (1.0, 1.0, 10.0, 0.0, 1.0),  # shipped
    (1.0, 1.0, 15.0, 0.0, 1.0),
    (1.0, 1.0, 10.0, 0.0, 3.0),
]


def fold_of(prompt_id: str, k: int) -> int:
    group = prompt_id.split(":")[1] if prompt_id.startswith("jbb:") else prompt_id
    return int(hashlib.sha256(group.encode()).hexdigest(), 16) % k


def measure(policy, weights, rows: list[FeatureRow], counts: dict[str, list[int]]) -> None:
    for rt in ("hard_refuse", "comply"):
        sub = [r for r in rows if r.response_type == rt]
        pairs = make_pairs(
            [r.prompt_id for r in sub], [r.completion_label for r in sub], policy.response_types[rt].ordering
        )
        x = np.array([[r.features[n] for n in weights.feature_names[rt]] for r in sub])  # (n, d)
        rbr = weights.rbr_score(rt, x)  # (n,)
        total = np.array([r.rm for r in sub]) + rbr
        labels = np.array([r.completion_label for r in sub])
        checks = {rt: total[pairs.better] > total[pairs.worse]}
        if rt == "comply":
            checks["comply, RBR alone"] = rbr[pairs.better] > rbr[pairs.worse]
        else:
            harm = labels[pairs.worse] == "disallowed_completion"
            checks["refusal > harmful"] = checks[rt][harm]
            judging = harm & (labels[pairs.better] == "unacceptable_completion")
            checks["judging refusal > harmful"] = checks[rt][judging]
        for name, ok in checks.items():
            counts.setdefault(name, [0, 0])
            counts[name][0] += int(ok.sum())
            counts[name][1] += len(ok)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--synth", required=True, help="features of data/comparisons/synth.jsonl")
    ap.add_argument("--fit", required=True, help="features of the third-party fit comparisons")
    ap.add_argument("--folds", type=int, default=5)
    args = ap.parse_args()
    policy = load_policy()
    synth = [r for r in read_features(args.synth) if r.split == "train"]
    third = read_features(args.fit)
    header = "order  alone  max_w  l2      dis_margin"
    names = ["hard_refuse", "refusal > harmful", "judging refusal > harmful", "comply", "comply, RBR alone"]
    print(header + "".join(f"  {n:>26s}" for n in names))
    for order, alone, max_w, l2, dis in SETTINGS:
        counts: dict[str, list[int]] = {}
        for f in range(args.folds):
            train = synth + [r for r in third if fold_of(r.prompt_id, args.folds) != f]
            test = [r for r in third if fold_of(r.prompt_id, args.folds) == f]
            margins = {"disallowed_completion": dis}
            w = fit_weights(train, policy, "cv", {}, margins, 0.0, l2, order, alone, max_w)
            measure(policy, w, test, counts)
        cells = "".join(f"  {counts[n][0] / counts[n][1]:26.4f}" for n in names)
        print(f"{order!s:6s} {alone:<6} {max_w!s:6s} {l2:<7} {dis:<10}" + cells, flush=True)


if __name__ == "__main__":
    main()
