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
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from propositions import AUTO, Policy, PolicyError, Rule, load_policy
from reward_service.config import Settings
from reward_service.errors import (
    HeadsError,
    InputError,
    LimitError,
    ModelLoadError,
    NotReadyError,
    WeightsMismatchError,
)
from reward_service.grader import GradeItem, Grader, ItemLimits, parse_item
from reward_service.reward.linear import RBRWeights, order_violations
from reward_service.reward.reward_models import RewardModel, build_reward_model
from reward_service.reward.rule_term import RuleWeights
from reward_service.reward.scoring import Scored, Scorer
from reward_service.schemas import HarmfulRules
from reward_service.server.batching import DynamicBatcher
from reward_service.server.metrics import Metrics

__all__ = ["Pipeline", "RewardService", "screen_rules"]

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

    def load(self, grader: Grader | None = None) -> Pipeline:
        """Load the policy, grader, reward model and weights named by the settings (blocking, ~20 s on CPU).
        `grader`: serve this one, under its own policy, instead of the LLM and policy the settings name."""
        s = self.settings
        try:
            policy = grader.policy if grader is not None else load_policy(s.policy_file)
            if s.default_response_type not in (None, AUTO):
                policy.response_type(s.default_response_type)  # KeyError if unknown
            grader = grader or Grader.from_settings(s, policy=policy)
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

    # -- request items: limits, labels, rule screening (below HTTP: every route asks here) -----------------

    def prepare(
        self,
        pipeline: Pipeline,
        objs: Sequence[Mapping],
        field: str = "items",
        rename: Callable[[int, str], str] | None = None,
    ) -> list[GradeItem]:
        """Request items -> grade items: the count limit (413 naming `field`), each item's validation and response
        type (422 naming `field[i].<key>`, or `rename(i, key)`), and a prompt classifier for category 'auto'
        (checked before batching: one request's 422, not a merged batch's)."""
        self.check_count(len(objs), field)
        limits, out = ItemLimits.from_settings(self.settings), []
        for i, obj in enumerate(objs):
            try:
                out.append(parse_item(obj, pipeline.policy, "" if rename else f"{field}[{i}]", limits))
            except InputError as e:
                if rename is None:
                    raise
                raise type(e)(rename(i, e.field), e.problem) from None
            if out[-1].response_type == AUTO:
                key = "category" if obj.get("category") is not None else "response_type"
                pipeline.grader.require_classifier(rename(i, key) if rename else f"{field}[{i}].{key}")
        return out

    def check_count(self, n: int, field: str = "items") -> None:
        """LimitError (413) naming `field` past RBR_MAX_ITEMS items in one request."""
        if n > self.settings.max_items:
            raise LimitError(field, f"{n} {field}, over the limit of {self.settings.max_items} per request")

    def _screened(self, p: Pipeline, items: list[GradeItem], mode: HarmfulRules, warnings: list[str]) -> list:
        """On the model thread, before grading: the items' deployment rules read for harm (Grader.rule_harm)."""
        texts = sorted({r.text for it in items for r in it.rules})
        harm = dict(zip(texts, p.grader.rule_harm([Rule(text=t) for t in texts]), strict=True))
        out, found = screen_rules(items, harm, mode, self.settings.rule_harm_threshold)
        warnings += found
        return out

    # -- scoring --------------------------------------------------------------------------------------

    def _run_batch(self, pipeline: Pipeline, items: list[GradeItem]) -> list[Scored]:
        timings: dict[str, float] = {}
        try:
            return pipeline.scorer.score(items, timings=timings)
        finally:
            if "grader_s" in timings:
                self.metrics.grader_seconds.observe(timings["grader_s"])
                self.metrics.rm_seconds.observe(timings["rm_s"])

    async def score(
        self, pipeline: Pipeline, items: list[GradeItem], harmful_rules: HarmfulRules = "reject"
    ) -> tuple[list[Scored], list[str]]:
        """(scores, warnings). Items without deployment rules are merged with other requests' into batches; a
        request with rules runs as its own batch, its rules screened for harm in the same trip."""
        if not items:
            return [], []
        timeout = self.settings.request_timeout_s
        if not any(it.rules for it in items):
            return await self.batcher.submit(pipeline, items, timeout), []
        warnings: list[str] = []

        def run(p: Pipeline, batch: list[GradeItem]) -> list[Scored]:
            return self._run_batch(p, self._screened(p, batch, harmful_rules, warnings))

        return await self.batcher.submit(pipeline, items, timeout, run), warnings

    async def grade(
        self,
        pipeline: Pipeline,
        items: Sequence[GradeItem],
        propositions: Sequence[str] | None,
        harmful_rules: HarmfulRules = "reject",
    ) -> tuple[list[tuple[GradeItem, dict[str, float], list[dict[str, float]], dict[str, float] | None]], list[str]]:
        """(per item: the item as graded (harmful rules dropped), the policy's proposition probabilities, its
        deployment rules' ([] without rules), P(category) of an AUTO item's prompt (None if labelled); warnings)."""
        pipeline.policy.check_propositions(propositions or ())  # before the request waits for the model thread
        if not items:
            return [], []
        warnings: list[str] = []

        def run(p: Pipeline, batch: list[GradeItem]) -> list:
            if any(it.rules for it in batch):
                batch = self._screened(p, batch, harmful_rules, warnings)
            probs, categories = p.grader.grade_with_categories(batch, propositions)
            return list(zip(batch, probs, p.grader.grade_rules(batch), categories, strict=True))

        graded = await self.batcher.submit(pipeline, list(items), self.settings.request_timeout_s, run)
        return graded, warnings


def screen_rules(
    items: Sequence[GradeItem], harm: Mapping[str, float], mode: HarmfulRules, threshold: float
) -> tuple[list[GradeItem], list[str]]:
    """Deployment rules harmful to obey (P(harmful) >= threshold): an InputError naming the first (mode "reject"),
    or dropped with a warning each ("ignore")."""
    out, warnings = [], []
    for i, it in enumerate(items):
        keep = []
        for j, rule in enumerate(it.rules):
            p = harm[rule.text]
            if p < threshold:
                keep.append(rule)
            elif mode == "reject":
                raise InputError(
                    f"items[{i}].rules[{j}]",
                    f"the rule {rule.text!r} is harmful to obey (P(harmful) {p:.2f}, limit {threshold:g}, "
                    "RBR_RULE_HARM_THRESHOLD): refused; send harmful_rules: ignore to drop such rules instead",
                )
            else:
                warnings.append(f"items[{i}].rules[{j}]: ignored a rule harmful to obey (P {p:.2f}): {rule.text!r}")
        out.append(it if len(keep) == len(it.rules) else replace(it, rules=tuple(keep)))
    return out, warnings
