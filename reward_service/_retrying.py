"""The client's retry rules, without I/O: one request's attempts over the service's replicas.

Connect errors, a connection that dies mid-answer, 429 and 5xx are retried: first on the other replicas (the least
busy first; scoring is pure, so sending an item twice is safe), then, after a backoff, in another round, up to
`retries` rounds and the deadline. An answer's Retry-After (seconds or an HTTP date) replaces the backoff, capped
at `max_backoff_s`. Any other error (a 4xx, a read timeout) is final at once. The final error names every replica
tried and what it answered: the client never makes up a reward.
"""

from __future__ import annotations

import datetime
import email.utils
import time

import httpx

from reward_service._replicas import Replicas
from reward_service.errors import ServiceError

__all__ = ["Call", "Retry"]

_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


def _retry_after_s(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date, RFC 9110); None if absent or bad."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, (when - datetime.datetime.now(datetime.UTC)).total_seconds())


class Retry:
    """What to retry and how long to wait; shared by both clients."""

    def __init__(self, retries: int, backoff_s: float, max_backoff_s: float, deadline_s: float | None) -> None:
        if retries < 0:
            raise ValueError("retries must be >= 0")
        if deadline_s is not None and deadline_s <= 0:
            raise ValueError("deadline_s must be > 0")
        self.retries, self.backoff_s, self.max_backoff_s = retries, backoff_s, max_backoff_s
        self.deadline_s = deadline_s

    def delay(self, attempt: int, response: httpx.Response | None) -> float:
        """Retry-After (seconds or an HTTP date) when the answer has one, else exponential backoff; both capped."""
        if response is not None and (after := _retry_after_s(response.headers.get("retry-after"))) is not None:
            return min(after, self.max_backoff_s)
        return min(self.backoff_s * 2**attempt, self.max_backoff_s)


def _failure(url: str, response: httpx.Response | None, exc: Exception | None) -> str:
    """One attempt's failure, in words: 'http://a/v1/rewards: HTTP 503 not_ready: models are still loading'."""
    if response is None:
        return f"{url}: {type(exc).__name__}: {exc}"
    err = _error(response)
    where = f" [{err['field']}]" if err.get("field") else ""
    return (
        f"{url}: HTTP {response.status_code} {err.get('type', '')}{where}: {err.get('message') or response.text[:300]}"
    )


def _error_body(response: httpx.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _error(response: httpx.Response) -> dict:
    """The service's {"error": {"type", "message", "field"}}, or {} for any other body."""
    err = _error_body(response).get("error", {})
    return err if isinstance(err, dict) else {}


class Call:
    """One request's attempts over the replicas, without I/O: where to send it next, what a failure means,
    when to give up. Each round tries every replica at most once (the least busy first); rounds are
    separated by the backoff (or Retry-After) and limited by `retries` and the deadline."""

    def __init__(self, replicas: Replicas, retry: Retry, path: str) -> None:
        self.replicas, self.retry, self.path = replicas, retry, path
        self.tried: set[str] = set()  # in this round
        self.failures: dict[str, str] = {}  # replica -> its last failure
        self.round = self.attempts = 0
        self.deadline = None if retry.deadline_s is None else time.monotonic() + retry.deadline_s
        self.last: httpx.Response | None = None

    def next(self) -> tuple[str, bool] | float:
        """(replica, probe it first?) to try now, or seconds to wait before the next round; ServiceError when done."""
        pick = self.replicas.choose(self.tried)
        if pick is not None and not self._late():
            return pick
        wait = self.retry.delay(self.round, self.last)
        if self.round >= self.retry.retries or self._late(wait):
            raise self.give_up()
        self.round += 1
        self.tried.clear()
        return wait

    def _late(self, wait: float = 0.0) -> bool:
        return self.deadline is not None and time.monotonic() + wait > self.deadline

    def probed(self, url: str, ready: bool, reason: str) -> None:
        """The answer of a taken-out replica's readiness probe: it rejoins, or stays out (and is skipped)."""
        self.attempts += 1
        if ready:
            self.replicas.up(url)
        else:
            self.replicas.down(url, reason)
            self.tried.add(url)
            self.failures[url] = f"{url}/readyz: {reason}"

    def answered(self, url: str, response: httpx.Response | None, exc: Exception | None) -> dict | None:
        """The answer's JSON on success; None to try again; ServiceError when the failure is final."""
        self.attempts += 1
        if response is not None and response.status_code < 400:
            self.replicas.up(url)
            return response.json()
        self.tried.add(url)
        self.failures[url] = _failure(url + self.path, response, exc)
        self.last = response
        if exc is not None:
            if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
                raise self.give_up()  # a slow answer is not retried: the service may still be working on it
            if not isinstance(exc, httpx.TransportError):
                raise self.give_up()
            self.replicas.down(url, f"{type(exc).__name__}: {exc}")  # refused, reset, or died mid-answer
            return None
        if response is None or response.status_code not in _RETRY_STATUS:
            raise self.give_up()
        if _error(response).get("type") == "not_ready":
            self.replicas.down(url, "not ready")
        return None

    def give_up(self) -> ServiceError:
        status = self.last.status_code if self.last is not None else None
        body = _error_body(self.last) if self.last is not None else None
        after = f"(after {self.attempts} attempt(s))"
        if len(self.replicas.urls) == 1:
            return ServiceError(f"{next(iter(self.failures.values()), self.path)} {after}", status, body or None)
        failures = "; ".join(self.failures[u] for u in self.replicas.urls if u in self.failures)
        n = len(self.replicas.urls)
        return ServiceError(
            f"{self.path}: no answer from any of {n} replicas {after}: {failures}", status, body or None
        )
