"""The trainer's one config: a dataclass whose every field has a default and a doc line (CleanRL style).

`rbr train --config FILE` reads a YAML/TOML/JSON file (optionally under a `train` key); unknown keys are
an error naming them. Sizes default to a run that fits a 2-core CPU with the embedded 135M model.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from reward_service.paths import DATA_DIR

__all__ = ["ConfigError", "TrainConfig", "load_config"]


class ConfigError(ValueError):
    """A config file or field is invalid; the message names the field."""


@dataclass
class TrainConfig:
    # -- the reward service --
    service_url: str = "http://127.0.0.1:8000"
    """Base URL of `rbr serve`; every rollout batch is one POST /v1/rewards there."""
    service_token: str | None = None
    """Bearer token if the service sets RBR_API_TOKEN."""
    reward_timeout_s: float = 600.0
    """Timeout of one reward call."""
    reward_retries: int = 3
    """Retries of a failed reward call (connect errors, 429, 5xx) before the trainer stops."""
    reward_backoff_s: float = 1.0
    """First retry wait; doubles each retry."""
    # -- data and models --
    prompts: str = str(DATA_DIR / "seed_prompts.jsonl")
    """JSON lines with `prompt` and `response_type` or `category` (the project's seed prompts by default)."""
    split: str | None = "train"
    """Only prompts whose `split` is this (None: all)."""
    model: str = "embedded:smollm2-135m"
    """Policy, reference and value models: the embedded model, a local folder or a hub id."""
    max_prompt_tokens: int = 256
    """Prompts longer than this (after the chat template) keep their last tokens."""
    output_dir: str = "runs/ppo"
    """Where metrics.csv, TensorBoard events and checkpoints go."""
    # -- PPO (TRL's PPOTrainer) --
    total_steps: int = 20
    """PPO updates; each is one rollout batch and one reward call."""
    batch_size: int = 4
    """Prompts per rollout batch."""
    num_mini_batches: int = 1
    """Mini-batches per PPO epoch (must divide batch_size)."""
    num_ppo_epochs: int = 2
    """Optimisation epochs over each rollout batch."""
    learning_rate: float = 1e-5
    """AdamW learning rate (constant schedule, so a resumed run continues the same schedule)."""
    response_length: int = 48
    """Maximum new tokens per completion."""
    temperature: float = 0.7
    """Sampling temperature of rollouts."""
    kl_coef: float = 0.05
    """Weight of the per-token KL penalty to the reference model."""
    missing_eos_penalty: float | None = None
    """Subtracted from the reward of completions cut off before their end token (None: off)."""
    seed: int = 0
    """Random seed."""
    save_every: int = 10
    """Checkpoint every N steps (and at the end)."""
    keep_checkpoints: int = 2
    """Most recent checkpoints kept on disk, older ones deleted (0: keep all). Each is ~3 GB for 135M fp32."""
    dtype: str = "float32"
    """Weights dtype of the three models (float32 on CPU; bfloat16 on a GPU)."""

    def __post_init__(self) -> None:
        for f in fields(self):  # types first, so a wrong one is named rather than failing a comparison
            value, kind = getattr(self, f.name), str(f.type)
            if kind.startswith("int") and (isinstance(value, bool) or not isinstance(value, int)):
                raise ConfigError(f"{f.name}: must be an integer, got {value!r}")
            if kind.startswith("float") and (isinstance(value, bool) or not isinstance(value, int | float)):
                if not (value is None and "None" in kind):
                    raise ConfigError(f"{f.name}: must be a number, got {value!r}")
            if kind.startswith("str") and not isinstance(value, str) and not (value is None and "None" in kind):
                raise ConfigError(f"{f.name}: must be a string, got {value!r}")
        positive = (
            "total_steps",
            "batch_size",
            "num_mini_batches",
            "num_ppo_epochs",
            "response_length",
            "save_every",
            "max_prompt_tokens",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if self.batch_size % self.num_mini_batches:
            raise ConfigError(f"num_mini_batches: {self.num_mini_batches} does not divide batch_size {self.batch_size}")
        for name in ("keep_checkpoints", "reward_retries"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}: must be >= 0, got {getattr(self, name)}")
        if self.dtype not in ("float32", "bfloat16", "float16"):
            raise ConfigError(f"dtype: one of float32, bfloat16, float16, got {self.dtype!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_config(path: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """TrainConfig from a file (YAML/TOML/JSON; an optional `train:` section) and overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            text = p.read_text()
        except OSError as e:
            raise ConfigError(f"{p}: cannot read: {e.strerror or e}") from None
        try:
            raw = (
                tomllib.loads(text)
                if p.suffix == ".toml"
                else json.loads(text)
                if p.suffix == ".json"
                else (yaml.safe_load(text) or {})
            )
        except (ValueError, yaml.YAMLError) as e:
            raise ConfigError(f"{p}: not valid {p.suffix.lstrip('.') or 'YAML'}: {e}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{p}: must be a mapping of settings")
        data = raw.get("train", raw)
    data |= {k: v for k, v in overrides.items() if v is not None}
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    try:
        return TrainConfig(**data)
    except TypeError as e:
        raise ConfigError(str(e)) from None
