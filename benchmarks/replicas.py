"""Service replicas on this machine, in one run: throughput with 1, 2 and 3 `rbr serve` replicas behind one client,
and the latency a trainer sees when one replica dies and comes back.

  (a) throughput   the same requests (--requests of --items items, --clients in flight) through one
                   AsyncRewardClient given 1, 2 or 3 replica URLs; each replica with torch's default threads,
                   and again with --threads per replica (on a 2-core CPU: 1, so replicas do not fight over cores)
  (b) failover     3 replicas (--threads each), requests in groups of 3; replica 2 is SIGKILLed with a request
                   in flight, restarted on its port, and rejoins; p50/p95 latency before / during / after,
                   rewards checked against one replica's (none lost, none made up)
  (c) with --vllm  the grader on two vLLM servers (the `openai` backend given both URLs); one is stopped mid-run:
                   every reward must still equal the single-server one

Items are the project's own synthetic comparison rows (data/comparisons/synth.jsonl).

    .venv/bin/python benchmarks/replicas.py [--requests 24] [--items 8] [--clients 6] [--threads 1] [--vllm] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.service import load_items  # noqa: E402
from reward_service.client import AsyncRewardClient  # noqa: E402
from tests._server import free_port, rbr_server  # noqa: E402


def start(stack: ExitStack, n: int, env: dict[str, str] | None = None, ports: list[int] | None = None) -> list:
    """n replicas, started one after the other (loading on 2 cores at once only slows each)."""
    return [stack.enter_context(rbr_server(env, port=ports[i] if ports else None)) for i in range(n)]


async def send_all(urls: list[str], batches: list[list[dict]], clients: int) -> tuple[float, list[list[float]]]:
    """(seconds, rewards per batch): every batch through one client over `urls`, `clients` requests in flight."""
    out: list[list[float]] = [[] for _ in batches]
    queue = list(range(len(batches)))
    async with AsyncRewardClient(urls, retries=5, backoff_s=0.2) as client:

        async def worker() -> None:
            while queue:
                b = queue.pop(0)
                out[b] = (await client.rewards(batches[b])).rewards

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        return time.perf_counter() - t0, out


def throughput(batches: list[list[dict]], clients: int, threads: int | None) -> list[dict]:
    env = {"RBR_GRADER_THREADS": str(threads)} if threads else None
    rows, reference = [], None
    with ExitStack() as stack:
        servers = start(stack, 3, env)
        urls = [u for u, _, _ in servers]
        for n in (1, 2, 3):
            secs, rewards = asyncio.run(send_all(urls[:n], batches, clients))
            flat = [r for b in rewards for r in b]
            reference = reference or flat
            same = bool(np.allclose(flat, reference, atol=1e-4))
            items = sum(len(b) for b in batches)
            rows.append({"replicas": n, "threads": threads or "default", "items_per_s": items / secs, "same": same})
            print(f"  {n} replica(s), threads {threads or 'default'}: {items / secs:.1f} items/s", file=sys.stderr)
    for row in rows:
        row["ratio_vs_1"] = row["items_per_s"] / rows[0]["items_per_s"]
    return rows


def failover(batches: list[list[dict]], threads: int) -> dict:
    ports = [free_port() for _ in range(3)]
    env = {"RBR_GRADER_THREADS": str(threads)}
    with ExitStack() as stack:
        servers = start(stack, 3, env, ports=ports)
        urls = [u for u, _, _ in servers]
        reference = [
            httpx.post(urls[0] + "/v1/rewards", json={"items": b}, timeout=300).json()["rewards"] for b in batches
        ]
        latency: dict[str, list[float]] = {"before": [], "during": [], "after": []}
        got: list[list[float]] = [[] for _ in batches]

        async def run() -> None:
            async with AsyncRewardClient(urls, retries=5, backoff_s=0.2) as client:
                client.replicas.probe_after_s = 0.5

                async def send(b: int, phase: str) -> None:
                    t0 = time.perf_counter()
                    got[b] = (await client.rewards(batches[b])).rewards
                    latency[phase].append(time.perf_counter() - t0)

                async def group(first: int, phase: str) -> None:
                    await asyncio.gather(*(send(b, phase) for b in range(first, min(first + 3, len(batches)))))

                third = len(batches) // 3
                for first in range(0, third, 3):
                    await group(first, "before")
                killed = asyncio.create_task(group(third, "during"))
                await asyncio.sleep(0.1)
                os.killpg(servers[1][1].pid, signal.SIGKILL)
                await killed
                restart = asyncio.create_task(asyncio.to_thread(start, stack, 1, env, [ports[1]]))
                first = third + 3
                while not restart.done() and first < 2 * third:
                    await group(first, "during")
                    first += 3
                await restart
                await asyncio.sleep(0.6)
                for rest in range(first, len(batches), 3):
                    await group(rest, "after")

        asyncio.run(run())
        served = httpx.get(urls[1] + "/metrics").text.count('route="/v1/rewards",status="200"')
    lost = sum(1 for b in got if not b)
    same = all(np.allclose(g, r, atol=1e-4) for g, r in zip(got, reference, strict=True) if g)
    phases = {k: _percentiles(v) for k, v in latency.items()}
    return {"lost": lost, "same_as_one_replica": same, "restarted_replica_served": served > 0, "latency_ms": phases}


def _percentiles(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    p50, p95 = np.percentile(values, [50, 95])
    return {"n": len(values), "p50": round(p50 * 1000), "p95": round(p95 * 1000)}


def two_grader_servers(batches: list[list[dict]]) -> dict:
    """The `openai` grader backend over two vLLM servers; the second is stopped mid-run."""
    from reward_service.paths import EMBEDDED_MODEL, resolve_model_path
    from tests.vllm_server import vllm_server

    def _openai_env(url: str) -> dict[str, str]:
        return {"RBR_GRADER_BACKEND": "openai", "RBR_GRADER_URL": url, "RBR_GRADER_SERVED_NAME": "grader"}

    model = str(resolve_model_path(EMBEDDED_MODEL))
    with ExitStack() as stack:
        a = stack.enter_context(vllm_server(model, "grader", ["--runner", "generate"]))
        b_ctx = vllm_server(model, "grader", ["--runner", "generate"])
        b = b_ctx.__enter__()
        single_url, _, _ = stack.enter_context(rbr_server(_openai_env(a)))
        reference = [
            httpx.post(single_url + "/v1/rewards", json={"items": x}, timeout=300).json()["rewards"] for x in batches
        ]
        both_url, _, _ = stack.enter_context(rbr_server(_openai_env(f"{a},{b}")))
        got: list[list[float]] = []
        t0 = time.perf_counter()
        for i, batch in enumerate(batches):
            if i == len(batches) // 2:
                b_ctx.__exit__(None, None, None)  # grader server 2 stops mid-run
            r = httpx.post(both_url + "/v1/rewards", json={"items": batch}, timeout=300)
            got.append(r.json()["rewards"] if r.status_code == 200 else [])
        secs = time.perf_counter() - t0
    lost = sum(1 for g in got if not g)
    same = all(np.allclose(g, r, atol=1e-4) for g, r in zip(got, reference, strict=True) if g)
    return {"lost": lost, "same_as_one_server": same, "seconds": round(secs, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=24)
    ap.add_argument("--items", type=int, default=8, help="items per request")
    ap.add_argument("--clients", type=int, default=6, help="requests in flight")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per replica in the second pass")
    ap.add_argument("--vllm", action="store_true", help="also (c): the grader on two vLLM servers")
    ap.add_argument("--no-throughput", action="store_true", help="skip (a)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    items = load_items(args.requests * args.items)
    batches = [items[i : i + args.items] for i in range(0, len(items), args.items)]
    result: dict = {"cpu_count": os.cpu_count(), "throughput": []}
    if not args.no_throughput:
        result["throughput"] = throughput(batches, args.clients, None) + throughput(batches, args.clients, args.threads)
    result["failover"] = failover(batches, args.threads)
    if args.vllm:
        result["two_grader_servers"] = two_grader_servers(batches[:12])
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print("| replicas | torch threads each | items/s | vs 1 replica | rewards as 1 replica |")
    print("|---|---|---|---|---|")
    for r in result["throughput"]:
        print(f"| {r['replicas']} | {r['threads']} | {r['items_per_s']:.1f} | {r['ratio_vs_1']:.2f}x | {r['same']} |")
    f = result["failover"]
    print(
        f"\nfailover: lost {f['lost']}, same as one replica {f['same_as_one_replica']}, "
        f"restarted replica served {f['restarted_replica_served']}"
    )
    for phase, p in f["latency_ms"].items():
        print(f"  {phase}: {p}")
    if "two_grader_servers" in result:
        print(f"\ntwo grader servers, one stopped mid-run: {result['two_grader_servers']}")


if __name__ == "__main__":
    main()
