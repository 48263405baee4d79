"""Clients of the reward service (sync and async, on httpx), for trainers, scripts and adapters.

    with RewardClient("http://127.0.0.1:8000") as rbr:
        rewards = rbr.score(prompts, completions, response_types)          # the RewardFn contract
        full = rbr.rewards([{"prompt": p, "completion": c, "category": "C-R"}], return_components=True)

Retries: connect errors, 429 and 5xx are retried `retries` times with exponential backoff; an answer's
Retry-After (seconds or an HTTP date) replaces the backoff, capped at `max_backoff_s`; any other error
(a 4xx, a read timeout) is raised at once. After the last try the client raises `ServiceError` with
the service's error body: it never returns a made-up reward.
Imports only httpx, pydantic and this package's schemas: no torch, no grader.
"""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from reward_service.errors import ServiceError
from reward_service.schemas import GradeResponse, PolicyInfo, Prompt, RewardItem, RewardsResponse

__all__ = ["AsyncRewardClient", "RewardClient", "ServiceError", "build_items"]

DEFAULT_URL = "http://127.0.0.1:8000"
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


def build_items(
    prompts: Sequence[Prompt | list[dict]],
    completions: Sequence[str | Mapping | list],
    response_types: Sequence[str | None] | None = None,
    categories: Sequence[str | None] | None = None,
    rules: Sequence[Sequence[str | Mapping] | None] | None = None,
) -> list[dict[str, Any]]:
    """Request items from parallel lists (completions may be TRL's conversational [{role, content}]); `rules[i]`:
    the deployment rules of row i (strings or {"text", "priority"}), or None."""
    n = len(prompts)
    columns = {"completions": completions, "response_types": response_types, "categories": categories, "rules": rules}
    for name, values in columns.items():
        if values is not None and len(values) != n:
            raise ValueError(f"{name}: {len(values)} entries for {n} prompts")
    items = []
    for i in range(n):
        prompt, completion = prompts[i], completions[i]
        if isinstance(prompt, list):
            prompt = [dict(m) for m in prompt]
        if isinstance(completion, list):  # conversational: the last assistant message
            completion = completion[-1]["content"] if completion else ""
        elif isinstance(completion, Mapping):
            completion = completion["content"]
        item: dict[str, Any] = {"prompt": prompt, "completion": completion}
        if response_types is not None and response_types[i] is not None:
            item["response_type"] = response_types[i]
        if categories is not None and categories[i] is not None:
            item["category"] = categories[i]
        if rules is not None and rules[i]:
            item["rules"] = [r if isinstance(r, str) else dict(r) for r in rules[i]]
        items.append(item)
    return items


def _items_json(items: Sequence[RewardItem | Mapping]) -> list[dict]:
    return [it.model_dump(exclude_none=True) if isinstance(it, RewardItem) else dict(it) for it in items]


def _rewards_body(items: Sequence[RewardItem | Mapping], return_components: bool, harmful_rules: str) -> dict:
    return {"items": _items_json(items), "return_components": return_components, "harmful_rules": harmful_rules}


def _grade_body(items: Sequence[RewardItem | Mapping], propositions: Sequence[str] | None) -> dict:
    return {"items": _items_json(items), "propositions": list(propositions) if propositions else None}


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


class _Retry:
    """What to retry and how long to wait; shared by both clients."""

    def __init__(self, retries: int, backoff_s: float, max_backoff_s: float) -> None:
        if retries < 0:
            raise ValueError("retries must be >= 0")
        self.retries, self.backoff_s, self.max_backoff_s = retries, backoff_s, max_backoff_s

    def delay(self, attempt: int, response: httpx.Response | None) -> float:
        """Retry-After (seconds or an HTTP date) when the answer has one, else exponential backoff; both capped."""
        if response is not None and (after := _retry_after_s(response.headers.get("retry-after"))) is not None:
            return min(after, self.max_backoff_s)
        return min(self.backoff_s * 2**attempt, self.max_backoff_s)

    @staticmethod
    def retryable(response: httpx.Response | None, exc: Exception | None) -> bool:
        if exc is not None:
            return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
        return response is not None and response.status_code in _RETRY_STATUS

    @staticmethod
    def error(url: str, attempts: int, response: httpx.Response | None, exc: Exception | None) -> ServiceError:
        if response is None:
            return ServiceError(f"{url}: {type(exc).__name__}: {exc} (after {attempts} attempt(s))")
        try:
            body = response.json()
            err = body.get("error", {}) if isinstance(body, dict) else {}
        except ValueError:
            body, err = None, {}
        where = f" [{err['field']}]" if err.get("field") else ""
        detail = err.get("message") or response.text[:300]
        return ServiceError(
            f"{url}: HTTP {response.status_code} {err.get('type', '')}{where}: {detail} (after {attempts} attempt(s))",
            response.status_code,
            body if isinstance(body, dict) else None,
        )


class RewardClient:
    """Synchronous client. `token` is sent as a bearer token (the service's api_token)."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        token: str | None = None,
        timeout: float = 300.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        max_backoff_s: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=base_url, timeout=timeout, headers=headers, transport=transport)
        self._retry = _Retry(retries, backoff_s, max_backoff_s)
        self.base_url = base_url

    def __enter__(self) -> RewardClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, body: Any = None) -> dict:
        response: httpx.Response | None = None
        for attempt in range(self._retry.retries + 1):
            exc: Exception | None = None
            try:
                response = self._http.request(method, path, json=body)
            except httpx.HTTPError as e:
                response, exc = None, e
            if response is not None and response.status_code < 400:
                return response.json()
            if attempt == self._retry.retries or not self._retry.retryable(response, exc):
                raise self._retry.error(self.base_url + path, attempt + 1, response, exc)
            time.sleep(self._retry.delay(attempt, response))
        raise AssertionError("unreachable")

    def rewards(
        self, items: Sequence[RewardItem | Mapping], return_components: bool = False, harmful_rules: str = "reject"
    ) -> RewardsResponse:
        """`harmful_rules`: "reject" (a deployment rule harmful to obey is a 422) or "ignore" (dropped, warned)."""
        body = _rewards_body(items, return_components, harmful_rules)
        return RewardsResponse.model_validate(self._request("POST", "/v1/rewards", body))

    def score(
        self,
        prompts: Sequence[Prompt | list[dict]],
        completions: Sequence[str | Mapping | list],
        response_types: Sequence[str | None] | None = None,
        categories: Sequence[str | None] | None = None,
        rules: Sequence[Sequence[str | Mapping] | None] | None = None,
    ) -> list[float]:
        """One reward per (prompt, completion): the RewardFn contract of `schemas.RewardFn` (+ optional rules)."""
        return self.rewards(build_items(prompts, completions, response_types, categories, rules)).rewards

    def grade(self, items: Sequence[RewardItem | Mapping], propositions: Sequence[str] | None = None) -> GradeResponse:
        return GradeResponse.model_validate(self._request("POST", "/v1/grade", _grade_body(items, propositions)))

    def policy(self) -> PolicyInfo:
        return PolicyInfo.model_validate(self._request("GET", "/v1/policy"))

    def wait_ready(self, timeout_s: float = 300.0, poll_s: float = 0.5) -> dict:
        """Poll /readyz until 200; ServiceError with the last reason after `timeout_s`."""
        deadline, reason = time.monotonic() + timeout_s, "no answer"
        while time.monotonic() < deadline:
            try:
                r = self._http.get("/readyz")
                if r.status_code == 200:
                    return r.json()
                reason = r.json().get("reason", r.text)
            except (httpx.HTTPError, ValueError) as e:
                reason = f"{type(e).__name__}: {e}"
            time.sleep(poll_s)
        raise ServiceError(f"{self.base_url} not ready after {timeout_s} s: {reason}")


class AsyncRewardClient:
    """Asynchronous client with the same methods and retry rules as `RewardClient`."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        token: str | None = None,
        timeout: float = 300.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        max_backoff_s: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(base_url=base_url, timeout=timeout, headers=headers, transport=transport)
        self._retry = _Retry(retries, backoff_s, max_backoff_s)
        self.base_url = base_url

    async def __aenter__(self) -> AsyncRewardClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, body: Any = None) -> dict:
        response: httpx.Response | None = None
        for attempt in range(self._retry.retries + 1):
            exc: Exception | None = None
            try:
                response = await self._http.request(method, path, json=body)
            except httpx.HTTPError as e:
                response, exc = None, e
            if response is not None and response.status_code < 400:
                return response.json()
            if attempt == self._retry.retries or not self._retry.retryable(response, exc):
                raise self._retry.error(self.base_url + path, attempt + 1, response, exc)
            await asyncio.sleep(self._retry.delay(attempt, response))
        raise AssertionError("unreachable")

    async def rewards(
        self, items: Sequence[RewardItem | Mapping], return_components: bool = False, harmful_rules: str = "reject"
    ) -> RewardsResponse:
        body = _rewards_body(items, return_components, harmful_rules)
        return RewardsResponse.model_validate(await self._request("POST", "/v1/rewards", body))

    async def score(
        self,
        prompts: Sequence[Prompt | list[dict]],
        completions: Sequence[str | Mapping | list],
        response_types: Sequence[str | None] | None = None,
        categories: Sequence[str | None] | None = None,
        rules: Sequence[Sequence[str | Mapping] | None] | None = None,
    ) -> list[float]:
        return (await self.rewards(build_items(prompts, completions, response_types, categories, rules))).rewards

    async def grade(
        self, items: Sequence[RewardItem | Mapping], propositions: Sequence[str] | None = None
    ) -> GradeResponse:
        body = _grade_body(items, propositions)
        return GradeResponse.model_validate(await self._request("POST", "/v1/grade", body))

    async def policy(self) -> PolicyInfo:
        return PolicyInfo.model_validate(await self._request("GET", "/v1/policy"))
