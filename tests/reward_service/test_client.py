"""The client's retry rules, on a mock transport (unit) and against a port nobody listens on (real)."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from reward_service.client import AsyncRewardClient, RewardClient, build_items
from reward_service.errors import ServiceError
from tests._server import free_port

OK = {"rewards": [1.5], "policy_hash": "h", "weights_version": "v"}
ITEM = {"prompt": "p", "completion": "c", "response_type": "comply"}


def scripted(statuses: list[int], calls: list[httpx.Request]):
    """A transport answering the given statuses in turn (200 answers OK)."""

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        status = statuses[min(len(calls) - 1, len(statuses) - 1)]
        if status == 200:
            return httpx.Response(200, json=OK)
        body = {"error": {"type": "x", "message": f"status {status}", "field": "items[0]" if status == 422 else None}}
        return httpx.Response(status, json=body)

    return handler


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_retries_429_and_5xx_then_succeeds(status):
    calls: list[httpx.Request] = []
    t = httpx.MockTransport(scripted([status, status, 200], calls))
    with RewardClient("http://svc", transport=t, retries=3, backoff_s=0.001) as c:
        assert c.rewards([ITEM]).rewards == [1.5]
    assert len(calls) == 3


def test_gives_up_after_the_last_try_with_the_service_error():
    calls: list[httpx.Request] = []
    t = httpx.MockTransport(scripted([503], calls))
    with RewardClient("http://svc", transport=t, retries=2, backoff_s=0.001) as c:
        with pytest.raises(ServiceError, match=r"HTTP 503 x: status 503 \(after 3 attempt") as e:
            c.rewards([ITEM])
    assert len(calls) == 3 and e.value.status == 503 and e.value.body["error"]["message"] == "status 503"


def test_4xx_is_not_retried_and_names_the_field():
    calls: list[httpx.Request] = []
    t = httpx.MockTransport(scripted([422], calls))
    with RewardClient("http://svc", transport=t, retries=5, backoff_s=0.001) as c:
        with pytest.raises(ServiceError, match=r"\[items\[0\]\]") as e:
            c.rewards([ITEM])
    assert len(calls) == 1 and e.value.status == 422


def test_retry_after_header_sets_the_wait():
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            return httpx.Response(429, headers={"Retry-After": "0.3"}, json={})
        return httpx.Response(200, json=OK)

    t0 = time.monotonic()
    with RewardClient("http://svc", transport=httpx.MockTransport(handler), backoff_s=0.001) as c:
        c.rewards([ITEM])
    assert time.monotonic() - t0 >= 0.3


def test_async_client_retries_the_same_way():
    calls: list[httpx.Request] = []

    async def run() -> list[float]:
        t = httpx.MockTransport(scripted([500, 200], calls))
        async with AsyncRewardClient("http://svc", transport=t, backoff_s=0.001) as c:
            return (await c.rewards([ITEM])).rewards

    assert asyncio.run(run()) == [1.5] and len(calls) == 2


def test_connect_errors_are_retried_with_backoff_then_raised():
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    t0 = time.monotonic()
    with RewardClient(url, retries=2, backoff_s=0.1) as c:
        with pytest.raises(ServiceError, match=r"ConnectError.*after 3 attempt"):
            c.score(["p"], ["c"], ["comply"])
    assert time.monotonic() - t0 >= 0.3  # 0.1 + 0.2 of backoff


def test_build_items_takes_trl_conversational_columns():
    items = build_items(
        [[{"role": "user", "content": "q"}], "q2"],
        [[{"role": "assistant", "content": "a"}], "a2"],
        ["comply", None],
        [None, "C-R"],
    )
    assert items == [
        {"prompt": [{"role": "user", "content": "q"}], "completion": "a", "response_type": "comply"},
        {"prompt": "q2", "completion": "a2", "category": "C-R"},
    ]
    with pytest.raises(ValueError, match="completions: 1 entries for 2 prompts"):
        build_items(["a", "b"], ["x"])
