"""Policy files: a LoRA adapter over another adapter (PPO over an SFT warm start) loads over its merged base."""

from __future__ import annotations

import json

import pytest
import torch


def _adapter(base: str, out, seed: int) -> None:
    from peft import LoraConfig, get_peft_model

    from rl_trainer.models import load_policy, load_tokenizer, save_policy

    torch.manual_seed(seed)
    model = get_peft_model(
        load_policy(base), LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM")
    )
    for name, p in model.named_parameters():
        if "lora_B" in name:  # B starts at zero: give the adapter an effect
            torch.nn.init.normal_(p, std=0.02)
    save_policy(model, load_tokenizer(base), out, base=base)


@pytest.mark.model
def test_an_adapter_over_an_adapter_loads_over_its_merged_base(tmp_path):
    from rl_trainer.models import load_policy, load_tokenizer

    first, second = tmp_path / "warm", tmp_path / "ppo"
    _adapter("embedded:smollm2-135m", first, seed=0)
    _adapter(str(first), second, seed=1)
    assert json.loads((second / "adapter_config.json").read_text())["base_model_name_or_path"] == str(first)
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    with torch.inference_mode():
        base, warm, ppo = (
            load_policy(m).eval()(ids).logits for m in ("embedded:smollm2-135m", str(first), str(second))
        )
    assert not torch.allclose(base, warm, atol=1e-4) and not torch.allclose(warm, ppo, atol=1e-4)
    trainable = load_policy(str(second), trainable=True)
    assert sum(p.requires_grad for p in trainable.parameters()) > 0
    value = load_policy(str(second), kind="value")  # a policy adapter: the value model starts from the root base
    assert value.config.num_labels == 1 and not hasattr(value, "peft_config")
    for adapter in (first, second):  # bare adapters (as shipped): the tokenizer is the root base's
        for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
            (adapter / name).unlink(missing_ok=True)
    assert load_tokenizer(str(second)).encode("hello") == load_tokenizer("embedded:smollm2-135m").encode("hello")
    cfg = second / "adapter_config.json"  # a shipped adapter names its base relative to itself
    cfg.write_text(json.dumps({**json.loads(cfg.read_text()), "base_model_name_or_path": "../warm"}))
    with torch.inference_mode():
        torch.testing.assert_close(load_policy(str(second)).eval()(ids).logits, ppo, atol=1e-4, rtol=1e-4)
    assert load_tokenizer(str(second)).encode("hello") == load_tokenizer("embedded:smollm2-135m").encode("hello")
