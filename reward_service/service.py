"""The reward service without HTTP: the loaded pipeline, atomic reloads and dynamic batching.

    request items ─► DynamicBatcher (merges concurrent requests, ≤ batch_max_items, waits ≤ batch_max_wait_ms)
                 ─► one model thread: Scorer.score(batch) = grader → rules → features → w·x + R_rm
                 ─► each request gets its own slice of the batch's results

A `Pipeline` (policy + grader + reward model + weights) is immutable; a reload builds a new one next to
the serving one, validates it, then swaps the reference. In-flight batches finish on the pipeline they
started with.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

from propositions import Policy, PolicyError, load_policy

from .config import Settings
from .errors import HeadsError, InputError, NotReadyError, WeightsMismatchError
from .grader import GradeItem, Grader
from .linear import RBRWeights
from .reward_models import JudgeRewardModel, RewardModel, build_reward_model
from .scoring import Scored, Scorer

__all__ = ["DynamicBatcher", "Metrics", "Pipeline", "RewardService"]

log = logging.getLogger("rbr.service")
disable_created_metrics()  # no *_created series: they are noise for dashboards


@dataclass(frozen=True)
class Pipeline:
    """One consistent policy + grader + reward model + weights; never mutated, only replaced."""

    policy: Policy
    scorer: Scorer
    weights: RBRWeights
    policy_file: str
    weights_file: str

    @property
    def grader(self) -> Grader:
        return self.scorer.grader

    @property
    def reward_model(self) -> RewardModel:
        return self.scorer.reward_model


class Metrics:
    """Prometheus metrics of one service instance (its own registry, so tests can run several)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter("rbr_requests", "HTTP requests by route and status.", ["route", "status"], registry=r)
        self.latency = Histogram(
            "rbr_request_seconds", "HTTP request latency by route.", ["route"], registry=r,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
        )  # fmt: skip
        self.batch_items = Histogram(
            "rbr_batch_items", "Items per scoring batch sent to the grader and RM.", registry=r,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
        )  # fmt: skip
        self.batch_requests = Histogram(
            "rbr_batch_requests", "Requests merged into one scoring batch.", registry=r,
            buckets=(1, 2, 4, 8, 16, 32, 64),
        )  # fmt: skip
        self.grader_seconds = Histogram("rbr_grader_seconds", "Grader time per batch.", registry=r)
        self.rm_seconds = Histogram("rbr_rm_seconds", "Reward model time per batch.", registry=r)
        self.queue_depth = Gauge("rbr_queue_depth", "Items waiting for a scoring batch.", registry=r)
        self.items = Counter("rbr_items", "Items scored or graded.", ["route"], registry=r)
        self.errors = Counter("rbr_errors", "Errors by kind.", ["kind"], registry=r)


@dataclass
class _Job:
    pipeline: Pipeline
    items: list[GradeItem]
    future: asyncio.Future


@dataclass
class DynamicBatcher:
    """Merges concurrent scoring requests into batches run one at a time on the model thread."""

    run: Callable[[Pipeline, list[GradeItem]], list[Scored]]
    executor: ThreadPoolExecutor
    metrics: Metrics
    max_items: int = 32
    max_wait_s: float = 0.005
    _queue: asyncio.Queue | None = field(default=None, init=False)
    _held: _Job | None = field(default=None, init=False)
    _task: asyncio.Task | None = field(default=None, init=False)

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

    async def submit(self, pipeline: Pipeline, items: list[GradeItem]) -> list[Scored]:
        if self._queue is None:
            raise NotReadyError("the batcher is not running")
        fut = asyncio.get_running_loop().create_future()
        self.metrics.queue_depth.inc(len(items))
        self._queue.put_nowait(_Job(pipeline, items, fut))
        return await fut

    async def _next_batch(self) -> list[_Job]:
        assert self._queue is not None
        first = self._held or await self._queue.get()
        self._held = None
        batch, n = [first], len(first.items)
        deadline = asyncio.get_running_loop().time() + self.max_wait_s
        while n < self.max_items:
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
            if job.pipeline is not first.pipeline or n + len(job.items) > self.max_items:
                self._held = job  # starts the next batch
                break
            batch.append(job)
            n += len(job.items)
        return batch

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._next_batch()
            items = [it for job in batch for it in job.items]
            self.metrics.queue_depth.dec(len(items))
            self.metrics.batch_items.observe(len(items))
            self.metrics.batch_requests.observe(len(batch))
            try:
                results = await loop.run_in_executor(self.executor, self.run, batch[0].pipeline, items)
            except Exception as e:  # every request of the batch gets the error; none gets a reward
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(e)
                continue
            start = 0
            for job in batch:
                part = results[start : start + len(job.items)]
                start += len(job.items)
                if not job.future.done():  # the client may have gone away
                    job.future.set_result(part)


class RewardService:
    """Holds the serving pipeline; loads it, reloads it atomically, scores through the batcher."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.pipeline: Pipeline | None = None
        self.load_error: str | None = None
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="rbr-model")  # the models are not thread-safe
        self.batcher = DynamicBatcher(
            self._run_batch, self.executor, self.metrics, settings.batch_max_items, settings.batch_max_wait_ms / 1000
        )
        self._reload_lock = threading.Lock()

    # -- loading --------------------------------------------------------------------------------------

    def load(self) -> Pipeline:
        """Load the policy, grader, reward model and weights named by the settings (blocking, ~20 s on CPU)."""
        s = self.settings
        try:
            policy = load_policy(s.policy_file)
            if s.default_response_type is not None:
                policy.response_type(s.default_response_type)  # KeyError if unknown
            grader = Grader.from_settings(s, policy=policy)
            rm = build_reward_model(s, grader)
            weights = RBRWeights.load(s.weights_path, policy)
        except Exception as e:
            self.load_error = f"{type(e).__name__}: {e}"
            raise
        if weights.reward_model != rm.identity:
            log.warning("weights %s were fitted with RM %s; serving RM %s", s.weights_path, weights.reward_model,
                        rm.identity)  # fmt: skip
        self.pipeline = Pipeline(
            policy, Scorer(policy, grader, rm, weights), weights, str(s.policy_file or "default"), str(s.weights_path)
        )
        self.load_error = None
        log.info("ready: policy %s, weights %s", policy.hash, weights.version)
        return self.pipeline

    def ready(self) -> Pipeline:
        if self.pipeline is None:
            reason = f"loading failed: {self.load_error}" if self.load_error else "models are still loading"
            raise NotReadyError(reason)
        return self.pipeline

    def reload(self, policy_file: str | None, weights_file: str | None) -> tuple[Pipeline, Pipeline]:
        """Build and validate a new pipeline beside the serving one, then swap it in. -> (old, new).

        Any problem raises InputError naming the file; the serving pipeline is untouched.
        """
        with self._reload_lock:
            old = self.ready()
            where = "policy_file"
            try:
                if policy_file is not None:
                    if not Path(policy_file).exists():
                        raise InputError("policy_file", f"{policy_file}: no such file on the server")
                    policy = load_policy(Path(policy_file))
                else:
                    policy = old.policy
                grader = old.grader.with_policy(policy)
                rm = JudgeRewardModel(grader) if isinstance(old.reward_model, JudgeRewardModel) else old.reward_model
                where = "weights_file"
                wpath = weights_file or old.weights_file
                if not Path(wpath).exists():
                    raise InputError("weights_file", f"{wpath}: no such file on the server")
                weights = RBRWeights.load(wpath, policy)
            except InputError as e:
                raise InputError(e.field, f"{e.problem} (rejected; the old policy keeps serving)") from None
            except (PolicyError, WeightsMismatchError, HeadsError, KeyError, OSError) as e:
                raise InputError(where, f"{e} (rejected; the old policy keeps serving)") from None
            new = Pipeline(policy, Scorer(policy, grader, rm, weights), weights,
                           policy_file or old.policy_file, str(wpath))  # fmt: skip
            self.pipeline = new  # one reference assignment: requests see the old or the new pair, never a mix
            log.info("reloaded: policy %s -> %s, weights %s -> %s", old.policy.hash, policy.hash,
                     old.weights.version, weights.version)  # fmt: skip
            return old, new

    # -- scoring --------------------------------------------------------------------------------------

    def _run_batch(self, pipeline: Pipeline, items: list[GradeItem]) -> list[Scored]:
        timings: dict[str, float] = {}
        try:
            return pipeline.scorer.score(items, timings=timings)
        finally:
            if "grader_s" in timings:
                self.metrics.grader_seconds.observe(timings["grader_s"])
                self.metrics.rm_seconds.observe(timings["rm_s"])

    async def score(self, pipeline: Pipeline, items: list[GradeItem]) -> list[Scored]:
        if not items:
            return []
        return await self.batcher.submit(pipeline, items)

    async def grade(
        self, pipeline: Pipeline, items: Sequence[GradeItem], propositions: Sequence[str] | None
    ) -> list[dict[str, float]]:
        if not items:
            return []
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, pipeline.grader.grade, list(items), propositions)
