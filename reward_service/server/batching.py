"""Dynamic batching: concurrent scoring requests merged into batches for the one model thread.

Bounded admission (429 with an estimated wait), per-request deadlines (503), requests of gone clients
dropped before they reach the model, and a failed merged batch re-run request by request.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

from reward_service.errors import NotReadyError, OverloadedError, RequestTimeout

if TYPE_CHECKING:
    from reward_service.grader import GradeItem
    from reward_service.reward.scoring import Scored
    from reward_service.server.metrics import Metrics

__all__ = ["DynamicBatcher"]

#: What a batch runs on (the service's Pipeline); the batcher only compares it by identity: one batch, one pipeline.
P = TypeVar("P")


@dataclass
class _Job(Generic[P]):
    pipeline: P
    items: list[GradeItem]
    future: asyncio.Future
    run: Callable[[P, list[GradeItem]], list] | None = None  # set: runs alone, never merged
    started: bool = False  # handed to the model thread: its deadline no longer applies


@dataclass
class DynamicBatcher(Generic[P]):
    """Merges concurrent scoring requests into batches run one at a time on the model thread.

    Admission is bounded: past `max_queue_items` waiting or running items a request is refused with
    `OverloadedError` (HTTP 429) and an estimated wait. A request not started within its deadline gets
    `RequestTimeout` (503); one already running is let finish (cancelling it would waste the work and,
    under overload, every batch). A request whose caller has gone (client disconnected, or deadline) is
    dropped before it reaches the model. If a merged
    batch fails, each request in it is run again alone, so one request's fault never fails another's.
    """

    run: Callable[[P, list[GradeItem]], list[Scored]]
    executor: ThreadPoolExecutor
    metrics: Metrics
    max_items: int = 32
    max_wait_s: float = 0.005
    max_queue_items: int = 1024
    _queue: asyncio.Queue | None = field(default=None, init=False)
    _held: _Job | None = field(default=None, init=False)
    _task: asyncio.Task | None = field(default=None, init=False)
    _pending: int = field(default=0, init=False)  # items admitted and not finished
    _item_s: float = field(default=0.2, init=False)  # running mean of model seconds per item

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="rbr-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    def retry_after(self) -> int:
        """Seconds until the queued work is likely done (what 429 and 503 answers say in Retry-After)."""
        return max(1, min(600, math.ceil(self._pending * self._item_s)))

    async def submit(
        self,
        pipeline: P,
        items: list[GradeItem],
        timeout_s: float | None = None,
        run: Callable[[P, list[GradeItem]], list] | None = None,
    ) -> list:
        """Queue `items` and wait for their results (merged with other requests unless `run` is given)."""
        if self._queue is None:
            raise NotReadyError("the batcher is not running")
        n = len(items)
        if self._pending and self._pending + n > self.max_queue_items:
            self.metrics.rejected.labels("overloaded").inc()
            raise OverloadedError(
                f"{self._pending} items are queued and {n} more would pass the limit of {self.max_queue_items} "
                "(RBR_MAX_QUEUE_ITEMS); retry later",
                self.retry_after(),
            )
        if self._pending and timeout_s is not None and self._pending * self._item_s > timeout_s:
            self.metrics.rejected.labels("would_time_out").inc()  # admitting it would only end in a 503
            raise OverloadedError(
                f"{self._pending} items are queued, about {self._pending * self._item_s:.0f} s of work, more than "
                f"the request deadline of {timeout_s:g} s (RBR_REQUEST_TIMEOUT_S); retry later",
                self.retry_after(),
            )
        fut = asyncio.get_running_loop().create_future()
        self._admit(n)
        job = _Job(pipeline, items, fut, run)
        self._queue.put_nowait(job)
        try:
            try:
                return await asyncio.wait_for(asyncio.shield(fut), timeout_s)
            except TimeoutError:
                if job.started:  # being scored: finishing it beats throwing the work away
                    return await fut
                fut.cancel()
                self.metrics.dropped.labels("deadline").inc(n)
                raise RequestTimeout(
                    f"not started within {timeout_s:g} s (RBR_REQUEST_TIMEOUT_S); the service is busy, retry later",
                    self.retry_after(),
                ) from None
        except asyncio.CancelledError:  # the client went away: its items are dropped unless already running
            fut.cancel()
            self.metrics.dropped.labels("client_gone").inc(n)
            raise

    def _admit(self, n: int) -> None:
        self._pending += n
        self.metrics.queue_depth.set(self._pending)

    async def _next_batch(self) -> list[_Job]:
        assert self._queue is not None
        first = self._held or await self._live(self._queue.get())
        self._held = None
        batch, n = [first], len(first.items)
        deadline = asyncio.get_running_loop().time() + self.max_wait_s
        while n < self.max_items and first.run is None:
            try:
                job = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            if job.future.done():
                self._admit(-len(job.items))  # its caller has gone: never graded
                continue
            if job.run is not None or job.pipeline is not first.pipeline or n + len(job.items) > self.max_items:
                self._held = job  # starts the next batch
                break
            batch.append(job)
            n += len(job.items)
        return batch

    async def _live(self, get: Awaitable[_Job]) -> _Job:
        """The next job whose caller still waits (cancelled ones are dropped)."""
        job = await get
        while job.future.done():
            self._admit(-len(job.items))
            job = await self._queue.get()  # type: ignore[union-attr]
        return job

    async def _loop(self) -> None:
        while True:
            batch = await self._next_batch()
            items = [it for job in batch for it in job.items]
            self.metrics.batch_items.observe(len(items))
            self.metrics.batch_requests.observe(len(batch))
            try:
                await self._run(batch, items)
            finally:
                self._admit(-len(items))

    async def _run(self, batch: list[_Job], items: list[GradeItem]) -> None:
        loop = asyncio.get_running_loop()
        run = batch[0].run or self.run
        for job in batch:
            job.started = True
        t0 = time.perf_counter()
        try:
            results = await loop.run_in_executor(self.executor, run, batch[0].pipeline, items)
        except Exception as e:
            if len(batch) == 1:  # the request's own failure: it gets the error, no reward
                _settle(batch[0].future, error=e)
                return
            for job in batch:  # a merged batch failed: run each request alone, so only a faulty one fails
                if not job.future.done():
                    await self._run([job], job.items)
            return
        self._item_s = 0.8 * self._item_s + 0.2 * (time.perf_counter() - t0) / max(1, len(items))
        start = 0
        for job in batch:
            _settle(job.future, result=results[start : start + len(job.items)])
            start += len(job.items)


def _settle(future: asyncio.Future, result: list | None = None, error: BaseException | None = None) -> None:
    if future.done():  # the caller has gone (disconnected, or past its deadline)
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
