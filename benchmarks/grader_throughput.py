"""Grader throughput: the same completions x their propositions graded three ways, in one run.

  (a) naive    one full forward per (completion, proposition), batch 1
  (b) batched  all questions of a completion as one right-padded batch of full sequences
  (c) prefix   the shared prefix once per completion, then all questions batched against its KV cache
  (d) heads    the embedded default: no questions, one forward over each completion's prefix serves
               every proposition through the trained heads (b1: one completion per pass; b8: eight,
               right-padded, which costs more than it saves on 2 CPU cores)

Prints wall time, tokens processed, tokens/s, the speed-up over (a), and the compute floor:
2 x parameters x tokens processed / this CPU's measured matmul FLOP/s (in the grader's dtype).

With --lengths, instead: real-length completions (texts of the gold set joined to ~N completion tokens)
graded by the default heads path (`Grader.grade`, tokenisation included) under float32 and bfloat16, beside
a bare forward pass of the same tokens in float32 (logits of the last position only), each dtype's compute
floor, and the dtype `auto` picks on this machine.

    .venv/bin/python benchmarks/grader_throughput.py --n 8
    .venv/bin/python benchmarks/grader_throughput.py --lengths 300,500,700

On a CPU with native bf16, `ONEDNN_MAX_CPU_ISA=AVX512_CORE` in front of the second command measures the other
kind of CPU: oneDNN then emulates bf16 (several times slower than float32), and `auto` picks float32.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from propositions import load_policy
from reward_service.grader import parse_item
from reward_service.grader._engine import TransformersEngine
from reward_service.grader._prompt import PromptFormat
from reward_service.grader.models import load_causal_lm
from reward_service.machine import matmul_gflops
from reward_service.paths import EMBEDDED_MODEL

GOLD = Path(__file__).resolve().parents[2] / "shared" / "data" / "rbr_gold" / "train.jsonl"
EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "examples" / "items.jsonl"


def long_items(rows: list[dict], tok, lengths: list[int]) -> list[dict]:
    """One item per target length: a real prompt and real completion texts joined to ~n completion tokens."""
    texts = [r["completion"][0]["content"] if isinstance(r["completion"], list) else r["completion"] for r in rows]
    out = []
    for n in lengths:
        joined, i = "", 0
        while len(tok(joined, add_special_tokens=False)["input_ids"]) < n:
            joined += ("\n\n" if joined else "") + texts[i % len(texts)]
            i += 1
        ids = tok(joined, add_special_tokens=False)["input_ids"][:n]
        out.append({"prompt": rows[0]["prompt"], "completion": tok.decode(ids), "response_type": "comply"})
    return out


def timed(fn, repeats: int = 3) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def length_rows(args) -> None:
    from reward_service.config import load_settings
    from reward_service.grader import Grader
    from reward_service.machine import choose_dtype

    policy = load_policy()
    rows = [json.loads(line) for line in Path(args.data).read_text().splitlines() if line.strip()]
    lengths = [int(x) for x in args.lengths.split(",")]
    graders = {
        dt: Grader.from_settings(load_settings(grader_dtype=dt), policy=policy) for dt in ("float32", "bfloat16")
    }
    items = [parse_item(r, policy) for r in long_items(rows, graders["float32"].fmt.tok, lengths)]
    rates = {dt: matmul_gflops(dt) * 1e9 for dt in graders}
    lm32 = graders["float32"].engine.model
    params = sum(p.numel() for p in lm32.parameters())
    engine = graders["float32"].engine
    depth = max(engine.layers)  # the grade pass stops at the deepest read-out layer
    run = sum(p.numel() for layer in engine.base.layers[:depth] for p in layer.parameters())  # matmul weights it runs
    print(
        f"{params / 1e6:.0f}M parameters ({run / 1e6:.0f}M in the {depth} layers a grade pass runs); "
        f"{torch.get_num_threads()} threads; matmul GFLOP/s: "
        + ", ".join(f"{dt} {r / 1e9:.0f}" for dt, r in rates.items())
        + f"; auto picks {choose_dtype('auto')}"
    )
    print(
        "| completion tokens | tokens in pass | bare fp32 completion s | bare fp32 pass s | grade fp32 s | "
        "grade bf16 s | fp32 / bare completion | fp32 / bare pass | bf16 / bare pass | floor fp32 s | floor bf16 s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for n, item in zip(lengths, items, strict=True):
        enc = graders["float32"].fmt.encode(list(item.conversation), item.completion, [])
        ids = torch.tensor([enc.prefix_ids])
        comp = torch.tensor([enc.prefix_ids[slice(*enc.completion_span)]])  # the completion's own tokens
        with torch.inference_mode():
            bare = timed(lambda ids=ids: lm32(input_ids=ids, logits_to_keep=1))
            bare_c = timed(lambda ids=comp: lm32(input_ids=ids, logits_to_keep=1))
        grade = {dt: timed(lambda g=g, it=item: g.grade([it])) for dt, g in graders.items()}
        t = ids.shape[1]
        floors = {dt: 2 * run * t / r for dt, r in rates.items()}  # the grade pass's matmuls
        print(
            f"| {n} | {t} | {bare_c:.3f} | {bare:.3f} | {grade['float32']:.3f} | {grade['bfloat16']:.3f} | "
            f"{grade['float32'] / bare_c:.2f} | {grade['float32'] / bare:.2f} | {grade['bfloat16'] / bare:.2f} | "
            f"{floors['float32']:.3f} | {floors['bfloat16']:.3f} |"
        )
    print(
        "bare = one full forward of the model in fp32 (logits of the last position only) over the completion's own "
        "tokens, or over the grader pass's tokens (instructions + request + completion); grade = Grader.grade on the "
        "item, heads mode (tokenising, the forward up to the deepest read-out layer, pooling, the heads); "
        "floor = 2 x parameters of the layers a grade pass runs x tokens in pass / matmul FLOP/s "
        "(of one linear layer in that dtype; attention and overheads ignored)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=8, help="completions to grade")
    ap.add_argument("--lengths", default=None, help="e.g. 300,500,700: the real-length dtype table instead")
    ap.add_argument("--data", default=str(GOLD if GOLD.exists() else EXAMPLES), help="JSON lines of items")
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    ap.add_argument("--model", default=EMBEDDED_MODEL)
    args = ap.parse_args()
    if args.lengths:
        length_rows(args)
        return

    policy = load_policy()
    tok, lm = load_causal_lm(args.model, args.dtype)
    engine, fmt = TransformersEngine(tok, lm), PromptFormat(tok)
    rows = [json.loads(line) for line in Path(args.data).read_text().splitlines() if line.strip()][: args.n]
    items = [parse_item(r, policy) for r in rows]
    encs = [
        fmt.encode(
            list(it.conversation),
            it.completion,
            [policy.propositions[p] for p in policy.required_propositions(it.response_type)],
        )
        for it in items
    ]
    n_pairs = sum(len(e.suffix_ids) for e in encs)
    params = sum(p.numel() for p in lm.parameters())
    flops = matmul_gflops(args.dtype) * 1e9
    print(
        f"{len(items)} completions, {n_pairs} (completion, proposition) pairs; {params / 1e6:.0f}M parameters; "
        f"{args.dtype}; {torch.get_num_threads()} threads; matmul {flops / 1e9:.0f} GFLOP/s"
    )

    results = {}
    ref = None
    for strategy in ("naive", "batched", "prefix"):
        engine.readout(encs[0], strategy)  # warm-up
        t = time.perf_counter()
        ros = [engine.readout(e, strategy, answer_states=False) for e in encs]
        wall = time.perf_counter() - t
        tokens = sum(r.tokens for r in ros)
        logits = np.concatenate([r.yes_logit for r in ros])
        ref = logits if ref is None else ref
        results[strategy] = (wall, tokens, float(np.abs(logits - ref).max()))
    bare = [replace(e, suffix_ids=[]) for e in encs]
    engine.pooled(bare[:2])  # warm-up
    for bs in (1, 8):
        t = time.perf_counter()
        ros = engine.pooled(bare, batch_size=bs)
        results[f"heads b{bs}"] = (time.perf_counter() - t, sum(r.tokens for r in ros), float("nan"))

    base = results["naive"][0]
    head = f"{'strategy':10s} {'wall s':>8s} {'tokens':>8s} {'tok/s':>8s} {'x naive':>8s} {'floor s':>8s} "
    print(head + f"{'x floor':>8s} {'max |dlogit|':>12s}")
    for strategy, (wall, tokens, diff) in results.items():
        floor = 2 * params * tokens / flops
        print(
            f"{strategy:10s} {wall:8.2f} {tokens:8d} {tokens / wall:8.0f} {base / wall:8.2f} {floor:8.2f} "
            f"{wall / floor:8.2f} {diff:12.2e}"
        )
    print("max |dlogit|: largest difference in yes-vs-no log-odds from (a); heads mode reads no log-odds")
    print("floor = 2 x parameters x tokens processed / measured matmul FLOP/s (ignores attention and overheads)")


if __name__ == "__main__":
    main()
