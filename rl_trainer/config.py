"""The trainer's one config: every field defaulted and documented (CleanRL style), validated by pydantic.

`rbr train --config FILE` reads a YAML/TOML/JSON file (optionally under a `train` key); unknown keys are an
error naming them. Every field is also a flag (`--batch-size 8`), generated from the field with its doc as
help, as TRL's HfArgumentParser does: the config is the single source of the flags. Sizes default to a run
that fits a 2-core CPU with the embedded 135M model.
"""

from __future__ import annotations

import argparse
import json
import tomllib
import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from reward_service.client import parse_urls
from reward_service.paths import DATA_DIR

__all__ = ["ConfigError", "SFTConfig", "TrainConfig", "add_config_flags", "config_overrides", "load_config"]


class ConfigError(ValueError):
    """A config file or field is invalid; the message names the field."""


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, validate_default=True)

    # -- the reward service --
    service_url: str = Field(
        "http://127.0.0.1:8000",
        description="Base URL of `rbr serve`, or several replicas' (comma-separated: each call goes to the least "
        "busy one that is up, a failed call to another); one POST /v1/rewards per rollout batch.",
    )
    service_token: str | None = Field(None, description="Bearer token if the service sets RBR_API_TOKEN.")
    reward_timeout_s: float = Field(600.0, gt=0, description="Timeout of one reward call.")
    reward_retries: int = Field(
        3, ge=0, description="Retries of a failed reward call (connect errors, 429, 5xx) before the trainer stops."
    )
    reward_backoff_s: float = Field(1.0, ge=0, description="First retry wait; doubles each retry.")
    # -- data and models --
    prompts: str = Field(
        str(DATA_DIR / "seed_prompts.jsonl"), description="JSON lines with `prompt` and `response_type` or `category`."
    )
    split: str | None = Field("train", description="Only prompts whose `split` is this (None: all).")
    model: str = Field(
        "embedded:smollm2-135m",
        description="Policy, reference and value models: the embedded model, a local folder or a hub id.",
    )
    max_prompt_tokens: int = Field(
        256, ge=1, description="Prompts longer than this (after the chat template) keep their last tokens."
    )
    output_dir: str = Field("runs/ppo", description="Where metrics.csv, TensorBoard events and checkpoints go.")
    # -- PPO (TRL's PPOTrainer) --
    total_steps: int = Field(20, ge=1, description="PPO updates; each is one rollout batch and one reward call.")
    batch_size: int = Field(4, ge=1, description="Prompts per rollout batch.")
    num_mini_batches: int = Field(1, ge=1, description="Mini-batches per PPO epoch (must divide batch_size).")
    num_ppo_epochs: int = Field(2, ge=1, description="Optimisation epochs over each rollout batch.")
    learning_rate: float = Field(
        1e-5, gt=0, description="AdamW learning rate (constant schedule, so a resumed run continues it)."
    )
    response_length: int = Field(48, ge=1, description="Maximum new tokens per completion.")
    temperature: float = Field(0.7, gt=0, description="Sampling temperature of rollouts.")
    kl_coef: float = Field(0.05, ge=0, description="Weight of the per-token KL penalty to the reference model.")
    missing_eos_penalty: float | None = Field(
        None, description="Subtracted from the reward of completions cut off before their end token (None: off)."
    )
    reward_normalization: Literal["none", "response_type"] = Field(
        "none",
        description="response_type: centre and scale each reward by a running mean/std of its response type's "
        "rewards before PPO sees it (response types earn on different scales; see rl_trainer/normalize.py).",
    )
    seed: int = Field(0, description="Random seed.")
    save_every: int = Field(10, ge=1, description="Checkpoint every N steps (and at the end).")
    keep_checkpoints: int = Field(
        2, ge=0, description="Most recent checkpoints kept (0: all). Each is ~3 GB for 135M fp32."
    )
    dtype: Literal["float32", "bfloat16", "float16"] = Field(
        "float32", description="Weights dtype of the models (float32 on CPU; see mixed_precision)."
    )
    mixed_precision: Literal["auto", "bf16", "no"] = Field(
        "auto",
        description="bf16 autocast for generation, forward and backward (weights and AdamW stay float32). "
        "auto: where this machine computes bf16 faster than float32 (measured once, cached), else no.",
    )
    # -- LoRA (peft) --
    lora_r: int = Field(
        0,
        ge=0,
        description="LoRA rank on every linear layer of the policy and the value model; 0: full fine-tuning. "
        "With LoRA the reference is the policy with its adapter off, and the saved policy is a small adapter.",
    )
    lora_alpha: int = Field(32, ge=1, description="LoRA scaling numerator (the update is scaled by alpha / r).")

    @field_validator("service_url")
    @classmethod
    def _urls(cls, value: str) -> str:
        return ",".join(parse_urls(value, ""))

    @model_validator(mode="after")
    def _mini_batches_divide_the_batch(self) -> TrainConfig:
        if self.batch_size % self.num_mini_batches:
            raise ValueError(f"num_mini_batches: {self.num_mini_batches} does not divide batch_size {self.batch_size}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()


class SFTConfig(BaseModel):
    """`rbr sft`: LoRA supervised fine-tuning of the policy on a warm-start mixture (`rbr sft-data`)."""

    model_config = ConfigDict(extra="forbid", strict=True, validate_default=True)

    data: str = Field(
        "runs/sft/mix.jsonl", description="SFT rows (JSON lines: prompt, completion) from `rbr sft-data`."
    )
    model: str = Field("embedded:smollm2-135m", description="The policy to start from: embedded model, folder or id.")
    output_dir: str = Field("runs/warm-start", description="Where checkpoints, the loss curve and policy/ go.")
    epochs: float = Field(2.0, gt=0, description="Passes over the data.")
    batch_size: int = Field(8, ge=1, description="Rows per optimiser step.")
    learning_rate: float = Field(2.0e-4, gt=0, description="AdamW learning rate (cosine decay, 5% warm-up).")
    max_length: int = Field(
        512,
        ge=16,
        description="Tokens per row (conversation + reply); longer rows are cut, rows with no room left out.",
    )
    lora_r: int = Field(8, ge=1, description="LoRA rank on every linear layer (the adapter is the shipped policy).")
    lora_alpha: int = Field(16, ge=1, description="LoRA scaling numerator (the update is scaled by alpha / r).")
    save_every: int = Field(20, ge=1, description="Checkpoint every N optimiser steps (`--resume` continues from it).")
    mixed_precision: Literal["auto", "bf16", "no"] = Field(
        "auto", description="bf16 autocast: auto where this machine computes bf16 faster than float32."
    )
    seed: int = Field(0, description="Random seed (data order, LoRA init).")


def load_config(
    path: str | Path | None = None, config_cls: type[BaseModel] = TrainConfig, section: str = "train", **overrides: Any
) -> Any:
    """A config (TrainConfig by default) from a file (YAML/TOML/JSON; an optional `section:`) and overrides (None:
    unset)."""
    data = _read_file(Path(path), section) if path is not None else {}
    data |= {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(data) - set(config_cls.model_fields))
    if unknown:
        known = ", ".join(config_cls.model_fields)
        raise ConfigError(f"unknown setting(s): {', '.join(unknown)}; known: {known}")
    try:
        return config_cls(**data)
    except ValidationError as e:
        err = e.errors()[0]
        msg = err["msg"].removeprefix("Value error, ")
        if not err["loc"]:  # a check across fields: the message names them
            raise ConfigError(msg) from None
        raise ConfigError(f"{'.'.join(map(str, err['loc']))}: {msg}, got {err.get('input')!r}") from None


def _read_file(p: Path, section: str) -> dict[str, Any]:
    try:
        text = p.read_text()
    except OSError as e:
        raise ConfigError(f"{p}: cannot read: {e.strerror or e}") from None
    try:
        if p.suffix == ".toml":
            raw = tomllib.loads(text)
        elif p.suffix == ".json":
            raw = json.loads(text)
        else:
            raw = yaml.safe_load(text) or {}
    except (ValueError, yaml.YAMLError) as e:
        raise ConfigError(f"{p}: not valid {p.suffix.lstrip('.') or 'YAML'}: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: must be a mapping of settings")
    return raw.get(section, raw)


def add_config_flags(
    parser: argparse.ArgumentParser, names: list[str] | None = None, config_cls: type[BaseModel] = TrainConfig
) -> None:
    """One `--field-name` flag per field of `config_cls` (or the `names` given); unset flags leave the config alone."""
    group = parser.add_argument_group("config (each overrides --config)")
    for name in names or list(config_cls.model_fields):
        field = config_cls.model_fields[name]
        kind = _flag_type(field.annotation)
        extra: dict[str, Any] = {"choices": get_args(kind)} if get_origin(kind) is Literal else {"type": kind}
        group.add_argument(
            "--" + name.replace("_", "-"),
            dest=f"config.{name}",
            metavar=name.upper(),
            default=None,
            help=f"{field.description} (default: {field.default})".replace("%", "%%"),
            **extra,
        )


def config_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The config fields given as flags."""
    return {k.removeprefix("config."): v for k, v in vars(args).items() if k.startswith("config.") and v is not None}


def _flag_type(annotation: Any) -> Any:
    """int | None -> int; Literal stays; str for anything else."""
    if get_origin(annotation) in (Union, types.UnionType):
        annotation = next(a for a in get_args(annotation) if a is not type(None))
    return annotation if annotation in (int, float, str) or get_origin(annotation) is Literal else str
