"""`rbr pairs` on the shipped comparison data feeds TRL's DPOTrainer (the Safer-Instruct route): 2 CPU steps."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from reward_service.paths import DATA_DIR

pytestmark = pytest.mark.model


def test_pairs_file_loads_with_datasets_and_dpo_trains_two_steps(tmp_path):
    from datasets import load_dataset

    pairs = tmp_path / "pairs.jsonl"
    data = str(DATA_DIR / "comparisons" / "synth.jsonl")
    r = subprocess.run(
        [sys.executable, "-m", "reward_service.cli", "pairs", "--data", data, "--out", str(pairs)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    ds = load_dataset("json", data_files=str(pairs), split="train")
    assert {"prompt", "chosen", "rejected"} <= set(ds.column_names) and len(ds) > 300

    out = tmp_path / "dpo"
    args = ["--pairs", str(pairs), "--steps", "2", "--batch-size", "2", "--max-length", "128", "--lora-r", "4"]
    r = subprocess.run(
        [sys.executable, "-m", "rl_trainer.dpo_example", *args, "--output-dir", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    history = json.loads((out / "log_history.json").read_text())
    assert [h["step"] for h in history] == [1, 2] and all("rewards/margins" in h for h in history)
    adapter = json.loads((out / "policy" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == "embedded:smollm2-135m"
    assert (out / "dpo_curve.png").stat().st_size > 10_000
