"""Backend failures are a 503 with the reason, never a made-up reward; and a bad start exits clearly."""

from __future__ import annotations

import os
import subprocess

import httpx
import pytest

from tests._server import free_port, rbr_exe, rbr_server

pytestmark = pytest.mark.model

ITEM = {"prompt": "What is 2 + 2?", "completion": "4.", "response_type": "comply"}


def test_a_failing_reward_model_is_a_503_and_the_server_stays_up(tmp_path):
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    config = tmp_path / "rbr.toml"  # settings from a file this time
    config.write_text(f'[rbr]\nrm_backend = "vllm-http"\nrm_url = "{dead}"\nrm_model = "rm"\nrm_timeout_s = 2\n')
    with rbr_server(args=["--config", str(config)]) as (url, proc, _):
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
        assert proc.poll() is None


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


def test_bad_settings_exit_2_naming_the_field():
    r = subprocess.run(
        [rbr_exe(), "serve"], capture_output=True, text=True, timeout=60, env={**os.environ, "RBR_BATCH_MAX_ITEMS": "0"}
    )
    assert r.returncode == 2 and "batch_max_items" in r.stderr
