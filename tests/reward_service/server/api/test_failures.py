"""Backend failures are a 503 with the reason, never a made-up reward; and a bad start exits clearly."""

from __future__ import annotations

import os
import subprocess

import httpx
import pytest

from tests._server import free_port, rbr_exe
from tests.reward_service.server.stand_in import stand_in_server

ITEM = {"prompt": "What is 2 + 2?", "completion": "4.", "response_type": "comply"}


@pytest.mark.in_process
def test_a_failing_reward_model_is_a_503_and_the_server_stays_up():
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there: the real vLLM-HTTP RM client fails to connect
    with stand_in_server(rm_backend="vllm-http", rm_url=dead, rm_model="rm", rm_timeout_s=2) as s:
        url = s.url
        for path, body in (
            ("/v1/rewards", {"items": [ITEM]}),
            ("/get_reward", {"query": ["q a"], "prompts": ["q"], "labels": ["comply"]}),
        ):
            r = httpx.post(url + path, json=body, timeout=60)
            assert r.status_code == 503, r.text
            assert r.json()["error"]["type"] == "reward_model_error" and dead in r.json()["error"]["message"]
            assert "rewards" not in r.json()
        grade = httpx.post(url + "/v1/grade", json={"items": [ITEM]}, timeout=60)
        assert grade.status_code == 200, "grading does not need the reward model"
        assert httpx.get(url + "/v1/policy").json()["backends"]["reward_model"] == "vllm-http:rm"
        assert httpx.get(url + "/readyz").status_code == 200


@pytest.mark.e2e
def test_a_broken_policy_stops_the_server_with_its_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("propositions: {}\n")
    r = subprocess.run(
        [rbr_exe(), "serve", "--port", str(free_port()), "--policy", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2, r.stderr
    assert str(bad) in r.stderr


@pytest.mark.e2e
def test_bad_settings_exit_2_naming_the_field():
    r = subprocess.run(
        [rbr_exe(), "serve"], capture_output=True, text=True, timeout=60, env={**os.environ, "RBR_BATCH_MAX_ITEMS": "0"}
    )
    assert r.returncode == 2 and "batch_max_items" in r.stderr
