"""Reward normalisation by response type, before PPO sees the rewards.

The service's rewards live on different scales per response type: a comply prompt's ideal completion earns
about +13, a hard-refuse prompt's ideal refusal about +2 (and its disallowed completion about -13). A rollout
batch mixes response types, and PPO's one value model and its batch-whitened advantages then treat every
hard-refuse rollout as below average — including the refusals the rules pay for — until the value model has
learned each prompt's level. `ResponseTypeNormalizer` centres and scales each reward by a running mean and
standard deviation of its own response type's rewards, so within each response type the better completions
get the positive advantage (what GRPO's per-prompt group baseline does, without sampling a group per prompt).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["ResponseTypeNormalizer"]


@dataclass
class ResponseTypeNormalizer:
    """Running (exponential) mean and variance per response type; `momentum` is the weight of the newest batch.

    A response type seen for the first time takes its batch's mean, and the whole batch's variance when it has
    a single reward. State is a plain dict, so a checkpoint can keep it and `--resume` continue it."""

    momentum: float = 0.1
    eps: float = 1e-6
    stats: dict[str, tuple[float, float]] = field(default_factory=dict)  # response type -> (mean, variance)

    def __call__(self, rewards: Sequence[float], response_types: Sequence[str]) -> list[float]:
        if len(rewards) != len(response_types):
            raise ValueError(f"{len(rewards)} rewards but {len(response_types)} response types")
        batch_var = _variance(rewards)
        for rt in dict.fromkeys(response_types):
            own = [r for r, t in zip(rewards, response_types, strict=True) if t == rt]
            mean, var = sum(own) / len(own), _variance(own) if len(own) > 1 else batch_var
            if rt in self.stats:
                m0, v0 = self.stats[rt]
                a = self.momentum
                mean = (1 - a) * m0 + a * mean
                var = (1 - a) * v0 + a * sum((r - mean) ** 2 for r in own) / len(own)
            self.stats[rt] = (mean, var)
        pairs = zip(rewards, response_types, strict=True)
        return [(r - self.stats[t][0]) / math.sqrt(self.stats[t][1] + self.eps) for r, t in pairs]

    def state_dict(self) -> dict[str, list[float]]:
        return {rt: [m, v] for rt, (m, v) in self.stats.items()}

    def load_state_dict(self, state: dict[str, list[float]]) -> None:
        self.stats = {rt: (float(m), float(v)) for rt, (m, v) in state.items()}


def _variance(xs: Sequence[float]) -> float:
    if len(xs) < 2:
        return 1.0
    m = sum(xs) / len(xs)
    return sum((x - m) ** 2 for x in xs) / len(xs)
