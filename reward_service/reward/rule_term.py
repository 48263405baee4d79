"""The rule term of the reward: deployment rules given with a request (SoFA's priority rule following).

    reward = R_rm + w[response_type] . features  +  sum over the item's rules of priority * v . rule_features

rule_features (propositions.rule_features) are keeps, keeps_announced, breaks, over_applies, products of the
rule's graded P(rule_relevant), P(follows_rule), P(announces_rule). v is fitted like the policy's weights
(linear.fit_hinge), with the base reward R_rm + w . features held fixed, on rule triplets ordered by
propositions.RULE_ORDERING: on a request the rule applies to, keeping the rule against the user beats obeying
the user, so v must outweigh whatever the base reward gives for doing what was asked.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from propositions import RULE_FEATURES, Rule, rule_features
from reward_service.errors import InputError, WeightsMismatchError

__all__ = ["RuleWeights", "rule_terms"]


@dataclass
class RuleWeights:
    """The fitted v, and what it was fitted for (people read `data` and `metrics`; code checks the names)."""

    feature_names: list[str]
    weights: list[float]
    rule_grader: str  # who graded the rule propositions it was fitted on
    data: dict
    metrics: dict

    @property
    def version(self) -> str:
        return hashlib.sha256(json.dumps([self.feature_names, self.weights]).encode()).hexdigest()[:12]

    def term(self, rule: Rule, probs: Mapping[str, float]) -> float:
        """priority * v . rule_features for one rule."""
        return float(rule.priority * (rule_features(probs) @ np.asarray(self.weights)))

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"version": self.version, **asdict(self)}, indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> RuleWeights:
        try:
            raw = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise InputError(str(path), f"cannot read rule weights: {e}") from None
        raw.pop("version", None)
        try:
            w = cls(**raw)
        except TypeError as e:
            raise InputError(str(path), f"not a rule weights file: {e}") from None
        if tuple(w.feature_names) != RULE_FEATURES or len(w.weights) != len(RULE_FEATURES):
            raise WeightsMismatchError(
                f"{path}: rule weights for features {w.feature_names}, the service computes {list(RULE_FEATURES)}"
            )
        return w


def rule_terms(
    weights: RuleWeights, rules: Sequence[Rule], probs: Sequence[Mapping[str, float]]
) -> tuple[float, list[dict]]:
    """The item's rule term and, per rule, what `components.rules` shows: text, priority, probabilities, term."""
    shown, total = [], 0.0
    for rule, p in zip(rules, probs, strict=True):
        t = weights.term(rule, p)
        total += t
        shown.append({"text": rule.text, "priority": rule.priority, **{k: float(v) for k, v in p.items()}, "term": t})
    return total, shown
