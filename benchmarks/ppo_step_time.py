"""Where a PPO step's time goes, and how it scales with the batch size: real `rbr train` runs against a
real `rbr serve`, a few steps per setting, all in one run.

Each setting is the recipe (data/train/cpu-lora.yaml: LoRA r=8, 64-token responses, 2 mini-batches x 2
PPO epochs) with one thing changed. The table has, per setting, the median over the steps after the first
(the first warms up) of:
  step      wall time of one PPO update
  gen       sampling the rollouts (TRL's batch_generation)
  reward    the one POST /v1/rewards call (grader + RM + rules + linear model, in the service process)
  optim     the rest: reference / value forward passes over the rollouts and the PPO epochs
and per completion, and the ratio of each setting's per-completion time to the first row's.

    .venv/bin/python benchmarks/ppo_step_time.py                    # batch 4, 8, 16 (+ full fine-tune, fp32)
    .venv/bin/python benchmarks/ppo_step_time.py --batches 8 --steps 4
"""

from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests._server import rbr_exe, rbr_server  # noqa: E402

RECIPE = ROOT / "data" / "train" / "cpu-lora.yaml"


def run(url: str, out: Path, steps: int, **flags) -> list[dict]:
    args = [rbr_exe(), "train", "--config", str(RECIPE), "--service-url", url, "--output-dir", str(out)]
    args += ["--total-steps", str(steps), "--save-every", str(steps + 1)]
    for k, v in flags.items():
        args += ["--" + k.replace("_", "-"), str(v)]
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"rbr train failed:\n{r.stderr[-3000:]}")
    with (out / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", default="4,8,16", help="batch sizes of the recipe to time")
    ap.add_argument("--steps", type=int, default=4, help="PPO steps per setting (the first is not counted)")
    ap.add_argument("--no-variants", action="store_true", help="skip full fine-tuning and float32 at batch 8")
    a = ap.parse_args()
    settings = [(f"LoRA, batch {b}", {"batch_size": b}) for b in map(int, a.batches.split(","))]
    if not a.no_variants:
        settings += [
            ("LoRA, batch 8, no autocast", {"batch_size": 8, "mixed_precision": "no"}),
            ("full fine-tune, batch 8", {"batch_size": 8, "lora_r": 0, "learning_rate": 1e-5}),
        ]
    header = (
        f"{'setting':28} {'step s':>7} {'gen s':>6} {'reward s':>8} {'optim s':>7} {'s/completion':>12} {'ratio':>6}"
    )
    print(header, flush=True)
    base = None
    with rbr_server() as (url, _, _), tempfile.TemporaryDirectory() as tmp:
        for i, (name, flags) in enumerate(settings):
            rows = run(url, Path(tmp) / str(i), a.steps, **flags)[1:]

            def med(col: str, rows=rows) -> float:
                return statistics.median(float(r[col]) for r in rows)

            step, gen, reward, other = (
                med(c) for c in ("time/step_s", "time/generation_s", "time/reward_s", "time/other_s")
            )
            per = step / flags["batch_size"]
            base = base or per
            print(
                f"{name:28} {step:7.1f} {gen:6.1f} {reward:8.2f} {other:7.1f} {per:12.2f} {per / base:6.2f}", flush=True
            )


if __name__ == "__main__":
    main()
