"""The service's exception tree. Third-party errors are translated into these at the boundary.

    RBRError
    ├── InputError          bad input: names the field and the limit (HTTP 422, CLI exit 2)
    │   ├── LimitError      too many items or too long a text (HTTP 413)
    │   └── PolicyError     a policy file is invalid: names the file, the key and the problem (HTTP 422)
    ├── AuthError           missing or wrong bearer token on a protected route (HTTP 401)
    ├── NotReadyError       the service is still loading its models (HTTP 503)
    ├── OverloadedError     too much work is queued; come back after `retry_after` seconds (HTTP 429)
    ├── RequestTimeout      the request was not scored within its deadline (HTTP 503)
    ├── ModelLoadError      a grader or reward model could not be found, fetched or loaded
    ├── GraderError         the grader failed on a batch; never replaced by a default value
    │   ├── GraderTimeout   the grader did not answer in time
    │   └── GraderUnavailable  a grader server refused the connection or answered 5xx (another replica is tried)
    ├── RewardModelError    a reward model call failed or timed out; never replaced by a default score
    ├── HeadsError          trained heads / calibrators missing or fitted for another model or prompt
    ├── WeightsMismatchError  RBR weights fitted for another policy version or other feature names
    └── ServiceError        the reward service answered with an error, or could not be reached (client side)

RBRError, InputError and PolicyError are defined in `propositions` (the bottom layer raises into the tree
too) and re-exported here. Third-party errors of HTTP calls are mapped in one place, `_http.post_json`.
"""

from __future__ import annotations

from propositions import InputError, PolicyError, RBRError

__all__ = [
    "AuthError",
    "GraderError",
    "GraderTimeout",
    "GraderUnavailable",
    "HeadsError",
    "InputError",
    "LimitError",
    "ModelLoadError",
    "NotReadyError",
    "OverloadedError",
    "PolicyError",
    "RBRError",
    "RequestTimeout",
    "ServiceError",
    "WeightsMismatchError",
]


class ModelLoadError(RBRError):
    """A model could not be located, fetched or loaded."""


class GraderError(RBRError):
    """The grader failed; the batch has no probabilities."""


class GraderTimeout(GraderError):
    """The grader did not answer within its timeout."""


class GraderUnavailable(GraderError):
    """A grader server could not be reached or answered 5xx: the request may go to another replica."""


class HeadsError(RBRError):
    """Trained heads or calibrators are missing, or were fitted for another model or prompt format."""


class WeightsMismatchError(RBRError):
    """RBR weights do not fit the running policy (other hash or feature names); the message says which."""


class RewardModelError(RBRError):
    """A reward model call failed or timed out; the batch has no scores."""


class LimitError(InputError):
    """Input over a configured limit (items per request, characters per item)."""


class AuthError(RBRError):
    """A protected route was called without the right bearer token."""


class NotReadyError(RBRError):
    """The service has not finished loading its models."""


class OverloadedError(RBRError):
    """The service's queue is full; `retry_after` is the estimated wait in seconds (sent as Retry-After)."""

    def __init__(self, message: str, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class RequestTimeout(RBRError):
    """A request waited longer than its deadline; its items were dropped, none was scored."""

    def __init__(self, message: str, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class ServiceError(RBRError):
    """Client side: the reward service failed or could not be reached after the last retry.

    `status` is the HTTP status of the last answer (None if none came), `body` its parsed error.
    """

    def __init__(self, message: str, status: int | None = None, body: dict | None = None) -> None:
        self.status, self.body = status, body
        super().__init__(message)
