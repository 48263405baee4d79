"""Unit tests of the dynamic batcher with a recording run function (the model thread's stand-in)."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

from reward_service.service import DynamicBatcher, Metrics


class Recorder:
    """Returns each item doubled, records the batches it was given; can be told to fail or to block."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.fail = False

    def __call__(self, pipeline, items):
        self.gate.wait(5)
        self.batches.append(list(items))
        if self.fail:
            raise RuntimeError("grader exploded")
        return [2 * x for x in items]


def run_with(batcher_kwargs: dict, scenario):
    rec = Recorder()

    async def main():
        b = DynamicBatcher(rec, ThreadPoolExecutor(1), Metrics(), **batcher_kwargs)
        b.start()
        try:
            return await scenario(b, rec)
        finally:
            await b.stop()

    return asyncio.run(main()), rec


def test_concurrent_requests_merge_while_a_batch_runs():
    async def scenario(b, rec):
        rec.gate.clear()  # the first batch blocks until all other requests are queued
        first = asyncio.create_task(b.submit("p", [0]))
        await asyncio.sleep(0.05)
        rest = [asyncio.create_task(b.submit("p", [i])) for i in range(1, 9)]
        await asyncio.sleep(0.05)
        rec.gate.set()
        return await asyncio.gather(first, *rest)

    results, rec = run_with({"max_items": 32, "max_wait_s": 0.0}, scenario)
    assert results == [[2 * i] for i in range(9)], "each request gets its own results, in order"
    assert rec.batches == [[0], list(range(1, 9))]


def test_max_items_splits_batches_and_pipelines_never_mix():
    async def scenario(b, rec):
        rec.gate.clear()
        first = asyncio.create_task(b.submit("old", [0]))
        await asyncio.sleep(0.05)
        jobs = [b.submit("old", [1, 2]), b.submit("old", [3, 4]), b.submit("new", [5]), b.submit("new", [6])]
        tasks = [asyncio.create_task(j) for j in jobs]
        await asyncio.sleep(0.05)
        rec.gate.set()
        return await asyncio.gather(first, *tasks)

    results, rec = run_with({"max_items": 3, "max_wait_s": 0.0}, scenario)
    assert results == [[0], [2, 4], [6, 8], [10], [12]]
    assert rec.batches == [[0], [1, 2], [3, 4], [5, 6]]


def test_a_failed_batch_fails_every_request_in_it_and_the_batcher_goes_on():
    async def scenario(b, rec):
        rec.fail = True
        rec.gate.clear()
        tasks = [asyncio.create_task(b.submit("p", [i])) for i in range(3)]
        await asyncio.sleep(0.05)
        rec.gate.set()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        rec.fail = False
        return outcomes, await b.submit("p", [7])

    (outcomes, later), _ = run_with({"max_items": 8, "max_wait_s": 0.01}, scenario)
    assert all(isinstance(o, RuntimeError) and "exploded" in str(o) for o in outcomes)
    assert later == [14]


def test_max_wait_collects_requests_that_arrive_soon_after():
    async def scenario(b, rec):
        t1 = asyncio.create_task(b.submit("p", [1]))
        await asyncio.sleep(0.02)
        t2 = asyncio.create_task(b.submit("p", [2]))
        return await asyncio.gather(t1, t2)

    results, rec = run_with({"max_items": 8, "max_wait_s": 0.3}, scenario)
    assert results == [[2], [4]] and rec.batches == [[1, 2]]


def test_without_batching_each_request_runs_alone():
    async def scenario(b, rec):
        rec.gate.clear()
        tasks = [asyncio.create_task(b.submit("p", [i])) for i in range(4)]
        await asyncio.sleep(0.05)
        rec.gate.set()
        return await asyncio.gather(*tasks)

    _, rec = run_with({"max_items": 1, "max_wait_s": 0.0}, scenario)
    assert rec.batches == [[0], [1], [2], [3]]
