"""Three real `rbr serve` replicas behind one client: one is killed mid-run and restarted on its port; every item
still gets exactly the reward one replica gives it, none is lost or made up, and the restarted replica rejoins.
(benchmarks/replicas.py measures throughput with 1, 2 and 3 replicas and the latency around a kill.)"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from contextlib import ExitStack

import httpx
import numpy as np
import pytest

from reward_service.client import AsyncRewardClient
from tests._server import free_port, rbr_server

pytestmark = [pytest.mark.model, pytest.mark.e2e]

TOPICS = ["bread", "a bike tyre", "a tent", "rice", "a shelf", "a kite", "soup", "a bird feeder"]
BATCHES = [
    [
        {"prompt": f"How do I make {TOPICS[(b + i) % 8]}? (batch {b})", "completion": f"Step {i}: start simply.",
         "response_type": "comply" if i % 2 else "hard_refuse"}
        for i in range(4)
    ]
    for b in range(24)
]  # fmt: skip


def served_requests(url: str) -> float:
    text = httpx.get(url + "/metrics", timeout=10).text
    m = re.search(r'^rbr_requests_total\{route="/v1/rewards",status="200"\} (\S+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


def test_a_replica_killed_and_restarted_mid_run_loses_no_reward():
    ports = [free_port() for _ in range(3)]
    with ExitStack() as stack:
        urls, procs = [], []
        for port in ports:
            url, proc, _ = stack.enter_context(rbr_server(port=port))
            urls.append(url)
            procs.append(proc)
        reference = [
            httpx.post(urls[0] + "/v1/rewards", json={"items": b}, timeout=120).json()["rewards"] for b in BATCHES
        ]

        async def run() -> tuple[list[list[float]], dict[str, list[float]]]:
            out: list[list[float]] = [[] for _ in BATCHES]
            latency: dict[str, list[float]] = {"before": [], "during": [], "after": []}
            phase = {"now": "before"}
            async with AsyncRewardClient(urls, retries=5, backoff_s=0.2) as client:
                client.replicas.probe_after_s = 0.5

                async def send(b: int) -> None:
                    t0 = time.perf_counter()
                    out[b] = (await client.rewards(BATCHES[b])).rewards
                    latency[phase["now"]].append(time.perf_counter() - t0)

                async def group(first: int) -> None:  # three requests at a time: every replica gets one
                    await asyncio.gather(*(send(b) for b in range(first, first + 3)))

                for first in (0, 3):
                    await group(first)
                phase["now"] = "during"
                killed = asyncio.create_task(group(6))
                await asyncio.sleep(0.1)
                os.killpg(procs[1].pid, signal.SIGKILL)  # replica 2 dies with a request in flight
                await killed
                restart = asyncio.create_task(asyncio.to_thread(_restart, stack, ports[1]))
                for first in (9, 12):
                    await group(first)
                await restart
                phase["now"] = "after"
                await asyncio.sleep(0.6)  # past its probe wait: the next request probes it back in
                for first in (15, 18, 21):
                    await group(first)
            return out, latency

        before_restart = {u: served_requests(u) for u in (urls[0], urls[2])}
        got, latency = asyncio.run(run())
        for b, (ref, rewards) in enumerate(zip(reference, got, strict=True)):
            assert rewards == pytest.approx(ref, abs=1e-4), f"batch {b}: not the single replica's rewards"
        assert served_requests(urls[1]) > 0, "the restarted replica did not rejoin"
        assert all(served_requests(u) > before_restart[u] for u in before_restart)
        for phase, values in latency.items():
            p50, p95 = np.percentile(values, [50, 95])
            print(f"\n{phase}: {len(values)} requests, p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms")


def _restart(stack: ExitStack, port: int) -> None:
    stack.enter_context(rbr_server(port=port))
