"""The service's exception tree. Third-party errors are translated into these at the boundary.

    RBRError
    ├── InputError          bad input: names the field and the limit (HTTP 4xx, CLI exit 2)
    ├── ModelLoadError      a grader or reward model could not be found, fetched or loaded
    ├── GraderError         the grader failed on a batch; never replaced by a default value
    │   └── GraderTimeout   the grader did not answer in time
    ├── RewardModelError    a reward model call failed or timed out; never replaced by a default score
    ├── HeadsError          trained heads / calibrators missing or fitted for another model or prompt
    └── WeightsMismatchError  RBR weights fitted for another policy version or other feature names

Policy files raise `propositions.PolicyError` (a ValueError), which names the file, key and problem.
"""

from __future__ import annotations

__all__ = [
    "GraderError",
    "GraderTimeout",
    "HeadsError",
    "InputError",
    "ModelLoadError",
    "RBRError",
    "WeightsMismatchError",
]


class RBRError(Exception):
    """Base of every error this package raises on purpose."""


class InputError(RBRError, ValueError):
    """Bad input. `field` is where (e.g. 'line 3: completion'), the message says what limit it broke."""

    def __init__(self, field: str, problem: str) -> None:
        self.field, self.problem = field, problem
        super().__init__(f"{field}: {problem}")


class ModelLoadError(RBRError):
    """A model could not be located, fetched or loaded."""


class GraderError(RBRError):
    """The grader failed; the batch has no probabilities."""


class GraderTimeout(GraderError):
    """The grader did not answer within its timeout."""


class HeadsError(RBRError):
    """Trained heads or calibrators are missing, or were fitted for another model or prompt format."""


class WeightsMismatchError(RBRError):
    """RBR weights do not fit the running policy (other hash or feature names); the message says which."""


class RewardModelError(RBRError):
    """A reward model call failed or timed out; the batch has no scores."""
