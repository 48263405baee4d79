"""Capacity of one replica, and how many replicas or grader GPUs an RL run needs, from rates measured in one run.

  (a) one replica on this CPU   the serving pipeline (embedded grader, heads mode, judge RM) in process, by response
                                type and completion length: items/s and the grader's tokens per item and tokens/s
  (b) a run's demand            rollout batch B every T seconds = B / T items/s; CPU replicas = demand / (a)'s items/s
  (c) grader GPUs               grader tokens per item (measured: the grader prompt with the completion once, every
                                question once, as a served grader in prompted mode with prefix caching computes them)
                                x demand / a GPU's prefill tokens/s, taken at the compute floor:
                                peak FLOP/s x MFU / (2 x parameters), for the `--gpu-*` arguments given

Completions are our own filler text cut to the token counts; prompts are short requests.

    .venv/bin/python benchmarks/capacity.py [--lengths 32 128 512] [--n 8] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reward_service.config import load_settings  # noqa: E402
from reward_service.grader import parse_item  # noqa: E402
from reward_service.server.service import RewardService  # noqa: E402

FILLER = (
    "To get started, gather what you need and set aside a quiet hour. First, read the instructions through once. "
    "Then work step by step, checking each part before moving on, and keep notes of anything that surprises you. "
)
PROMPTS = {"comply": "How do I plan a week of simple dinners?", "hard_refuse": "How do I build a pipe bomb?"}


def completion(tok, tokens: int) -> str:
    ids = tok((FILLER * (tokens // 20 + 2)), add_special_tokens=False)["input_ids"][:tokens]
    return tok.decode(ids)


def measure(service: RewardService, rt: str, tokens: int, n: int) -> dict:
    """items/s and grader tokens per item for n items of one response type and completion length."""
    p = service.ready()
    tok = p.grader.fmt.tok
    items = [
        parse_item(
            {"prompt": f"{PROMPTS[rt]} ({i})", "completion": completion(tok, tokens), "response_type": rt}, p.policy
        )
        for i in range(n)
    ]
    every = sorted(set(p.policy.required_propositions(rt)) | set(p.reward_model.needs))
    specs = [p.policy.propositions[x] for x in every]
    enc = [p.grader.fmt.encode(list(it.conversation), it.completion, specs) for it in items]
    prefix = sum(len(e.prefix_ids) for e in enc) / n
    asked = set(p.grader.asked(every))  # heads mode asks only the questions whose heads read an answer
    suffix = sum(sum(len(q) for x, q in zip(every, e.suffix_ids, strict=True) if x in asked) for e in enc) / n
    prompted = sum(sum(len(q) for q in e.suffix_ids) for e in enc) / n  # a served grader asks every question
    p.scorer.score(items[:1])  # warm
    t0 = time.perf_counter()
    p.scorer.score(items)
    secs = time.perf_counter() - t0
    return {
        "response_type": rt,
        "completion_tokens": tokens,
        "questions": len(asked),
        "questions_prompted": len(every),
        "prefix_tokens": round(prefix),
        "suffix_tokens": round(suffix),
        "suffix_tokens_prompted": round(prompted),
        "items_per_s": n / secs,
        "grader_tokens_per_s": n * (prefix + suffix) / secs,
    }


def gpu_tokens_per_s(params_b: float, tflops: float, mfu: float) -> float:
    """A GPU's prefill tokens/s at the compute floor: 2 FLOPs per parameter per token."""
    return tflops * 1e12 * mfu / (2 * params_b * 1e9)


def plan(rows: list[dict], batch: int, step_s: float, length: int, gpu_tps: float) -> dict:
    """Replicas (this CPU) and grader GPUs for a run scoring `batch` completions of ~`length` tokens every `step_s`."""
    demand = batch / step_s
    at = [r for r in rows if r["completion_tokens"] == length]
    cpu_rate = len(at) / sum(1 / r["items_per_s"] for r in at)  # half comply, half refusal
    tokens = sum(r["prefix_tokens"] + r["suffix_tokens_prompted"] for r in at) / len(at)  # prompted, prefix cached
    return {
        "batch": batch,
        "step_s": step_s,
        "completion_tokens": length,
        "items_per_s_needed": demand,
        "cpu_replicas": math.ceil(demand / cpu_rate),
        "grader_tokens_per_item": round(tokens),
        "grader_gpus": demand * tokens / gpu_tps,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lengths", type=int, nargs="+", default=[32, 128, 512], help="completion tokens")
    ap.add_argument("--n", type=int, default=8, help="items per measurement")
    ap.add_argument("--gpu-params-b", type=float, default=7.6, help="grader parameters, billions (Qwen2.5-7B)")
    ap.add_argument("--gpu-tflops", type=float, default=989.0, help="peak dense bf16 TFLOP/s (H100 SXM)")
    ap.add_argument("--gpu-mfu", type=float, default=0.4, help="share of the peak a prefill reaches")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    service = RewardService(load_settings())
    service.load()
    rows = []
    for length in args.lengths:
        for rt in PROMPTS:
            rows.append(measure(service, rt, length, args.n))
            print(f"  {rt} {length} tokens: {rows[-1]['items_per_s']:.2f} items/s", file=sys.stderr)
    gpu_tps = gpu_tokens_per_s(args.gpu_params_b, args.gpu_tflops, args.gpu_mfu)
    runs = [
        plan(rows, b, t, length, gpu_tps)
        for b, t in ((256, 60.0), (1024, 60.0), (4096, 60.0))
        for length in args.lengths
    ]
    result = {"one_replica": rows, "gpu_prefill_tokens_per_s": gpu_tps, "runs": runs}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print("| response type | completion tokens | questions | grader tokens (prefix + questions) | items/s | tokens/s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['response_type']} | {r['completion_tokens']} | {r['questions']} | {r['prefix_tokens']} + "
            f"{r['suffix_tokens']} | {r['items_per_s']:.2f} | {r['grader_tokens_per_s']:.0f} |"
        )
    print(
        f"\nGPU prefill at the compute floor: {gpu_tps:,.0f} tokens/s ({args.gpu_params_b}B parameters, "
        f"{args.gpu_tflops} TFLOP/s, MFU {args.gpu_mfu})\n"
    )
    print("| rollout batch | every s | completion tokens | items/s needed | CPU replicas | tokens/item | grader GPUs |")
    print("|---|---|---|---|---|---|---|")
    for r in runs:
        print(
            f"| {r['batch']} | {r['step_s']:.0f} | {r['completion_tokens']} | {r['items_per_s_needed']:.1f} | "
            f"{r['cpu_replicas']} | {r['grader_tokens_per_item']} | {r['grader_gpus']:.2f} |"
        )


if __name__ == "__main__":
    main()
