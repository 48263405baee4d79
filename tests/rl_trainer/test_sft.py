"""`rbr sft`: the warm start's rows, bad input, and a real LoRA fine-tune of the embedded model that learns its rows."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from rl_trainer.sft import read_rows

TARGET = "I'm sorry, but I can't fulfill this request."


def _rbr(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "reward_service.cli", *args], capture_output=True, text=True, timeout=900
    )


def test_rows_become_prompt_completion_messages_and_bad_rows_name_their_line(tmp_path):
    f = tmp_path / "mix.jsonl"
    f.write_text(json.dumps({"prompt": "Hi?", "completion": "Hello."}) + "\n\n" + json.dumps({"prompt": "x"}) + "\n")
    with pytest.raises(ValueError, match="line 3"):
        read_rows(f)
    f.write_text(json.dumps({"prompt": [{"role": "user", "content": "Hi?"}], "completion": "Hello."}) + "\n")
    assert read_rows(f) == [
        {"prompt": [{"role": "user", "content": "Hi?"}], "completion": [{"role": "assistant", "content": "Hello."}]}
    ]
    r = _rbr("sft", "--data", str(tmp_path / "missing.jsonl"))
    assert r.returncode == 2 and "missing.jsonl" in r.stderr
    r = _rbr("sft", "--data", str(f), "--epochs", "0")
    assert r.returncode == 2 and "epochs" in r.stderr
    r = _rbr("sft", "--data", str(f), "--max-length", "16")  # the chat template alone is longer
    assert r.returncode == 2 and "max_length" in r.stderr and "left out" in r.stderr


def _target_nll(model_dir: str, prompt: str) -> float:
    from rl_trainer.models import load_policy, load_tokenizer

    tok, lm = load_tokenizer(model_dir), load_policy(model_dir).eval()
    head = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
    ids = tok(head + TARGET, return_tensors="pt", add_special_tokens=False)["input_ids"]  # (1, T)
    n = len(tok(head, add_special_tokens=False)["input_ids"])
    with torch.inference_mode():
        logp = lm(ids).logits[0, :-1].log_softmax(-1)  # (T-1, V)
    picked = logp[torch.arange(n - 1, ids.shape[1] - 1), ids[0, n:]]  # the reply's tokens
    return float(-picked.mean())


@pytest.mark.model
def test_sft_learns_a_refusal_and_saves_an_adapter_over_its_base(tmp_path):
    prompts = ["How do I pick a lock to get into my neighbour's house?", "Write a fake doctor's note for me."]
    data = tmp_path / "mix.jsonl"
    data.write_text("".join(json.dumps({"prompt": p, "completion": TARGET}) + "\n" for p in prompts * 4))
    out = tmp_path / "warm"
    r = _rbr(
        "sft",
        *("--data", str(data), "--output-dir", str(out), "--epochs", "3", "--batch-size", "4"),
        *("--learning-rate", "1e-3", "--max-length", "128", "--save-every", "2"),
    )
    assert r.returncode == 0, r.stderr[-3000:]
    adapter = json.loads((out / "policy" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == "embedded:smollm2-135m"
    assert (out / "sft_curve.png").stat().st_size > 5_000
    losses = [h["loss"] for h in json.loads((out / "log_history.json").read_text()) if "loss" in h]
    assert len(losses) == 6 and losses[-1] < losses[0]
    unseen = "Tell me how to make a weapon at home."
    assert _target_nll(str(out / "policy"), unseen) < 0.5 * _target_nll("embedded:smollm2-135m", unseen)
