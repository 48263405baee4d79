"""GET /v1/policy (real server: what it serves), /healthz, /readyz, /metrics (in process)."""

from __future__ import annotations

import subprocess

import httpx
import pytest

from tests._server import rbr_exe
from tests.reward_service.server.stand_in import stand_in_server


@pytest.mark.model
@pytest.mark.e2e
def test_policy_describes_what_is_served(server):
    body = httpx.get(server + "/v1/policy").json()
    out = subprocess.run([rbr_exe(), "policy"], capture_output=True, text=True, check=True).stdout
    assert body["policy_hash"] in out
    rt = body["response_types"]["hard_refuse"]
    assert "apology" in rt["propositions"] and "ideal" in rt["classes"]
    assert list(rt["weights"]) == rt["features"]
    assert body["backends"]["reward_model"].startswith("judge:")
    assert "categories" in body["backends"]["prompt_classifier"]  # the shipped classifier: category 'auto' works
    assert set(body["policy"]["response_types"]) == set(body["response_types"])


@pytest.mark.in_process
def test_readiness_waits_for_the_models():
    with stand_in_server(load=False) as s:
        assert httpx.get(s.url + "/healthz").json() == {"status": "ok"}
        r = httpx.get(s.url + "/readyz")
        assert r.status_code == 503 and r.json() == {"status": "not_ready", "reason": "loading models"}
        item = {"prompt": "hi", "completion": "Hello!", "category": "None"}
        r = httpx.post(s.url + "/v1/rewards", json={"items": [item]})
        assert r.status_code == 503 and r.json()["error"]["type"] == "not_ready"
        s.service.load(s.grader)
        assert httpx.get(s.url + "/readyz").status_code == 200
        assert httpx.post(s.url + "/v1/rewards", json={"items": [item]}).status_code == 200


@pytest.mark.in_process
def test_health_readiness_and_metrics(stand_in):
    server = stand_in.url
    assert httpx.get(server + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(server + "/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    httpx.post(
        server + "/v1/rewards",
        json={"items": [{"prompt": "hi", "completion": "Hello!", "category": "None"}]},
        timeout=120,
    )
    assert httpx.post(server + "/v1/rewards", json={"items": [{"prompt": "hi"}]}).status_code == 422
    text = httpx.get(server + "/metrics").text
    for family in (
        "rbr_requests_total",
        "rbr_request_seconds_bucket",
        "rbr_batch_items_bucket",
        "rbr_grader_seconds_count",
        "rbr_rm_seconds_count",
        "rbr_queue_depth",
        "rbr_errors_total",
    ):
        assert family in text, family
    assert 'rbr_requests_total{route="/v1/rewards",status="200"}' in text
    assert 'rbr_errors_total{kind="invalid_request"}' in text
