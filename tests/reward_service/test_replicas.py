"""Several service replicas behind one client: the choice of replica (unit, fake clock) and the clients' failover
on mock transports (one handler per replica host). Real replicas killed and restarted: test_replicas_e2e.py."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from reward_service._replicas import Replicas, parse_urls
from reward_service.client import AsyncRewardClient, RewardClient
from reward_service.errors import ServiceError

OK = {"rewards": [1.5], "policy_hash": "h", "weights_version": "v"}
ITEM = {"prompt": "p", "completion": "c", "response_type": "comply"}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_urls_from_a_comma_list_or_a_sequence():
    assert parse_urls(" http://a:1/, http://b:2,http://a:1 ") == ("http://a:1", "http://b:2")
    assert parse_urls(["http://a:1", "http://b:2,http://c:3"]) == ("http://a:1", "http://b:2", "http://c:3")
    with pytest.raises(ValueError, match=r"service_url: 'a:1' is not an http\(s\) URL"):
        parse_urls("http://b:2,a:1", "service_url")
    with pytest.raises(ValueError, match="service_url: no URL given"):
        parse_urls(" , ", "service_url")


def test_the_least_busy_replica_that_is_up_gets_the_request():
    r = Replicas("http://a,http://b,http://c", clock=Clock())
    r.begin("http://a")
    r.begin("http://b")
    assert r.choose() == ("http://c", False)
    r.begin("http://c")
    r.end("http://b")
    assert r.choose() == ("http://b", False)
    assert r.choose({"http://b"}) == ("http://a", False), "ties go to the replica sent fewest"
    assert r.choose({"http://a", "http://b", "http://c"}) is None


def test_a_replica_taken_out_is_skipped_then_probed_with_a_doubling_wait():
    clock = Clock()
    r = Replicas("http://a,http://b", probe_after_s=1.0, max_wait_s=3.0, clock=clock)
    r.down("http://a", "ConnectError")
    assert r.choose() == ("http://b", False)
    assert r.choose({"http://b"}) == ("http://a", True), "the only one left is probed even before it is due"
    clock.now += 1.0
    assert r.choose() == ("http://a", True), "due: the next request probes it first"
    for wait in (2.0, 3.0, 3.0):  # the probe failed again: the wait doubles, up to max_wait_s
        r.down("http://a", "ConnectError")
        clock.now += wait - 0.01
        assert r.choose() == ("http://b", False)
        clock.now += 0.01
        assert r.choose() == ("http://a", True)
    r.up("http://a")
    assert [s["out"] for s in r.state()] == [False, False]


def replicas_transport(handlers: dict[str, object], calls: list[str]) -> httpx.MockTransport:
    """Routes each request to the handler of its host: a status code, an exception to raise, or a callable."""

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(f"{request.url.host} {request.url.path}")
        h = handlers[request.url.host]
        if isinstance(h, Exception):
            raise h
        if callable(h):
            return h(request)
        if h == 200:
            return httpx.Response(200, json=OK if request.url.path != "/readyz" else {"status": "ready"})
        return httpx.Response(h, json={"error": {"type": "overloaded" if h == 429 else "x", "message": f"{h}"}})

    return httpx.MockTransport(handle)


def test_a_refused_connection_goes_to_the_next_replica_at_once_and_the_replica_is_taken_out():
    calls: list[str] = []
    t = replicas_transport({"a": httpx.ConnectError("refused"), "b": 200}, calls)
    with RewardClient("http://a,http://b", transport=t, backoff_s=5.0) as c:
        t0 = time.monotonic()
        assert c.rewards([ITEM]).rewards == [1.5]
        assert time.monotonic() - t0 < 1.0, "another replica is tried without a backoff"
        assert c.rewards([ITEM]).rewards == [1.5]
        assert calls == ["a /v1/rewards", "b /v1/rewards", "b /v1/rewards"], "the out replica got no more traffic"
        assert [s["out"] for s in c.replicas.state()] == [True, False]


@pytest.mark.parametrize("failure", [429, 503, httpx.RemoteProtocolError("server disconnected mid-answer")])
def test_overloaded_failing_or_dying_replicas_are_retried_on_another(failure):
    calls: list[str] = []
    t = replicas_transport({"a": failure, "b": 200}, calls)
    with RewardClient("http://a,http://b", transport=t, backoff_s=5.0) as c:
        assert c.rewards([ITEM]).rewards == [1.5]
    assert calls == ["a /v1/rewards", "b /v1/rewards"]


def test_the_final_error_names_every_replica_and_what_it_answered():
    calls: list[str] = []
    t = replicas_transport({"a": 503, "b": httpx.ConnectError("refused"), "c": 429}, calls)
    with RewardClient("http://a,http://b,http://c", transport=t, retries=1, backoff_s=0.01) as c:
        with pytest.raises(ServiceError) as e:
            c.rewards([ITEM])
    msg = str(e.value)
    assert "no answer from any of 3 replicas" in msg
    for part in ("http://a/v1/rewards: HTTP 503", "ConnectError: refused", "http://c/v1/rewards: HTTP 429"):
        assert part in msg, msg
    assert len([x for x in calls if x.endswith("/v1/rewards")]) >= 4, "two rounds over the replicas"


def test_a_4xx_is_final_on_the_first_replica():
    calls: list[str] = []
    t = replicas_transport({"a": 422, "b": 200}, calls)
    with RewardClient("http://a,http://b", transport=t) as c, pytest.raises(ServiceError, match="HTTP 422"):
        c.rewards([ITEM])
    assert calls == ["a /v1/rewards"]


def test_the_deadline_stops_the_retries():
    t = replicas_transport({"a": 503}, [])
    t0 = time.monotonic()
    with RewardClient("http://a", transport=t, retries=50, backoff_s=0.1, deadline_s=0.5) as c:
        with pytest.raises(ServiceError, match="HTTP 503"):
            c.rewards([ITEM])
    assert time.monotonic() - t0 < 1.0


def test_a_replica_back_up_is_probed_and_rejoins():
    calls: list[str] = []
    handlers: dict[str, object] = {"a": httpx.ConnectError("refused"), "b": 200}
    with RewardClient("http://a,http://b", transport=replicas_transport(handlers, calls)) as c:
        c.replicas.probe_after_s = 0.05
        c.rewards([ITEM])
        handlers["a"] = 200  # restarted
        time.sleep(0.06)
        c.rewards([ITEM])
        c.rewards([ITEM])
    assert calls[2:] == ["a /readyz", "a /v1/rewards", "b /v1/rewards"], calls


def test_async_requests_spread_over_the_replicas_by_requests_in_flight():
    per_host: dict[str, int] = {}

    async def slow(request: httpx.Request) -> httpx.Response:
        per_host[request.url.host] = per_host.get(request.url.host, 0) + 1
        await asyncio.sleep(0.02)
        return httpx.Response(200, json=OK)

    async def run() -> None:
        t = httpx.MockTransport(slow)
        async with AsyncRewardClient(["http://a", "http://b", "http://c"], transport=t) as c:
            await asyncio.gather(*(c.rewards([ITEM]) for _ in range(30)))
            assert [s["in_flight"] for s in c.replicas.state()] == [0, 0, 0]

    asyncio.run(run())
    assert per_host == {"a": 10, "b": 10, "c": 10}


def test_a_replica_still_loading_is_taken_out_and_one_merely_busy_is_not():
    def loading(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, json={"error": {"type": "not_ready", "message": "models are still loading"}})

    calls: list[str] = []
    t = replicas_transport({"a": loading, "b": 200, "c": 429}, calls)
    with RewardClient("http://a,http://b,http://c", transport=t) as c:
        c.rewards([ITEM])
        c.replicas.begin("http://b")  # b busy: the next call goes to c, which answers 429, then back to b
        c.rewards([ITEM])
        assert [s["out"] for s in c.replicas.state()] == [True, False, False]
    assert calls == ["a /v1/rewards", "b /v1/rewards", "c /v1/rewards", "b /v1/rewards"]
