"""GET /v1/policy, /healthz, /readyz, /metrics against a real server process."""

from __future__ import annotations

import subprocess

import httpx
import pytest

from tests._server import rbr_exe

pytestmark = pytest.mark.model


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


def test_health_readiness_and_metrics(server):
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
