"""Three real `rbr serve` replicas behind one client: one is killed with a request in flight and restarted on its
port; every item still gets exactly the reward one replica gives it, none is lost or made up, and the restarted
replica rejoins. (benchmarks/replicas.py measures throughput with 1, 2 and 3 replicas and the latency around it.)"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from contextlib import ExitStack

import httpx
import pytest

from reward_service.client import AsyncRewardClient
from tests._server import free_port, rbr_server

pytestmark = [pytest.mark.model, pytest.mark.e2e]


def batch(b: int) -> list[dict]:
    return [
        {"prompt": f"How do I fix item {b}-{i}?", "completion": f"Start with step {i}.", "response_type": rt}
        for i, rt in enumerate(("comply", "hard_refuse"))
    ]


def served_requests(url: str) -> float:
    text = httpx.get(url + "/metrics", timeout=10).text
    m = re.search(r'^rbr_requests_total\{route="/v1/rewards",status="200"\} (\S+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


ONE_THREAD = {"RBR_GRADER_THREADS": "1"}  # three replicas on a small CPU: torch threads x replicas <= cores


def test_a_replica_killed_and_restarted_mid_run_loses_no_reward():
    ports = [free_port() for _ in range(3)]
    with ExitStack() as stack:
        servers = [stack.enter_context(rbr_server(ONE_THREAD, port=port)) for port in ports]
        urls = [url for url, _, _ in servers]
        got: dict[int, list[float]] = {}

        async def run() -> None:
            async with AsyncRewardClient(urls, retries=5, backoff_s=0.2) as client:
                client.replicas.probe_after_s = 0.5

                async def group(first: int) -> None:  # three requests at once: every replica gets one
                    async def send(b: int) -> None:
                        got[b] = (await client.rewards(batch(b))).rewards

                    await asyncio.gather(*(send(b) for b in range(first, first + 3)))

                await group(0)
                killed = asyncio.create_task(group(3))
                await asyncio.sleep(0.05)
                os.killpg(servers[1][1].pid, signal.SIGKILL)  # replica 2 dies with a request in flight
                await killed
                restart = asyncio.create_task(
                    asyncio.to_thread(stack.enter_context, rbr_server(ONE_THREAD, port=ports[1]))
                )
                first = 6
                while not restart.done():  # the run goes on while it restarts
                    await group(first)
                    first += 3
                await restart
                deadline = time.monotonic() + 20  # its wait between probes doubled while it was down (<= 10 s)
                while served_requests(urls[1]) == 0 and time.monotonic() < deadline:
                    await group(first)  # a request probes it once its wait is over, and it rejoins
                    first += 3
                    await asyncio.sleep(0.5)

        asyncio.run(run())
        reference = httpx.post(
            urls[0] + "/v1/rewards", json={"items": [it for b in sorted(got) for it in batch(b)]}, timeout=300
        ).json()["rewards"]
        assert sorted(got) == list(range(len(got))), "a request got no answer"
        flat = [r for b in sorted(got) for r in got[b]]
        assert flat == pytest.approx(reference, abs=1e-4), "not the rewards one replica gives"
        assert served_requests(urls[1]) > 0, "the restarted replica did not rejoin"
