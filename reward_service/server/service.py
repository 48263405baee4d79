"""The reward service without HTTP: the loaded pipeline, atomic reloads and dynamic batching.

    request items ─► DynamicBatcher (batching.py): merges concurrent requests, ≤ batch_max_items, ≤ batch_max_wait_ms
                 ─► one model thread: Scorer.score(batch) = grader → rules → features → w·x + R_rm
                 ─► each request gets its own slice of the batch's results

A `Pipeline` (policy + grader + reward model + weights) is immutable; a reload builds a new one next to
the serving one, validates it, then swaps the reference. In-flight batches finish on the pipeline they
started with.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from propositions import AUTO, Policy, PolicyError, Rule, load_policy
from reward_service.config import Settings
from reward_service.errors import (
    HeadsError,
    InputError,
    ModelLoadError,
    NotReadyError,
    WeightsMismatchError,
)
from reward_service.grader import GradeItem, Grader
from reward_service.reward.linear import RBRWeights, order_violations
from reward_service.reward.reward_models import RewardModel, build_reward_model
from reward_service.reward.rule_term import RuleWeights
from reward_service.reward.scoring import Scored, Scorer
from reward_service.server.batching import DynamicBatcher
from reward_service.server.metrics import Metrics

__all__ = ["Pipeline", "RewardService"]

log = logging.getLogger("rbr.service")


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


def _rule_weights(s: Settings) -> RuleWeights | None:
    """The rule term's weights: the configured file (an error if missing), else the shipped one if present."""
    if s.rule_weights_file is not None and not s.rule_weights_file.exists():
        raise ModelLoadError(f"rule weights {s.rule_weights_file}: no such file (RBR_RULE_WEIGHTS_FILE)")
    return RuleWeights.load(s.rule_weights_path) if s.rule_weights_path.exists() else None


def _no_dtype(identity: str) -> str:
    return re.sub(r"\|(?:bfloat16|float32|float16)\b", "", identity)


class RewardService:
    """Holds the serving pipeline; loads it, reloads it atomically, scores through the batcher."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.pipeline: Pipeline | None = None
        self.load_error: str | None = None
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="rbr-model")  # the models are not thread-safe
        self.batcher = DynamicBatcher(
            self._run_batch,
            self.executor,
            self.metrics,
            settings.batch_max_items,
            settings.batch_max_wait_ms / 1000,
            settings.max_queue_items,
        )
        self._reload_lock = threading.Lock()

    # -- loading --------------------------------------------------------------------------------------

    def load(self) -> Pipeline:
        """Load the policy, grader, reward model and weights named by the settings (blocking, ~20 s on CPU)."""
        s = self.settings
        try:
            policy = load_policy(s.policy_file)
            if s.default_response_type not in (None, AUTO):
                policy.response_type(s.default_response_type)  # KeyError if unknown
            grader = Grader.from_settings(s, policy=policy)
            rm = build_reward_model(s, grader.identity)
            weights = RBRWeights.load(s.weights_path, policy).scaled(s.rbr_scale)
            rule_weights = _rule_weights(s)
        except Exception as e:
            self.load_error = f"{type(e).__name__}: {e}"
            raise
        if _no_dtype(weights.reward_model) != _no_dtype(rm.identity):  # the grader's dtype alone is no mismatch
            log.warning(
                "weights %s were fitted with RM %s; serving RM %s", s.weights_path, weights.reward_model, rm.identity
            )
        for rt, better, worse, gap in order_violations(policy, weights):
            log.warning(
                "weights %s break the policy's order: a %s completion can outscore a %s one by %.2f (%s)",
                *(s.weights_path, worse, better, gap, rt),
            )
        self.pipeline = Pipeline(
            policy,
            Scorer(policy, grader, rm, weights, rule_weights, s.auto_reward),
            weights,
            str(s.policy_file or "default"),
            str(s.weights_path),
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
                # ModelLoadError: the RM's needs are missing
                scorer = Scorer(policy, grader, old.reward_model, None, old.scorer.rule_weights, old.scorer.auto_reward)
                where = "weights_file"
                wpath = weights_file or old.weights_file
                if not Path(wpath).exists():
                    raise InputError("weights_file", f"{wpath}: no such file on the server")
                weights = RBRWeights.load(wpath, policy).scaled(self.settings.rbr_scale)
            except InputError as e:
                if isinstance(e, PolicyError):  # an InputError whose field names a key inside the file
                    raise InputError("policy_file", f"{e} (rejected; the old policy keeps serving)") from None
                raise InputError(e.field, f"{e.problem} (rejected; the old policy keeps serving)") from None
            except (WeightsMismatchError, HeadsError, ModelLoadError, KeyError, OSError) as e:
                raise InputError(where, f"{e} (rejected; the old policy keeps serving)") from None
            scorer.weights = weights
            new = Pipeline(policy, scorer, weights, policy_file or old.policy_file, str(wpath))
            self.pipeline = new  # one reference assignment: requests see the old or the new pair, never a mix
            log.info(
                "reloaded: policy %s -> %s, weights %s -> %s",
                old.policy.hash,
                policy.hash,
                old.weights.version,
                weights.version,
            )
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
        return await self.batcher.submit(pipeline, items, self.settings.request_timeout_s)

    async def grade(
        self, pipeline: Pipeline, items: Sequence[GradeItem], propositions: Sequence[str] | None
    ) -> list[tuple[dict[str, float], list[dict[str, float]], dict[str, float] | None]]:
        """Per item: the policy's proposition probabilities, its deployment rules' ([] without rules), and
        P(category) of an AUTO item's prompt (None for a labelled item)."""
        if not items:
            return []

        def run(p: Pipeline, batch: list[GradeItem]) -> list:
            probs, categories = p.grader.grade_with_categories(batch, propositions)
            return list(zip(probs, p.grader.grade_rules(batch), categories, strict=True))

        return await self.batcher.submit(pipeline, list(items), self.settings.request_timeout_s, run)

    async def rule_harm(self, pipeline: Pipeline, items: Sequence[GradeItem]) -> dict[str, float]:
        """P(harmful to obey) of every distinct rule text among the items, read on the model thread."""
        texts = sorted({r.text for it in items for r in it.rules})
        if not texts:
            return {}

        def run(p: Pipeline, _: list[GradeItem]) -> list[float]:
            return p.grader.rule_harm([Rule(text=t) for t in texts])

        probs = await self.batcher.submit(pipeline, [items[0]] * len(texts), self.settings.request_timeout_s, run)
        return dict(zip(texts, probs, strict=True))
