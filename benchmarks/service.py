"""Reward service speed, in one run: in process vs over HTTP, and dynamic batching on vs off.

  (a) in process      RewardService pipeline, Scorer.score on a 64-item batch (no HTTP)
  (b) HTTP, 1 request  the same 64 items in one POST /v1/rewards to a real `rbr serve` process
  (c) 32 clients       32 concurrent single-item POST /v1/rewards, dynamic batching on (32 items, 5 ms)
  (d) 32 clients       the same with batching off (RBR_BATCH_MAX_ITEMS=1: one request per batch)
  (e), (f) with --vllm: (c) and (d) with the `openai` grader backend against a real vLLM server (CPU, bf16,
                       prompted mode: one /v1/completions call per item, `grader_concurrency` in flight)

Prints latency (median of --repeats) and throughput (items/s) with ratios against (a) and (d).
Items are the project's own synthetic comparison rows (data/comparisons/synth.jsonl).

    .venv/bin/python benchmarks/service.py [--repeats 2] [--vllm] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reward_service.config import load_settings  # noqa: E402
from reward_service.grader import parse_item  # noqa: E402
from reward_service.server.service import RewardService  # noqa: E402
from tests._server import rbr_server  # noqa: E402


def load_items(n: int) -> list[dict]:
    rows = [json.loads(x) for x in (ROOT / "data" / "comparisons" / "synth.jsonl").read_text().splitlines() if x]
    rows = rows[:: max(1, len(rows) // n)][:n]
    return [{"prompt": r["prompt"], "completion": r["completion"], "response_type": r["response_type"]} for r in rows]


def timed(fn, repeats: int) -> tuple[float, list[float]]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def batch_counts(url: str) -> tuple[float, float]:
    text = httpx.get(url + "/metrics").text
    count = float(re.search(r"^rbr_batch_requests_count (\S+)$", text, re.M).group(1))
    total = float(re.search(r"^rbr_batch_requests_sum (\S+)$", text, re.M).group(1))
    return count, total


def concurrent(url: str, items: list[dict]) -> list[float]:
    async def run() -> list[float]:
        async with httpx.AsyncClient(base_url=url, timeout=600) as c:
            rs = await asyncio.gather(*(c.post("/v1/rewards", json={"items": [it]}) for it in items))
        for r in rs:
            r.raise_for_status()
        return [r.json()["rewards"][0] for r in rs]

    return asyncio.run(run())


def clients_row(url: str, singles: list[dict], setting: str, repeats: int) -> dict:
    """Concurrent single-item clients against a running server, and how many requests each batch merged."""
    c0 = batch_counts(url)
    t, _ = timed(lambda: concurrent(url, singles), repeats)
    c1 = batch_counts(url)
    return {
        "setting": setting,
        "latency_s": t,
        "items_per_s": len(singles) / t,
        "requests_per_batch": (c1[1] - c0[1]) / max(c1[0] - c0[0], 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--vllm", action="store_true", help="also (e)/(f): openai grader backend on a vLLM server")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    items = load_items(args.batch)
    singles = items[: args.clients]
    rows: list[dict] = []

    service = RewardService(load_settings())
    pipeline = service.load()
    grade_items = [parse_item(it, pipeline.policy) for it in items]
    pipeline.scorer.score(grade_items[:2])  # warm-up
    t, scored = timed(lambda: pipeline.scorer.score(grade_items), args.repeats)
    in_process = [s.reward for s in scored]
    rows.append({"setting": f"(a) in process, {len(items)} items", "latency_s": t, "items_per_s": len(items) / t})

    with rbr_server() as (url, _, _):
        httpx.post(url + "/v1/rewards", json={"items": items[:2]}, timeout=600)  # warm-up
        t, body = timed(
            lambda: httpx.post(url + "/v1/rewards", json={"items": items}, timeout=600).json(), args.repeats
        )
        drift = max(abs(a - b) for a, b in zip(body["rewards"], in_process, strict=True))
        rows.append(
            {
                "setting": f"(b) HTTP, 1 request of {len(items)}",
                "latency_s": t,
                "items_per_s": len(items) / t,
                "max_reward_diff_vs_a": drift,
            }
        )
        rows.append(clients_row(url, singles, f"(c) HTTP, {len(singles)} clients x 1 item, batching on", args.repeats))

    with rbr_server({"RBR_BATCH_MAX_ITEMS": "1"}) as (url, _, _):
        httpx.post(url + "/v1/rewards", json={"items": items[:1]}, timeout=600)  # warm-up
        rows.append(clients_row(url, singles, f"(d) HTTP, {len(singles)} clients x 1 item, batching off", args.repeats))

    if args.vllm:
        from reward_service.paths import EMBEDDED_MODEL, resolve_model_path
        from tests.vllm_server import vllm_server

        with vllm_server(
            resolve_model_path(EMBEDDED_MODEL), "grader", ["--runner", "generate", "--dtype", "bfloat16"]
        ) as grader_url:
            for label, max_items in (("on", "32"), ("off", "1")):
                env = {
                    "RBR_GRADER_BACKEND": "openai",
                    "RBR_GRADER_URL": grader_url,
                    "RBR_GRADER_SERVED_NAME": "grader",
                    "RBR_BATCH_MAX_ITEMS": max_items,
                }
                with rbr_server(env) as (url, _, _):
                    concurrent(url, singles[:2])  # warm-up
                    setting = f"({'e' if label == 'on' else 'f'}) vLLM grader, {len(singles)} clients, batching {label}"
                    rows.append(clients_row(url, singles, setting, args.repeats))

    a, d = rows[0]["items_per_s"], rows[3]["items_per_s"]
    for r in rows:
        r["throughput_vs_a"] = r["items_per_s"] / a
        r["throughput_vs_d"] = r["items_per_s"] / d
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'setting':48} {'latency s':>10} {'items/s':>8} {'vs (a)':>7} {'vs (d)':>7} {'req/batch':>9}")
    for r in rows:
        rpb = f"{r['requests_per_batch']:.1f}" if "requests_per_batch" in r else "-"
        print(
            f"{r['setting']:48} {r['latency_s']:10.2f} {r['items_per_s']:8.2f} {r['throughput_vs_a']:7.2f} "
            f"{r['throughput_vs_d']:7.2f} {rpb:>9}"
        )
    if "max_reward_diff_vs_a" in rows[1]:
        print(f"max |reward(HTTP) - reward(in process)| = {rows[1]['max_reward_diff_vs_a']:.2e}")


if __name__ == "__main__":
    main()
