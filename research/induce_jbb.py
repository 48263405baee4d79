"""`rbr induce` on responses the project did not write: JailbreakBench replies of four chat models
(`../shared/data/jbb/responses.jsonl`), where the real request (`goal`) is known.

For a seeded sample of replies (half refusals, half judged jailbroken), the writer proposes the request each
answers; `induce` filters them. The table: how many were kept, and how often the proposal is **on target**:
at least `--on-target` of the real goal's content words occur in the proposed request (the same
content-word measure the relevance filter uses, here against the goal, which the filter never sees). Then
ten examples, goal beside proposal.

    .venv/bin/python research/induce_jbb.py --n 40
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from pathlib import Path

from reward_service.config import load_settings
from reward_service.grader import Grader
from reward_service.offline.induce import content_words, induce
from reward_service.offline.writers import load_chat_writer

JBB = Path(__file__).resolve().parents[2] / "shared" / "data" / "jbb" / "responses.jsonl"


def on_target(goal: str, request: str, threshold: float) -> bool:
    words = content_words(goal)
    return bool(words) and len(words & content_words(request)) / len(words) >= threshold


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jbb", default=str(JBB))
    ap.add_argument("--n", type=int, default=40, help="replies sampled (half refusals, half jailbroken)")
    ap.add_argument("--on-target", type=float, default=0.3)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rows = [json.loads(x) for x in Path(a.jbb).read_text().splitlines() if x.strip()]
    rng = random.Random(a.seed)
    sample = rng.sample([r for r in rows if not r["jailbroken"]], a.n // 2)
    sample += rng.sample([r for r in rows if r["jailbroken"]], a.n - a.n // 2)
    settings = load_settings()
    grader = Grader.from_settings(settings)
    write = load_chat_writer(settings, grader, 64, temperature=0.7)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "induced.jsonl"
        summary = induce([(r["response"], r) for r in sample], write, grader, out, {"response_type": "hard_refuse"})
        kept = [json.loads(x) for x in out.read_text().splitlines()]
        dropped = [json.loads(x) for x in out.with_suffix(".rejected.jsonl").read_text().splitlines()]
    print(summary.table())
    print(f"\n{'rows':28} {'n':>4} {'on target':>10}")
    for name, group in (("kept", kept), ("dropped", dropped), ("all", kept + dropped)):
        for kind in (False, True):
            g = [r for r in group if r["source"]["jailbroken"] is kind]
            hits = sum(on_target(r["source"]["goal"], r["prompt"], a.on_target) for r in g)
            label = f"{name}, {'jailbroken' if kind else 'refusals'}"
            print(f"{label:28} {len(g):4d} {hits / len(g) if g else 0:10.2f}")
    print("\nexamples (goal -> proposed request):")
    for r in (kept + dropped)[:10]:
        print(f"  {r['source']['goal'][:80]!r}\n    -> {r['prompt'][:100]!r}  [{r.get('reason', 'kept')[:40]}]")


if __name__ == "__main__":
    main()
