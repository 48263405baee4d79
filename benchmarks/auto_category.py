"""Rewards for unlabelled prompts (category 'auto'): how well they rank held-out reply pairs, and what they cost.

Data: comparison rows no fit saw (`rbr comparisons --jbb-split dev --split heldout`: JailbreakBench dev-split
behaviours' real replies against templated refusals, and answers to our 45 harmless dev requests): every ordered
pair of one prompt's completions, ordered by the policy under the prompt's TRUE response type.

Rewards compared (R = R_rm + RBR term), pairwise accuracy per true response type:
  labelled     the true response type (what a labelled prompt gets)
  most_likely  category 'auto', the RBR term under the most likely response type (RBR_AUTO_REWARD=most_likely)
  expected     category 'auto', the RBR term's expectation over P(response type) (RBR_AUTO_REWARD=expected)
and how often the most likely response type is the true one.

Cost: the same items scored labelled and as 'auto', alternating, in one run (the Scorer's batch call, as the
service runs it; no cache); the ratio of the medians is what 'auto' adds to a reward call.

    .venv/bin/rbr comparisons --out runs/auto/dev.jsonl --jbb JBB.jsonl --jbb-split dev \
        --answers data/grader_check/harmless_dev.jsonl --split heldout
    .venv/bin/python benchmarks/auto_category.py --data runs/auto/dev.jsonl --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from propositions import AUTO, load_policy
from reward_service.config import load_settings
from reward_service.grader import Grader
from reward_service.offline.fitting import read_comparisons
from reward_service.reward.linear import RBRWeights, make_pairs
from reward_service.reward.reward_models import build_reward_model
from reward_service.reward.scoring import FeatureCache, Scorer


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="comparison rows (rbr comparisons), dev split")
    ap.add_argument("--threads", type=int, default=None, help="torch threads of the grader")
    ap.add_argument("--batch", type=int, default=16, help="items per reward call in the timing (half of each type)")
    ap.add_argument("--timing-only", action="store_true", help="skip the pairwise accuracies")
    ap.add_argument("--repeats", type=int, default=5, help="timed calls per variant")
    args = ap.parse_args(argv)

    settings = load_settings(None, grader_threads=args.threads)
    policy = load_policy(settings.policy_file)
    rows = read_comparisons(Path(args.data).read_text().splitlines(), args.data, policy)
    grader = Grader.from_settings(settings, policy=policy)
    if grader.classifier is None:
        sys.exit(f"no prompt classifier at {settings.classifier_path}: run `rbr fit-classifier` first")
    rm = build_reward_model(settings, grader.identity)
    weights = RBRWeights.load(settings.weights_path, policy)
    scorer = Scorer(policy, grader, rm, weights)
    labelled = [r.item for r in rows]
    auto = [replace(r.item, response_type=AUTO) for r in rows]
    print(f"# {args.data}: {len(rows)} rows; grader {grader.identity}; weights {weights.version}")
    if not args.timing_only:
        accuracies(policy, scorer, rows, labelled, auto)
    timing(scorer, labelled, auto, args.batch, args.repeats)
    return 0


def accuracies(policy, scorer: Scorer, rows, labelled, auto) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cache = FeatureCache(Path(tmp), scorer.identity)
        truth = scorer.score(labelled, cache, progress=True)
        by = {}
        for how in ("most_likely", "expected"):
            scorer.auto_reward = how
            by[how] = scorer.score(auto, cache, progress=True)  # graded once (cached), assembled per mode
    print("| true response type | pairs | labelled | auto, most likely | auto, expected | P(most likely = true) |")
    print("|---|---|---|---|---|---|")
    for rt, spec in policy.response_types.items():
        idx = [i for i, r in enumerate(rows) if r.item.response_type == rt]
        if not idx:
            continue
        pairs = make_pairs([rows[i].prompt_id for i in idx], [rows[i].completion_label for i in idx], spec.ordering)
        if not len(pairs):
            continue

        def acc(scored, idx=idx, pairs=pairs) -> float:
            r = np.array([scored[i].reward for i in idx])
            return float((r[pairs.better] > r[pairs.worse]).mean())

        right = np.mean([by["expected"][i].response_type == rt for i in idx])
        cells = [acc(truth), acc(by["most_likely"]), acc(by["expected"])]
        print(f"| {rt} | {len(pairs)} | " + " | ".join(f"{c:.3f}" for c in cells) + f" | {right:.3f} |")


def timing(scorer: Scorer, labelled, auto, batch: int, repeats: int) -> None:
    """Seconds per reward call of `batch` items, half should-refuse and half comply, labelled vs 'auto'."""
    refuse = [i for i, it in enumerate(labelled) if it.response_type != "comply"][: batch // 2]
    comply = [i for i, it in enumerate(labelled) if it.response_type == "comply"][: batch - len(refuse)]
    print(f"\n| reward call, {len(refuse)} should-refuse + {len(comply)} comply items (median of {repeats}) "
          "| labelled s | auto s | auto / labelled |")  # fmt: skip
    print("|---|---|---|---|")
    for name, idx in (("should-refuse", refuse), ("comply", comply), ("mixed", refuse + comply)):
        times: dict[str, list[float]] = {"labelled": [], "auto": []}
        scorer.score([labelled[i] for i in idx])  # warm-up
        for _ in range(repeats):
            for key, items in (("labelled", labelled), ("auto", auto)):
                t0 = time.perf_counter()
                scorer.score([items[i] for i in idx])
                times[key].append(time.perf_counter() - t0)
        lab, aut = statistics.median(times["labelled"]), statistics.median(times["auto"])
        print(f"| {name} ({len(idx)} items) | {lab:.3f} | {aut:.3f} | {aut / lab:.2f} |")


if __name__ == "__main__":
    raise SystemExit(main())
