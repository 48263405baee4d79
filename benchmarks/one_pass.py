"""One grader pass per item: grader forward passes per item and items/s on a mixed comply / refusal batch.

The judge reward model reads `fully_complies`, which no refusal response type grades. Before, `Scorer.score` graded
each item's own propositions and then ran a second grader pass over every refusal item for what the RM reads.
Now the scorer asks once for the union (`Grader.grade_with_categories(..., also=rm.needs)`): one prefix forward
per item plus its questions' suffixes. `before` below re-creates the old two-pass path with the same grader, RM
and weights; both variants are timed alternately in one run (no caches), and every reward is checked equal.

    .venv/bin/python benchmarks/one_pass.py --threads 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

from propositions import load_policy
from reward_service.config import load_settings
from reward_service.grader import GradeItem, Grader
from reward_service.paths import DATA_DIR
from reward_service.reward.linear import RBRWeights
from reward_service.reward.reward_models import build_reward_model
from reward_service.reward.scoring import Scorer


class Counting:
    """Counts the items the grader engine runs a prefix forward for (each call's batch size)."""

    def __init__(self, engine) -> None:
        self.engine, self.items = engine, 0
        for name in ("readout_many", "pooled"):
            setattr(self, name, self._counted(getattr(engine, name)))

    def _counted(self, fn):
        def call(encs, *args, **kwargs):
            self.items += len(encs)
            return fn(encs, *args, **kwargs)

        return call

    def __getattr__(self, name):
        return getattr(self.engine, name)


def before(scorer: Scorer, items: list[GradeItem]) -> list[float]:
    """The old path: each item's own propositions, then a second pass over the items missing what the RM reads."""
    g, rm = scorer.grader, scorer.reward_model
    probs = g.grade(items)
    todo = [i for i, p in enumerate(probs) if any(n not in p for n in rm.needs)]
    for i, extra in zip(todo, g.grade([items[i] for i in todo], list(rm.needs)), strict=True):
        probs[i] = {**probs[i], **extra}
    r = rm.score(items, probs)
    return [
        float(r[i]) + scorer._assemble(it.response_type, p, r[i]).rbr
        for i, (it, p) in enumerate(zip(items, probs, strict=True))
    ]


def after(scorer: Scorer, items: list[GradeItem]) -> list[float]:
    return [s.reward for s in scorer.score(items)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=None, help="torch threads of the grader")
    ap.add_argument("--per-type", type=int, default=8, help="comply and hard_refuse items each in the batch")
    ap.add_argument("--repeats", type=int, default=5, help="timed calls per variant")
    args = ap.parse_args(argv)

    settings = load_settings(None, grader_threads=args.threads)
    policy = load_policy(settings.policy_file)
    grader = Grader.from_settings(settings, policy=policy)
    grader.engine = counter = Counting(grader.engine)
    scorer = Scorer(
        policy, grader, build_reward_model(settings, grader.identity), RBRWeights.load(settings.weights_path, policy)
    )
    rows = [json.loads(x) for x in (DATA_DIR / "comparisons" / "synth.jsonl").read_text().splitlines() if x.strip()]
    batch: list[GradeItem] = []
    for rt in ("comply", "hard_refuse"):
        mine = [r for r in rows if r["response_type"] == rt][: args.per_type]
        batch += [GradeItem(({"role": "user", "content": r["prompt"]},), r["completion"], rt) for r in mine]

    passes, secs, rewards = {}, {"before": [], "after": []}, {}
    for name, fn in (("before", before), ("after", after)):
        counter.items = 0
        rewards[name] = fn(scorer, batch)
        passes[name] = counter.items / len(batch)
    np.testing.assert_allclose(rewards["before"], rewards["after"], atol=1e-3)
    for _ in range(args.repeats):
        for name, fn in (("before", before), ("after", after)):
            t0 = time.perf_counter()
            fn(scorer, batch)
            secs[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in secs.items()}
    n = len(batch)
    print(f"# {n} items ({args.per_type} comply, {args.per_type} hard_refuse), grader {grader.engine_id}, "
          f"RM {scorer.reward_model.identity}, median of {args.repeats}, alternating")  # fmt: skip
    print("| path | grader prefix forwards per item | s per call | items/s |")
    print("|---|---|---|---|")
    for k in ("before", "after"):
        print(f"| {k} | {passes[k]:.2f} | {med[k]:.3f} | {n / med[k]:.2f} |")
    print(f"\nitems/s after / before: {med['before'] / med['after']:.2f}x; rewards equal (|diff| <= 1e-3)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
