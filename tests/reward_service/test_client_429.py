"""The clients honour HTTP 429 + Retry-After from a real HTTP server (a tiny stdlib one, no grader)."""

from __future__ import annotations

import asyncio
import email.utils
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from reward_service import adapters, client
from reward_service.client import RewardClient, ServiceError

OK = {"rewards": [1.5], "policy_hash": "h", "weights_version": "w"}


@contextmanager
def overloaded_server(busy: int, retry_after: str = "0.2") -> Iterator[tuple[str, list[str]]]:
    """Answers 429 with Retry-After to the first `busy` requests, then 200; yields (URL, request paths)."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            length = int(self.headers.get("Content-Length", 0))
            json.loads(self.rfile.read(length) or b"{}")
            seen.append(self.path)
            if len(seen) <= busy:
                body, status = {"error": {"type": "overloaded", "message": "busy", "field": None}}, 429
            else:
                body, status = OK, 200
            data = json.dumps(body).encode()
            self.send_response(status)
            if status == 429:
                self.send_header("Retry-After", retry_after)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    finally:
        httpd.shutdown()
        httpd.server_close()


ITEM = {"prompt": "hi", "completion": "hello", "response_type": "comply"}


def test_sync_client_waits_retry_after_on_429_twice_then_gets_200(monkeypatch):
    waits: list[float] = []
    real_sleep = time.sleep
    monkeypatch.setattr(client.time, "sleep", lambda s: (waits.append(s), real_sleep(s)))
    with overloaded_server(busy=2, retry_after="0.2") as (url, seen):
        with RewardClient(url, retries=3, backoff_s=5.0) as c:
            out = c.rewards([ITEM])
    assert out.rewards == [1.5]
    assert seen == ["/v1/rewards"] * 3
    assert waits == [0.2, 0.2], "the waits must be the server's Retry-After, not the 5 s backoff"


def test_async_client_and_trl_adapter_honour_429(monkeypatch):
    waits: list[float] = []
    real_sleep = asyncio.sleep

    async def recording_sleep(s: float) -> None:
        waits.append(s)
        await real_sleep(s)

    monkeypatch.setattr(client.asyncio, "sleep", recording_sleep)
    with overloaded_server(busy=2, retry_after="0.1") as (url, seen):
        fn = adapters.trl_reward_function(url, retries=3)
        rewards = asyncio.run(fn(prompts=["hi"], completions=["hello"], response_type=["comply"]))
    assert rewards == [1.5] and len(seen) == 3 and waits == [0.1, 0.1]


def test_429_past_the_last_retry_raises_service_error_with_status():
    with overloaded_server(busy=5, retry_after="0") as (url, seen):
        with RewardClient(url, retries=1) as c, pytest.raises(ServiceError, match="HTTP 429") as e:
            c.rewards([ITEM])
    assert e.value.status == 429 and len(seen) == 2


def test_retry_after_as_an_http_date(monkeypatch):
    waits: list[float] = []
    monkeypatch.setattr(client.time, "sleep", waits.append)
    when = email.utils.formatdate(time.time() + 3, usegmt=True)
    with overloaded_server(busy=1, retry_after=when) as (url, seen):
        with RewardClient(url, retries=2, backoff_s=0.01, max_backoff_s=30) as c:
            assert c.rewards([ITEM]).rewards == [1.5]
    assert len(waits) == 1 and 1.0 < waits[0] <= 3.0, waits
