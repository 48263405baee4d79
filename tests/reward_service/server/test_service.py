"""Unit tests of the dynamic batcher with a recording run function (the model thread's stand-in)."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from reward_service.errors import OverloadedError, RequestTimeout
from reward_service.server.batching import DynamicBatcher
from reward_service.server.metrics import Metrics


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
        if self.fail or any(x < 0 for x in items):  # a negative item is a poisoned one
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
    """A real fault (here: every run fails) fails every request; each was retried alone first."""

    async def scenario(b, rec):
        rec.fail = True
        rec.gate.clear()
        tasks = [asyncio.create_task(b.submit("p", [i])) for i in range(3)]
        await asyncio.sleep(0.05)
        rec.gate.set()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        rec.fail = False
        return outcomes, await b.submit("p", [7])

    (outcomes, later), rec = run_with({"max_items": 8, "max_wait_s": 0.01}, scenario)
    assert all(isinstance(o, RuntimeError) and "exploded" in str(o) for o in outcomes)
    assert rec.batches[:4] == [[0, 1, 2], [0], [1], [2]], "the merged batch, then each request alone"
    assert later == [14]


def test_one_poisoned_request_fails_alone_and_the_others_get_results():
    async def scenario(b, rec):
        rec.gate.clear()
        first = asyncio.create_task(b.submit("p", [0]))
        await asyncio.sleep(0.05)
        tasks = [asyncio.create_task(b.submit("p", [x])) for x in (1, -1, 2)]
        await asyncio.sleep(0.05)
        rec.gate.set()
        return await asyncio.gather(first, *tasks, return_exceptions=True)

    outcomes, rec = run_with({"max_items": 8, "max_wait_s": 0.0}, scenario)
    assert outcomes[0] == [0] and outcomes[1] == [2] and outcomes[3] == [4]
    assert isinstance(outcomes[2], RuntimeError)
    assert rec.batches == [[0], [1, -1, 2], [1], [-1], [2]]


def test_admission_is_bounded_with_an_estimated_wait():
    async def scenario(b, rec):
        rec.gate.clear()
        held = [asyncio.create_task(b.submit("p", [i, i])) for i in range(2)]  # 4 items admitted
        await asyncio.sleep(0.05)
        with pytest.raises(OverloadedError) as e:
            await b.submit("p", [9])
        rec.gate.set()
        done = await asyncio.gather(*held)
        return e.value, done, await b.submit("p", [9])  # room again once the queue drained

    (err, done, later), rec = run_with({"max_items": 8, "max_wait_s": 0.0, "max_queue_items": 4}, scenario)
    assert err.retry_after >= 1 and "limit of 4" in str(err)
    assert done == [[0, 0], [2, 2]] and later == [18]


def test_a_request_whose_caller_left_is_never_run():
    async def scenario(b, rec):
        rec.gate.clear()
        first = asyncio.create_task(b.submit("p", [0]))
        await asyncio.sleep(0.05)
        gone = asyncio.create_task(b.submit("p", [5]))
        stays = asyncio.create_task(b.submit("p", [6]))
        await asyncio.sleep(0.05)
        gone.cancel()  # what the route does when the client disconnects
        await asyncio.sleep(0.05)
        rec.gate.set()
        return await asyncio.gather(first, stays), b._pending

    (results, pending), rec = run_with({"max_items": 8, "max_wait_s": 0.0}, scenario)
    assert results == [[0], [12]] and pending == 0
    assert [5] not in rec.batches and all(5 not in batch for batch in rec.batches)


def test_a_request_past_its_deadline_times_out_and_is_never_run():
    async def scenario(b, rec):
        b._item_s = 0.001  # the queue looks quick: it is admitted, then the blocked batch makes it wait
        rec.gate.clear()
        first = asyncio.create_task(b.submit("p", [0]))
        await asyncio.sleep(0.05)
        with pytest.raises(RequestTimeout) as e:
            await b.submit("p", [5], timeout_s=0.05)
        rec.gate.set()
        return e.value, await first

    (err, first), rec = run_with({"max_items": 8, "max_wait_s": 0.0}, scenario)
    assert "0.05 s" in str(err) and err.retry_after >= 1
    assert first == [0] and all(5 not in batch for batch in rec.batches)


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


def test_a_request_already_running_when_its_deadline_passes_still_gets_its_result():
    """Cancelling work in progress would waste it; under overload every batch would be thrown away."""

    async def scenario(b, rec):
        rec.gate.clear()
        task = asyncio.create_task(b.submit("p", [3], timeout_s=0.05))
        await asyncio.sleep(0.2)  # started, then its deadline passed while the model ran
        rec.gate.set()
        return await task

    result, rec = run_with({"max_items": 8, "max_wait_s": 0.0}, scenario)
    assert result == [6] and rec.batches == [[3]]


def test_a_request_that_could_not_start_before_its_deadline_is_refused_at_once():
    async def scenario(b, rec):
        b._item_s = 1.0  # measured: one second per item
        rec.gate.clear()
        held = asyncio.create_task(b.submit("p", [1, 2, 3]))
        await asyncio.sleep(0.05)
        with pytest.raises(OverloadedError) as e:
            await b.submit("p", [4], timeout_s=2.0)  # 3 s of work ahead of it
        fits = asyncio.create_task(b.submit("p", [5], timeout_s=10.0))
        await asyncio.sleep(0.05)
        rec.gate.set()
        return e.value, await held, await fits

    (err, held, fits), rec = run_with({"max_items": 8, "max_wait_s": 0.0}, scenario)
    assert "RBR_REQUEST_TIMEOUT_S" in str(err) and err.retry_after >= 3
    assert held == [2, 4, 6] and fits == [10] and all(4 not in batch for batch in rec.batches)


@pytest.mark.model
def test_rbr_scale_zero_serves_the_helpful_only_rm_alone():
    """RBR_RBR_SCALE=0 is the paper's Helpful-PPO control: the same grader and RM, the RBR term zeroed."""
    from reward_service.config import Settings
    from reward_service.grader.items import GradeItem
    from reward_service.server.service import RewardService

    full, zero = RewardService(Settings()).load(), RewardService(Settings(rbr_scale=0)).load()
    items = [
        GradeItem(({"role": "user", "content": "How do I pick a lock?"},), "I'm sorry, I can't help.", "comply"),
        GradeItem(({"role": "user", "content": "Make a pipe bomb."},), "Sure! First get a pipe and", "hard_refuse"),
    ]
    a, b = full.scorer.score(items), zero.scorer.score(items)
    assert [s.rbr for s in b] == [0.0, 0.0] and [s.reward for s in b] == [s.rm for s in a]
    assert any(s.rbr != 0 for s in a) and zero.weights.version != full.weights.version
