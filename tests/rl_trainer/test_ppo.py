"""`rbr train` end to end on the CPU: a real `rbr serve` process, a real trainer process, TRL's PPO."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests._server import rbr_server

pytestmark = [pytest.mark.model, pytest.mark.e2e]

# Runs the real CLI in a fresh interpreter and reports which of the service's model layers the trainer imported
# (`propositions`, the ground layer that holds the exception tree's root, has no model code and may be loaded).
WRAPPER = """
import json, sys
from reward_service.cli import main
rc = main(sys.argv[1:])
layers = [m for m in ("reward_service.grader", "reward_service.reward", "reward_service.server") if m in sys.modules]
print("IMPORTED " + json.dumps(layers), flush=True)
sys.exit(rc)
"""


def write_config(tmp: Path, **over) -> Path:
    cfg = {
        "total_steps": 2,
        "batch_size": 2,
        "num_ppo_epochs": 1,
        "response_length": 8,
        "save_every": 2,
        "learning_rate": 1e-4,
        "output_dir": str(tmp / "run"),
        "reward_backoff_s": 0.2,
        **over,
    }
    path = tmp / "train.yaml"
    path.write_text(yaml.safe_dump({"train": cfg}))
    return path


def counter(metrics: str, name: str, labels: str) -> float:
    m = re.search(rf"^{name}\{{{re.escape(labels)}\}} (\S+)$", metrics, re.M)
    return float(m.group(1)) if m else 0.0


def rows(run: Path) -> list[dict]:
    with (run / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def test_two_ppo_steps_one_reward_call_per_rollout_batch(tmp_path, default_server):
    config = write_config(tmp_path, lora_r=4)  # full fine-tuning runs in test_compose.py's cpu-profile trainer
    url = default_server
    before = httpx.get(url + "/metrics").text
    r = subprocess.run(
        [sys.executable, "-c", WRAPPER, "train", "--config", str(config), "--service-url", url],
        capture_output=True,
        text=True,
        timeout=900,
    )
    after = httpx.get(url + "/metrics").text
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    calls = counter(after, "rbr_requests_total", 'route="/v1/rewards",status="200"') - counter(
        before, "rbr_requests_total", 'route="/v1/rewards",status="200"'
    )
    items = counter(after, "rbr_items_total", 'route="rewards"') - counter(before, "rbr_items_total", 'route="rewards"')
    assert (calls, items) == (2, 4), "one /v1/rewards call per rollout batch, with the batch's 2 completions"

    log = rows(tmp_path / "run")
    assert [int(x["step"]) for x in log] == [1, 2]
    for x in log:  # the service's rewards are what PPO optimised (TRL's objective/scores)
        assert float(x["objective/scores"]) == pytest.approx(float(x["reward/mean"]), abs=1e-4)
        assert float(x["reward/mean"]) == pytest.approx(float(x["reward/rm"]) + float(x["reward/rbr"]), abs=1e-4)
        assert 0 < float(x["time/reward_share"]) < 1
    assert list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
    assert (tmp_path / "run" / "reward_curve.png").stat().st_size > 10_000

    imported = json.loads(next(x for x in r.stdout.splitlines() if x.startswith("IMPORTED "))[9:])
    assert imported == [], f"the trainer process imported {imported}: it must know the service only by its client"

    final = tmp_path / "run" / "checkpoints" / "step-000002"
    assert (tmp_path / "run" / "checkpoints" / "latest").read_text() == final.name
    assert (final / "policy" / "adapter_config.json").exists()


def test_service_dies_trainer_stops_with_its_checkpoint_then_resumes(tmp_path):
    # LoRA: a checkpoint per step stays small (a full one writes ~1.5 GB: policy, value and optimizer state)
    config = write_config(tmp_path, total_steps=4, save_every=1, keep_checkpoints=1, reward_retries=1, lora_r=4)
    run = tmp_path / "run"
    with rbr_server() as (url, server, _):
        trainer = subprocess.Popen(
            [sys.executable, "-m", "reward_service.cli", "train", "--config", str(config), "--service-url", url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 600
        while not (run / "checkpoints" / "latest").exists():
            assert trainer.poll() is None, trainer.stderr.read()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint after 600 s"
            time.sleep(0.5)
        os.killpg(server.pid, signal.SIGKILL)  # the service goes away mid-run
        _, err = trainer.communicate(timeout=600)
    assert trainer.returncode == 1, err[-3000:]
    latest = (run / "checkpoints" / "latest").read_text()
    assert "reward service failed at step" in err and f"last checkpoint: {run / 'checkpoints' / latest}" in err
    done = json.loads((run / "checkpoints" / latest / "state.json").read_text())["step"]
    assert [int(x["step"]) for x in rows(run)] == list(range(1, done + 1)), "a step was logged without a reward"
    assert not list((run / "checkpoints").glob(".*.tmp")), "a half-written checkpoint was left behind"
    assert [p.name for p in (run / "checkpoints").glob("step-*")] == [latest], "keep_checkpoints: 1 kept more"

    with rbr_server() as (url, _, _):  # a new service; --resume picks up from the checkpoint
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "reward_service.cli",
                "train",
                "--config",
                str(config),
                "--service-url",
                url,
                "--resume",
            ],
            capture_output=True,
            text=True,
            timeout=900,
        )
    assert r.returncode == 0, r.stderr[-3000:]
    assert [int(x["step"]) for x in rows(run)] == [1, 2, 3, 4]
    assert (run / "checkpoints" / "latest").read_text() == "step-000004"
    assert [p.name for p in (run / "checkpoints").glob("step-*")] == ["step-000004"]


def test_lora_run_saves_a_small_adapter_over_the_named_base_and_resumes(tmp_path, default_server):
    from rl_trainer.models import load_policy, load_tokenizer

    config = write_config(
        tmp_path, lora_r=4, lora_alpha=8, save_every=1, keep_checkpoints=1, reward_normalization="response_type"
    )
    run = tmp_path / "run"
    train = [sys.executable, "-m", "reward_service.cli", "train", "--config", str(config)]
    url = default_server
    first = subprocess.run([*train, "--service-url", url], capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    more = [*train, "--service-url", url, "--resume", "--total-steps", "3"]
    again = subprocess.run(more, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    log = rows(run)
    assert [int(x["step"]) for x in log] == [1, 2, 3]
    final = run / "checkpoints" / "step-000003"
    # PPO optimised the rewards read against their response type's running stats, kept in the checkpoint
    stats = json.loads((final / "state.json").read_text())["reward_normalizer"]
    assert stats and set(stats) <= {"comply", "hard_refuse", "safe_refuse_1", "safe_refuse_2"}
    assert any(abs(float(x["objective/scores"]) - float(x["reward/mean"])) > 1e-3 for x in log)
    adapter = json.loads((final / "policy" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == "embedded:smollm2-135m", "the base is named, not a local path"
    assert adapter["r"] == 4 and (final / "value" / "adapter_config.json").exists()
    size = sum(f.stat().st_size for f in (final / "policy").iterdir())
    assert size < 20_000_000, f"the saved policy is {size} bytes: not an adapter (a full model is ~540 MB)"

    tok = load_tokenizer(str(final))
    assert tok.pad_token_id != tok.eos_token_id and len(tok) == len(load_tokenizer("embedded:smollm2-135m"))
    start, trained = load_policy("embedded:smollm2-135m").state_dict(), load_policy(str(final)).state_dict()
    changed = [k for k, v in start.items() if not (v == trained[k]).all()]
    assert len(changed) > 10, "the adapter did not change the policy"


def test_bad_config_exits_2_naming_the_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  batch_size: 3\n  num_mini_batches: 2\n")
    r = subprocess.run(
        [sys.executable, "-m", "reward_service.cli", "train", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and "num_mini_batches" in r.stderr


def test_unreachable_service_stops_before_loading_models(tmp_path):
    from tests._server import free_port

    config = write_config(tmp_path, reward_retries=1)
    t0 = time.monotonic()
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "reward_service.cli",
            "train",
            "--config",
            str(config),
            "--service-url",
            f"http://127.0.0.1:{free_port()}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 1 and "is not answering" in r.stderr and "ConnectError" in r.stderr
    assert time.monotonic() - t0 < 60
