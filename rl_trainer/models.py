"""Policy files: a model folder or id, a run checkpoint, or a LoRA adapter over the embedded model.

A LoRA run saves the policy as a peft adapter (a few MB) whose `adapter_config.json` names its base as the
run's `model` setting (e.g. `embedded:smollm2-135m`), not a path on the training machine, so the adapter
loads anywhere the base resolves. `rbr eval-policy --model` accepts any of these.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from reward_service.machine import choose_dtype
from reward_service.paths import resolve_model_path

__all__ = ["adapter_base", "autocast_dtype", "load_policy", "load_tokenizer", "policy_dir", "save_policy"]

ADAPTER_CONFIG = "adapter_config.json"


def policy_dir(model: str) -> str:
    """A run checkpoint (…/step-000010) means its policy/ folder; a folder stays; anything else is resolved
    as a model id (the embedded model, a hub id)."""
    p = Path(model)
    if (p / "policy").is_dir() and any((p / "policy" / f).exists() for f in ("config.json", ADAPTER_CONFIG)):
        return str(p / "policy")
    if (p / ADAPTER_CONFIG).exists():
        return str(p)
    return resolve_model_path(model)


def adapter_base(adapter: Path) -> str:
    """The base an adapter folder names: a model id, or a folder, which may be relative to the adapter's own
    folder (a shipped adapter over a shipped adapter, e.g. "../../warm-start/policy") or to the working folder."""
    base = json.loads((adapter / ADAPTER_CONFIG).read_text())["base_model_name_or_path"]
    beside = adapter / base
    return str(beside.resolve()) if not Path(base).is_absolute() and beside.is_dir() else base


def load_tokenizer(model: str):
    """The tokenizer (a bare adapter's is its base's), left-padded, with a pad token distinct from EOS (PPO
    masks every pad id, so EOS must not be one): an existing unused special token (SmolLM2's `<|endoftext|>`)
    if there is one, which keeps the vocabulary (and a LoRA adapter) unchanged; else a new `<|pad|>`."""
    from transformers import AutoTokenizer

    path = Path(policy_dir(model))
    while (path / ADAPTER_CONFIG).exists() and not (path / "tokenizer_config.json").exists():  # a bare adapter
        path = Path(policy_dir(adapter_base(path)))
    tok = AutoTokenizer.from_pretrained(path, padding_side="left")
    if tok.pad_token_id is None or tok.pad_token_id == tok.eos_token_id:
        spare = tok.unk_token if tok.unk_token_id not in (None, tok.eos_token_id, tok.bos_token_id) else None
        if spare is not None:
            tok.pad_token = spare
        else:
            tok.add_special_tokens({"pad_token": "<|pad|>"})
    return tok


def load_policy(model: str, dtype: torch.dtype = torch.float32, trainable: bool = False, kind: str = "causal"):
    """The model in `model` (a folder, checkpoint, adapter or id). An adapter is loaded over its base (itself
    loaded, and merged, the same way when it is an adapter too, e.g. a PPO adapter over an SFT warm start); for
    inference (`trainable=False`) it is merged into the base, for training it stays a trainable PeftModel.
    `kind` "value" loads a one-output sequence classifier (PPO's value model); a policy's adapter says nothing
    about values, so a value model of a policy adapter starts from that adapter's base."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    path = Path(policy_dir(model))
    cls, extra = (
        (AutoModelForSequenceClassification, {"num_labels": 1}) if kind == "value" else (AutoModelForCausalLM, {})
    )
    if not (path / ADAPTER_CONFIG).exists():
        return cls.from_pretrained(path, dtype=dtype, **extra)
    from peft import PeftModel

    adapter = json.loads((path / ADAPTER_CONFIG).read_text())
    base_id = adapter_base(path)
    if kind == "value" and adapter.get("task_type") != "SEQ_CLS":
        return load_policy(base_id, dtype, kind=kind)
    base = load_policy(base_id, dtype, kind=kind)
    tok = load_tokenizer(str(path))
    if base.get_input_embeddings().weight.shape[0] < len(tok):
        base.resize_token_embeddings(len(tok))
    peft = PeftModel.from_pretrained(base, path, is_trainable=trainable)
    return peft if trainable else peft.merge_and_unload()


def save_policy(model, tok, out: Path, base: str) -> None:
    """The model (or only its adapter, for a PeftModel) and the tokenizer; an adapter names `base`."""
    model.save_pretrained(out)
    tok.save_pretrained(out)
    cfg = out / ADAPTER_CONFIG
    if cfg.exists():
        data = json.loads(cfg.read_text())
        data["base_model_name_or_path"] = base
        cfg.write_text(json.dumps(data, indent=2) + "\n")


def autocast_dtype(mixed_precision: str) -> torch.dtype | None:
    """bf16 for "bf16", or for "auto" where this machine computes bf16 faster than float32; else None."""
    if mixed_precision == "no":
        return None
    if mixed_precision == "bf16":
        return torch.bfloat16
    if torch.cuda.is_available():
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    return torch.bfloat16 if choose_dtype("auto") == "bfloat16" else None
