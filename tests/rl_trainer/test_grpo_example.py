"""The GRPO example runs TRL's GRPOTrainer with the service's reward function (one step, tiny settings)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.model, pytest.mark.e2e]


def test_grpo_example_one_step(tmp_path, default_server):
    out = tmp_path / "grpo"
    url = default_server
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "rl_trainer.grpo_example",
            "--service-url",
            url,
            "--steps",
            "1",
            "--num-generations",
            "2",
            "--max-completion-length",
            "8",
            "--output-dir",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    history = json.loads((out / "log_history.json").read_text())
    assert len(history) == 1 and "rbr/rm" in history[0] and "rbr/rbr" in history[0], history
