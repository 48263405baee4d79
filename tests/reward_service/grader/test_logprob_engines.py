"""The openai grader backend's request/response handling (mock transport) and the log-odds arithmetic."""

from __future__ import annotations

import json
import math
import time

import httpx
import pytest

from reward_service.errors import GraderError, GraderTimeout
from reward_service.grader._logprob_engines import OpenAIEngine, yes_logit_from_top
from reward_service.grader._prompt import EncodedItem

YES, NO = [10, 11], [20, 21]


class Tok:
    def decode(self, ids):
        return {10: "yes", 11: " Yes", 20: "no", 21: " No"}[ids[0]]


def test_yes_logit_sums_variants_and_bounds_a_missing_side():
    top = {10: math.log(0.3), 11: math.log(0.1), 20: math.log(0.2), 99: math.log(0.4)}
    assert yes_logit_from_top(top, YES, NO) == pytest.approx(math.log(0.4 / 0.2))
    only_yes = {10: math.log(0.6), 99: math.log(0.05)}
    assert yes_logit_from_top(only_yes, YES, NO) == pytest.approx(math.log(0.6 / 0.05))
    assert yes_logit_from_top({10: -1.0}, YES, NO, floor=-9.0) == pytest.approx(8.0)
    with pytest.raises(GraderError, match="neither yes nor no"):
        yes_logit_from_top({99: -0.1, 98: -3.0}, YES, NO)


def engine(handler, **kw) -> OpenAIEngine:
    return OpenAIEngine("http://grader", "g", Tok(), YES, NO, transport=httpx.MockTransport(handler), **kw)


ENC = EncodedItem(prefix_ids=[1, 2, 3], completion_span=(1, 3), suffix_ids=[[7], [8, 9]])


def test_request_carries_token_ids_and_answers_are_read_by_index():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append(body)
        choices = [  # out of order on purpose; keyed by token id as vLLM does with return_tokens_as_token_ids
            {"index": 1, "logprobs": {"top_logprobs": [{"token_id:20": math.log(0.5), "token_id:10": math.log(0.25)}]}},
            {"index": 0, "logprobs": {"top_logprobs": [{"token_id:10": math.log(0.5), "token_id:21": math.log(0.1)}]}},
        ]
        return httpx.Response(200, json={"choices": choices})

    ro = engine(handler, logprobs=5).readout_many([ENC])[0]
    body = seen[0]
    assert body["prompt"] == [[1, 2, 3, 7], [1, 2, 3, 8, 9]]
    assert (body["max_tokens"], body["temperature"], body["logprobs"], body["model"]) == (1, 0.0, 5, "g")
    assert ro.yes_logit.tolist() == pytest.approx([math.log(5.0), math.log(0.5)], abs=1e-6)


def test_string_keys_are_mapped_through_the_tokenizer():
    def handler(request: httpx.Request) -> httpx.Response:
        top = {" Yes": math.log(0.2), "no": math.log(0.4), "The": math.log(0.3)}
        return httpx.Response(
            200, json={"choices": [{"index": i, "logprobs": {"top_logprobs": [top]}} for i in range(2)]}
        )

    ro = engine(handler).readout(ENC)
    assert ro.yes_logit.tolist() == pytest.approx([math.log(0.5)] * 2, abs=1e-6)


@pytest.mark.parametrize(
    ("handler", "error", "match"),
    [
        (lambda r: httpx.Response(500, text="boom"), GraderError, "answered 500: boom"),
        (lambda r: httpx.Response(200, json={"oops": 1}), GraderError, "malformed"),
        (lambda r: httpx.Response(200, json={"choices": []}), GraderError, "0 choices for 2 prompts"),
    ],
)
def test_server_failures_are_grader_errors(handler, error, match):
    with pytest.raises(error, match=match):
        engine(handler).readout_many([ENC])


def test_timeouts_are_grader_timeouts():
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(GraderTimeout):
        engine(handler).readout_many([ENC, ENC])


def _answer(request: httpx.Request) -> httpx.Response:
    n = len(json.loads(request.content)["prompt"])
    top = {"token_id:10": math.log(0.5), "token_id:20": math.log(0.25)}
    return httpx.Response(200, json={"choices": [{"index": i, "logprobs": {"top_logprobs": [top]}} for i in range(n)]})


def test_several_grader_servers_share_the_requests_and_a_failed_one_is_skipped():
    hosts: list[str] = []
    down = {"b"}

    def handler(request: httpx.Request) -> httpx.Response:
        hosts.append(f"{request.url.host}{request.url.path}")
        if request.url.host in down:
            raise httpx.ConnectError("refused")
        return httpx.Response(200) if request.url.path == "/health" else _answer(request)

    e = OpenAIEngine("http://a,http://b", "g", Tok(), YES, NO, transport=httpx.MockTransport(handler), concurrency=1)
    assert e.base_url == "http://a,http://b"
    e.replicas.probe_after_s = 0.01
    first = e.readout_many([ENC] * 4)
    assert all(ro.yes_logit.tolist() == pytest.approx([math.log(2.0)] * 2) for ro in first)
    assert hosts.count("b/v1/completions") == 1, "b refused once and was taken out"
    assert [s["out"] for s in e.replicas.state()] == [False, True]
    down.clear()  # b is back: once its wait is over, the next request probes it and it rejoins
    time.sleep(0.02)
    e.readout_many([ENC] * 4)
    assert "b/health" in hosts and hosts.count("b/v1/completions") >= 2


def test_when_every_grader_server_fails_the_error_names_each():
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "a":
            return httpx.Response(503, text="overloaded")
        raise httpx.ConnectError("refused")

    e = OpenAIEngine("http://a,http://b", "g", Tok(), YES, NO, transport=httpx.MockTransport(handler))
    with pytest.raises(GraderError, match=r"no grader server answered \(2 of 2\)") as err:
        e.readout(ENC)
    assert "http://a/v1/completions answered 503" in str(err.value)
    assert "cannot reach http://b/v1/completions: ConnectError" in str(err.value)
    with pytest.raises(GraderError, match="http://b/health: ConnectError"):  # both out: each is probed again
        e.readout(ENC)
