"""The scoring pipeline: item -> grader -> rules -> features -> linear model (+ reward model) -> reward.

features(item)  = [P(prop) for the response type's propositions] + [P(class) for its classes]
reward(item)    = R_rm(item) + w[response_type] . features(item)  [+ the rule term of its deployment rules]

The rule term (rule_term.py) is there only for items that carry deployment rules (SoFA).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from propositions import Policy, class_probabilities, feature_vector, top_class
from reward_service.config import AutoReward
from reward_service.errors import GraderError, InputError, ModelLoadError
from reward_service.grader import GradeItem, Grader
from reward_service.reward.linear import RBRWeights
from reward_service.reward.reward_models import RewardModel
from reward_service.reward.rule_term import RuleWeights, rule_terms

__all__ = ["FeatureCache", "Scored", "Scorer"]


@dataclass
class Scored:
    """Everything computed for one item on its way to a reward."""

    response_type: str
    propositions: dict[str, float]
    classes: dict[str, float]
    features: np.ndarray  # (d,) in policy.feature_names(response_type) order
    rm: float
    rbr: float | None = None  # w . features, when weights are loaded
    rule_term: float = 0.0  # sum over the item's deployment rules of priority * v . rule_features
    rules: list[dict] = field(default_factory=list)  # per rule: text, priority, probabilities, term
    # category 'auto': P(category) read from the prompt, and P(response type) summed from it; response_type
    # (and classes, features) is then the most likely one, rbr as `Scorer.auto_reward` says
    category_probabilities: dict[str, float] | None = None
    response_type_probabilities: dict[str, float] | None = None

    @property
    def top_class(self) -> str:
        """The most probable completion class (propositions.top_class: the one place it is computed)."""
        return top_class(self.classes)

    @property
    def reward(self) -> float:
        if self.rbr is None:
            raise ValueError("no RBR weights loaded")
        return self.rm + self.rbr + self.rule_term


@dataclass
class FeatureCache:
    """Per-item feature/RM rows on disk, keyed by content and by who computed them."""

    root: Path
    identity: str  # grader + policy + RM identity
    _dir: Path = field(init=False)

    def __post_init__(self) -> None:
        self._dir = self.root / hashlib.sha256(self.identity.encode()).hexdigest()[:16]

    def _path(self, item: GradeItem) -> Path:
        return self._dir / f"{item.key()}-{item.response_type}.json"

    def get(self, item: GradeItem) -> dict | None:
        p = self._path(item)
        return json.loads(p.read_text()) if p.exists() else None

    def put(self, item: GradeItem, row: dict) -> None:
        p = self._path(item)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(".tmp")
        tmp.write_text(json.dumps(row))
        tmp.replace(p)


class Scorer:
    """Grades items, applies the rules and the linear model, adds the reward model's score."""

    def __init__(
        self,
        policy: Policy,
        grader: Grader,
        reward_model: RewardModel,
        weights: RBRWeights | None,
        rule_weights: RuleWeights | None = None,
        auto_reward: AutoReward = "most_likely",
    ) -> None:
        missing = [p for p in reward_model.needs if p not in policy.propositions]
        if missing:
            raise ModelLoadError(
                f"reward model {reward_model.identity} reads proposition(s) {', '.join(missing)}, "
                "which the policy does not define"
            )
        self.policy, self.grader, self.reward_model, self.weights = policy, grader, reward_model, weights
        self.rule_weights = rule_weights
        self.auto_reward = auto_reward

    @property
    def identity(self) -> str:
        """Who computes features: JSON of grader engine, mode, policy hash and RM (recorded with fitted weights)."""
        return json.dumps(
            {
                "grader": self.grader.engine_id,
                "mode": self.grader.mode_id,
                "policy": self.policy.hash,
                "reward_model": self.reward_model.identity,
            },
            sort_keys=True,
        )

    def score(
        self,
        items: Sequence[GradeItem],
        cache: FeatureCache | None = None,
        progress: bool = False,
        timings: dict[str, float] | None = None,
    ) -> list[Scored]:
        """Score items; `timings` (if given) gets the seconds spent in the grader and the reward model."""
        if self.rule_weights is None and any(it.rules for it in items):
            raise InputError("rules", "this service has no rule-term weights (RBR_RULE_WEIGHTS_FILE), so no rules")
        rows: list[dict | None] = [cache.get(it) if cache is not None else None for it in items]
        todo = [i for i, row in enumerate(rows) if row is None]
        if todo:
            sub = [items[i] for i in todo]
            t0 = time.perf_counter()
            # one pass: the propositions of each item's response type and those the reward model reads
            probs, categories = self.grader.grade_with_categories(sub, progress=progress, also=self.reward_model.needs)
            rule_probs = self.grader.grade_rules(sub)
            t1 = time.perf_counter()
            rm = self._rm_scores(sub, probs)
            if timings is not None:
                timings["grader_s"] = timings.get("grader_s", 0.0) + t1 - t0
                timings["rm_s"] = timings.get("rm_s", 0.0) + time.perf_counter() - t1
            for i, it, p, r, rp, c in zip(todo, sub, probs, rm, rule_probs, categories, strict=True):
                rows[i] = {"propositions": p, "rm": float(r)} | ({"rules": rp} if rp else {})
                rows[i] |= {"categories": c} if c is not None else {}
                if cache is not None:
                    cache.put(it, rows[i])
        out = []
        for it, row in zip(items, rows, strict=True):
            p, r = row["propositions"], row["rm"]  # type: ignore[index]
            if not (math.isfinite(r) and all(math.isfinite(v) for v in p.values())):
                raise GraderError(f"non-finite grader or RM output (rm={r}, propositions={p}): no reward is made up")
            c = row.get("categories")  # type: ignore[union-attr]
            if c is not None and not all(math.isfinite(v) for v in c.values()):
                raise GraderError(f"non-finite category probabilities {c}: no reward is made up")
            scored = self._assemble_auto(p, float(r), c) if c is not None else self._assemble(it.response_type, p, r)
            if it.rules:
                rp = row["rules"]  # type: ignore[index]
                if not all(math.isfinite(v) for d in rp for v in d.values()):
                    raise GraderError(f"non-finite rule probabilities {rp}: no reward is made up")
                scored.rule_term, scored.rules = rule_terms(self.rule_weights, it.rules, rp)  # type: ignore[arg-type]
            out.append(scored)
        return out

    def _rm_scores(self, items: Sequence[GradeItem], probs: Sequence[dict[str, float]]) -> np.ndarray:
        """The reward model's scores; an RM that reads grader propositions gets them from the grading pass."""
        return self.reward_model.score(items, probs) if self.reward_model.needs else self.reward_model.score(items)

    def _assemble_auto(self, probs: dict[str, float], rm: float, categories: dict[str, float]) -> Scored:
        """An AUTO item, scored under its prompt's most likely response type; with auto_reward 'expected' its RBR
        term is the expectation over P(response type) instead (every possible type's term, weighted)."""
        p_rt = self.policy.response_type_probabilities(categories)
        most = max(p_rt, key=p_rt.__getitem__)
        out = self._assemble(most, probs, rm)
        if out.rbr is not None and self.auto_reward == "expected":
            rbr = {rt: out.rbr if rt == most else self._assemble(rt, probs, rm).rbr for rt, p in p_rt.items() if p > 0}
            out.rbr = float(sum(p_rt[rt] * v for rt, v in rbr.items()))  # type: ignore[operator]
        out.category_probabilities, out.response_type_probabilities = categories, p_rt
        return out

    def _assemble(self, response_type: str, probs: dict[str, float], rm: float) -> Scored:
        classes = {k: float(v) for k, v in class_probabilities(self.policy, response_type, probs).items()}
        _, x = feature_vector(self.policy, response_type, probs, classes)
        rbr = float(self.weights.rbr_score(response_type, x)) if self.weights is not None else None
        return Scored(response_type, dict(probs), classes, x, rm, rbr)
