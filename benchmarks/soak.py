"""Soak: N concurrent clients hammer a real `rbr serve` for a while, at the grader's capacity and beyond.

Each client loops: POST /v1/rewards with 1-4 items (the project's synthetic comparison rows), plain httpx,
no retries, so every answer is seen as sent. A sound service answers each request with rewards, or with a
429 carrying Retry-After, or a 503 naming its reason; never another 5xx, never a dropped connection.
Reports, in one run: requests and items per second, statuses, latency p50/p95 of the 200s, the server's
RSS at start, after the warm-up and at the end (memory growth), and what /metrics counted.

    .venv/bin/python benchmarks/soak.py [--clients 32] [--seconds 180] [--queue 64] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests._server import rbr_server  # noqa: E402


def load_items() -> list[dict]:
    rows = [json.loads(x) for x in (ROOT / "data" / "comparisons" / "synth.jsonl").read_text().splitlines() if x]
    return [{"prompt": r["prompt"], "completion": r["completion"], "response_type": r["response_type"]} for r in rows]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def metric(text: str, name: str) -> float:
    return sum(float(v) for v in re.findall(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", text, re.M))


async def soak(url: str, clients: int, seconds: float, seed: int = 0, pid: int | None = None) -> dict:
    """Run the load; returns counts, latencies, every answer that was neither a reward nor 429/503+reason,
    and (given the server's pid) its RSS sampled every 15 s."""
    items, rng = load_items(), random.Random(seed)
    stop = time.monotonic() + seconds
    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    bad: list[str] = []
    n_items = 0

    async def client(c: httpx.AsyncClient) -> None:
        nonlocal n_items
        while time.monotonic() < stop:
            batch = rng.sample(items, rng.randint(1, 4))
            t0 = time.perf_counter()
            try:
                r = await c.post(url + "/v1/rewards", json={"items": batch})
            except httpx.HTTPError as e:  # a dropped connection or a client timeout is a failure too
                statuses[type(e).__name__] += 1
                bad.append(f"{type(e).__name__}: {e}")
                continue
            statuses[str(r.status_code)] += 1
            if r.status_code == 200 and len(r.json()["rewards"]) == len(batch):
                latencies.append(time.perf_counter() - t0)
                n_items += len(batch)
            elif r.status_code == 429 and r.headers.get("retry-after", "").isdigit():
                await asyncio.sleep(min(float(r.headers["retry-after"]), 2.0) * rng.random())  # a polite client
            elif r.status_code == 503 and r.json().get("error", {}).get("message"):
                await asyncio.sleep(1.0)
            else:
                bad.append(f"{r.status_code}: {r.text[:300]}")

    rss_trace: list[tuple[float, float]] = []

    async def sample_rss() -> None:
        while pid is not None and time.monotonic() < stop:
            rss_trace.append((round(seconds - (stop - time.monotonic())), round(rss_mib(pid), 1)))
            await asyncio.sleep(15)

    async with httpx.AsyncClient(timeout=600) as c:
        t0 = time.perf_counter()
        await asyncio.gather(sample_rss(), *[client(c) for _ in range(clients)])
        wall = time.perf_counter() - t0
    q = statistics.quantiles(latencies, n=20) if len(latencies) >= 2 else [float("nan")] * 19
    return {
        "clients": clients,
        "seconds": round(wall, 1),
        "statuses": dict(statuses),
        "bad": bad,
        "requests_per_s": round(sum(statuses.values()) / wall, 2),
        "items_per_s": round(n_items / wall, 2),
        "p50_s": round(statistics.median(latencies), 2) if latencies else None,
        "p95_s": round(q[18], 2),
        "rss_trace_mib": rss_trace,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=180)
    ap.add_argument("--warmup", type=float, default=20, help="a first soak whose numbers are not reported")
    ap.add_argument("--queue", type=int, default=64, help="RBR_MAX_QUEUE_ITEMS of the served instance")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    env = {"RBR_MAX_QUEUE_ITEMS": str(args.queue), "RBR_REQUEST_TIMEOUT_S": "60"}
    with rbr_server(env) as (url, proc, _):
        rss = {"ready": rss_mib(proc.pid)}
        asyncio.run(soak(url, args.clients, args.warmup, seed=1))
        rss["after_warmup"] = rss_mib(proc.pid)
        out = asyncio.run(soak(url, args.clients, args.seconds, pid=proc.pid))
        rss["end"] = rss_mib(proc.pid)
        text = httpx.get(url + "/metrics").text
        out["metrics"] = {
            name: metric(text, name)
            for name in ("rbr_rejected_requests_total", "rbr_dropped_items_total", "rbr_queue_depth")
        }
        out["rss_mib"] = {k: round(v, 1) for k, v in rss.items()}
        out["rss_growth_mib"] = round(rss["end"] - rss["after_warmup"], 1)
        out["alive"] = proc.poll() is None
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print("| clients | s | requests/s | items/s | 200 p50 s | 200 p95 s | statuses | bad | RSS MiB ready/warm/end |")
    print("|---|---|---|---|---|---|---|---|---|")
    r = out["rss_mib"]
    print(
        f"| {out['clients']} | {out['seconds']} | {out['requests_per_s']} | {out['items_per_s']} | {out['p50_s']} "
        f"| {out['p95_s']} | {out['statuses']} | {len(out['bad'])} | {r['ready']}/{r['after_warmup']}/{r['end']} |"
    )
    print(
        f"metrics: {out['metrics']}; server alive: {out['alive']}; RSS growth after warm-up: "
        f"{out['rss_growth_mib']} MiB"
    )
    print("RSS MiB every 15 s:", " ".join(f"{t}s:{m}" for t, m in out["rss_trace_mib"]))
    for line in out["bad"][:10]:
        print("bad:", line)


if __name__ == "__main__":
    main()
