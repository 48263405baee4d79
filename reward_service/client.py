"""Clients of the reward service (sync and async, on httpx), for trainers, scripts and adapters.

    with RewardClient("http://127.0.0.1:8000") as rbr:
        rewards = rbr.score(prompts, completions, response_types)          # the RewardFn contract
        full = rbr.rewards([{"prompt": p, "completion": c, "category": "C-R"}], return_components=True)

    RewardClient("http://a:8000,http://b:8000")   # several replicas: each request to the least busy one that is up

Retries (_retrying.py): connect errors, a replica dying mid-answer, 429 and 5xx are retried on the other replicas,
then in up to `retries` more rounds after a backoff (Retry-After honoured), within `deadline_s`; any other error (a
4xx, a read timeout) is raised at once. In the end the client raises `ServiceError` naming every replica tried and
what it answered: it never returns a made-up reward. Replicas that refuse connections are taken out and probed
back in with /readyz (_replicas.py). Imports only httpx, pydantic and this package's schemas: no torch, no grader.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from reward_service._replicas import Replicas, parse_urls
from reward_service._retrying import Call, Retry
from reward_service.errors import ServiceError
from reward_service.schemas import GradeResponse, PolicyInfo, Prompt, RewardItem, RewardsResponse

__all__ = ["AsyncRewardClient", "RewardClient", "ServiceError", "build_items", "parse_urls"]

DEFAULT_URL = "http://127.0.0.1:8000"


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


class _ClientBase:
    """What the sync and async clients share (no I/O): the replicas, the retry rules, the headers."""

    def __init__(
        self,
        base_url: str | Sequence[str],
        token: str | None,
        retries: int,
        backoff_s: float,
        max_backoff_s: float,
        deadline_s: float | None,
    ) -> None:
        self.replicas = Replicas(base_url, what="base_url")
        self.base_url = ",".join(self.replicas.urls)
        self._retry = Retry(retries, backoff_s, max_backoff_s, deadline_s)
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}

    def _call(self, path: str) -> Call:
        return Call(self.replicas, self._retry, path)


class RewardClient(_ClientBase):
    """Synchronous client. `base_url`: one service URL, several (a list or comma-separated: each request goes to
    the least busy replica that is up, and a failed one is retried on another), `token`: the service's api_token
    (sent as a bearer token), `deadline_s`: the most one call may take over all its retries."""

    def __init__(
        self,
        base_url: str | Sequence[str] = DEFAULT_URL,
        *,
        token: str | None = None,
        timeout: float = 300.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        max_backoff_s: float = 10.0,
        deadline_s: float | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, token, retries, backoff_s, max_backoff_s, deadline_s)
        self._http = httpx.Client(timeout=timeout, headers=self._headers, transport=transport)

    def __enter__(self) -> RewardClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, body: Any = None) -> dict:
        call = self._call(path)
        while True:
            step = call.next()
            if isinstance(step, float):
                time.sleep(step)
                continue
            url, probe = step
            if probe and not self._probe(call, url):
                continue
            self.replicas.begin(url)
            try:
                response, exc = self._http.request(method, url + path, json=body), None
            except httpx.HTTPError as e:
                response, exc = None, e
            finally:
                self.replicas.end(url)
            if (answer := call.answered(url, response, exc)) is not None:
                return answer

    def _probe(self, call: Call, url: str) -> bool:
        try:
            r = self._http.get(url + "/readyz", timeout=5.0)
            call.probed(url, r.status_code == 200, f"HTTP {r.status_code}")
        except httpx.HTTPError as e:
            call.probed(url, False, f"{type(e).__name__}: {e}")
        return not self.replicas.is_out(url)

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
        """Poll /readyz until every replica answers 200 (-> the last one's answer); ServiceError naming the
        replicas still not ready, with their last reason, after `timeout_s`."""
        deadline, waiting = time.monotonic() + timeout_s, {u: "no answer" for u in self.replicas.urls}
        answer: dict = {}
        while waiting and time.monotonic() < deadline:
            for url in list(waiting):
                try:
                    r = self._http.get(url + "/readyz")
                    if r.status_code == 200:
                        answer = r.json()
                        del waiting[url]
                        continue
                    waiting[url] = r.json().get("reason", r.text)
                except (httpx.HTTPError, ValueError) as e:
                    waiting[url] = f"{type(e).__name__}: {e}"
            if waiting:
                time.sleep(poll_s)
        if waiting:
            reasons = "; ".join(f"{u}: {why}" for u, why in waiting.items())
            raise ServiceError(f"not ready after {timeout_s} s: {reasons}")
        return answer


class AsyncRewardClient(_ClientBase):
    """Asynchronous client with the same arguments, methods and retry rules as `RewardClient`."""

    def __init__(
        self,
        base_url: str | Sequence[str] = DEFAULT_URL,
        *,
        token: str | None = None,
        timeout: float = 300.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        max_backoff_s: float = 10.0,
        deadline_s: float | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, token, retries, backoff_s, max_backoff_s, deadline_s)
        self._http = httpx.AsyncClient(timeout=timeout, headers=self._headers, transport=transport)

    async def __aenter__(self) -> AsyncRewardClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, body: Any = None) -> dict:
        call = self._call(path)
        while True:
            step = call.next()
            if isinstance(step, float):
                await asyncio.sleep(step)
                continue
            url, probe = step
            if probe and not await self._probe(call, url):
                continue
            self.replicas.begin(url)
            try:
                response, exc = await self._http.request(method, url + path, json=body), None
            except httpx.HTTPError as e:
                response, exc = None, e
            finally:
                self.replicas.end(url)
            if (answer := call.answered(url, response, exc)) is not None:
                return answer

    async def _probe(self, call: Call, url: str) -> bool:
        try:
            r = await self._http.get(url + "/readyz", timeout=5.0)
            call.probed(url, r.status_code == 200, f"HTTP {r.status_code}")
        except httpx.HTTPError as e:
            call.probed(url, False, f"{type(e).__name__}: {e}")
        return not self.replicas.is_out(url)

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
