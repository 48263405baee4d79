"""Fitting the RBR weights: the exact hinge-loss LP (HiGHS) against 1,000 AdamW steps, in one run.

For each response type of the default policy, a synthetic problem with the policy's feature names:
1,000 prompts x 5 completions (one per label) = 10,000 ordered pairs, noisy features, an RM that
prefers compliance. Prints wall time, the mean hinge loss reached and the pairwise error rate.

    .venv/bin/python benchmarks/fit.py
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from propositions import load_policy
from reward_service.reward.linear import fit_hinge, hinge_loss, make_pairs, pairwise_error_rate


def problem(policy, rt: str, n_prompts: int, seed: int):
    rng = np.random.default_rng(seed)
    names = policy.feature_names(rt)
    ordering = policy.response_types[rt].ordering
    d = len(names)
    true_w = rng.normal(size=d)  # a hidden "true" preference over the features
    x = rng.uniform(0, 1, size=(n_prompts * len(ordering), d))  # (n, d)
    rm = rng.normal(size=len(x))  # (n,) an RM with no idea of safety
    score = x @ true_w + rng.normal(scale=0.5, size=len(x))  # noisy: no weights order every pair
    labels, prompts = [], []
    for p in range(n_prompts):
        rows = np.arange(p * len(ordering), (p + 1) * len(ordering))
        order = rows[np.argsort(-score[rows])]
        lab = dict(zip(order.tolist(), ordering, strict=True))
        labels += [lab[i] for i in rows]
        prompts += [f"p{p}"] * len(ordering)
    return x, rm, make_pairs(prompts, labels, ordering, default_margin=1.0)


def adamw(x: np.ndarray, rm: np.ndarray, pairs, steps: int = 1000, lr: float = 0.05) -> np.ndarray:
    xt, rmt = torch.tensor(x, dtype=torch.float64), torch.tensor(rm, dtype=torch.float64)
    b, w_, m = torch.tensor(pairs.better), torch.tensor(pairs.worse), torch.tensor(pairs.margin)
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.AdamW([w], lr=lr, weight_decay=0.0)
    for _ in range(steps):
        r = rmt + xt @ w  # (n,)
        loss = torch.clamp(m + r[w_] - r[b], min=0).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return w.detach().numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=1000, help="prompts per response type (x10 pairs)")
    ap.add_argument("--steps", type=int, default=1000, help="AdamW steps")
    args = ap.parse_args()
    policy = load_policy()
    print(
        f"{'response type':15s} {'pairs':>6s} {'method':>16s} {'wall s':>7s} {'hinge loss':>11s} {'x exact':>8s} "
        f"{'error rate':>10s}"
    )
    for i, rt in enumerate(policy.response_types):
        x, rm, pairs = problem(policy, rt, args.prompts, seed=i)
        t = time.perf_counter()
        exact = fit_hinge(x, rm, pairs)
        runs = [("exact LP (HiGHS)", exact.weights, time.perf_counter() - t)]
        for lr in (1e-3, 5e-2):
            t = time.perf_counter()
            w = adamw(x, rm, pairs, args.steps, lr)
            runs.append((f"AdamW lr={lr:g}", w, time.perf_counter() - t))
        for name, w, wall in runs:
            loss = hinge_loss(x, rm, pairs, w)
            err = pairwise_error_rate(rm + x @ w, pairs)
            print(f"{rt:15s} {len(pairs):6d} {name:>16s} {wall:7.2f} {loss:11.5f} {loss / exact.loss:8.4f} {err:10.4f}")
    print("hinge loss: mean max(0, 1 + R(worse) - R(better)) on the pairs; error rate: share of pairs ranked wrongly")


if __name__ == "__main__":
    main()
