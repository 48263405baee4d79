"""Settings, from a TOML/YAML/JSON file and `RBR_*` environment variables (environment wins)."""

from __future__ import annotations

import json
import os
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from reward_service._replicas import parse_urls
from reward_service.paths import DATA_DIR, EMBEDDED_MODEL

__all__ = ["DATA_DIR", "MODES", "SETTING_GROUPS", "Mode", "Settings", "load_settings"]

#: How the grader reads P(yes): the answer token's logit, a calibrated logit, or trained heads on hidden states.
Mode = Literal["prompted", "calibrated", "heads"]
MODES: tuple[Mode, ...] = get_args(Mode)
AutoReward = Literal["expected", "most_likely"]


class Settings(BaseSettings):
    """Every knob of the grader and the service. Each has a default that runs the embedded stack."""

    model_config = SettingsConfigDict(env_prefix="RBR_", extra="forbid")

    policy_file: Path | None = Field(None, description="Policy YAML; the default policy when unset.")
    grader_backend: Literal["transformers", "vllm", "openai"] = Field(
        "transformers",
        description="Grader engine: transformers (in process, every mode), vllm (in process, GPU), "
        "openai (an OpenAI-compatible /v1/completions server such as `vllm serve`).",
    )
    grader_model: str = Field(EMBEDDED_MODEL, description="`embedded:smollm2-135m`, a local folder or a hub id.")
    grader_url: str | None = Field(
        None,
        description="openai backend: server base URL (http://grader:8000), a router's, or several replicas' "
        "(comma-separated: least busy first, a failed one skipped).",
    )
    grader_served_name: str | None = Field(None, description="openai backend: model name on the server.")
    grader_timeout_s: float = Field(60.0, gt=0, description="openai backend: timeout per request.")
    grader_concurrency: int = Field(
        8, ge=1, le=256, description="openai backend: requests in flight at once, per grader server."
    )
    grader_logprobs: int = Field(20, ge=2, le=100, description="openai/vllm: top logprobs read for yes/no.")
    grader_vllm_args: dict[str, Any] = Field(
        default_factory=dict, description='vllm backend: extra vllm.LLM arguments, e.g. {"max_model_len": 4096}.'
    )
    grader_mode: Mode | None = Field(
        None, description="How P(yes) is read; unset = heads for the embedded model on transformers, else prompted."
    )
    grader_heads: Path | None = Field(None, description="Fitted heads/calibrators; default data/grader/heads.npz.")
    grader_dtype: Literal["auto", "bfloat16", "float32", "float16"] = Field(
        "auto", description="Grader weights dtype; auto = bfloat16 where this CPU computes it natively, else float32."
    )
    grader_threads: int | None = Field(None, ge=1, description="torch CPU threads; unset = torch's default.")
    grader_layers: tuple[Annotated[int, Field(ge=0)], ...] | None = Field(
        None,
        min_length=1,
        description="transformers: hidden-state layers the heads read (0 = embeddings), e.g. [5, 7, 9, 11]; "
        "unset = 8, 12, 16, 20, capped at the model's depth. Heads fitted on other layers refuse to load.",
    )
    grader_batch_size: int = Field(
        1, ge=1, le=256, description="Completions per forward pass in heads mode; 1 is fastest on CPU (padding)."
    )
    rm_backend: Literal["judge", "hf", "vllm-http"] = Field("judge", description="Helpful-only reward model.")
    rm_model: str | None = Field(None, description="hf: folder or hub id; vllm-http: served model name.")
    rm_url: str | None = Field(None, description="vllm-http: base URL of the vLLM pooling server.")
    rm_tokenizer: str | None = Field(None, description="vllm-http: tokenizer whose chat template renders input.")
    rm_timeout_s: float = Field(60.0, gt=0, description="vllm-http: timeout per request.")
    weights_file: Path | None = Field(None, description="RBR weights; default data/weights/default.json.")
    rule_grading: Literal["auto", "prompted"] = Field(
        "auto",
        description="How deployment rules are graded. auto: the fitted generic rule heads where they fit the grader "
        "(transformers backend), else prompted, except on the embedded model, which reads rule questions at chance "
        "when prompted: rules are then refused (422). prompted: always ask the grader LLM.",
    )
    rule_heads: Path | None = Field(None, description="Generic rule heads; default data/grader/rule_heads.npz.")
    classifier_file: Path | None = Field(
        None, description="Prompt classifier for category 'auto'; default data/grader/classifier.npz."
    )
    rule_weights_file: Path | None = Field(None, description="Rule-term weights; default data/weights/rules.json.")
    rule_harm_threshold: float = Field(
        0.9,
        ge=0,
        le=1,
        description="A rule with P(harmful) at or above this is refused (422) or ignored. 0.9: on rules never "
        "fitted on, the embedded heads flag 49% of harmful and 1% of harmless ones (at 0.7: 73% and 7%; "
        "research/rule_grader.py): a screen for blatant rules, not a guarantee.",
    )
    rbr_scale: float = Field(
        1.0,
        ge=0,
        description="Multiplies the RBR weights; 0 serves the helpful-only RM alone (the paper's Helpful-PPO control).",
    )
    max_conversation_tokens: int = Field(384, ge=16, description="Conversation tokens kept (the latest).")
    max_completion_tokens: int = Field(640, ge=16, description="Completion tokens kept (the first).")
    readout_cache: bool = Field(False, description="Cache grader readouts on disk by content hash.")
    # -- the HTTP service (`rbr serve`) --
    host: str = Field("127.0.0.1", description="Address `rbr serve` binds to.")
    port: int = Field(8000, ge=0, le=65535, description="Port `rbr serve` listens on (0 = any free port).")
    api_token: str | None = Field(None, description="If set, scoring routes need `Authorization: Bearer <it>`.")
    admin_token: str | None = Field(None, description="Bearer token of /v1/admin/*; admin routes are off unset.")
    max_items: int = Field(256, ge=1, description="Items per request; more is HTTP 413.")
    max_chars: int = Field(
        32_000, ge=1, description="Characters per item (message roles and texts, completion); more is 413."
    )
    max_messages: int = Field(64, ge=1, description="Messages per prompt; more is 413.")
    max_rules: int = Field(8, ge=1, description="Deployment rules per item (each is 3 more grader questions); 413.")
    max_queue_items: int = Field(
        1024, ge=1, description="Items admitted and waiting for the grader; past it requests get 429 + Retry-After."
    )
    request_timeout_s: float = Field(
        300.0, gt=0, description="A request not started within this many seconds gets 503 (its items are dropped)."
    )
    batch_max_items: int = Field(32, ge=1, description="Dynamic batching: most items scored in one batch.")
    batch_max_wait_ms: float = Field(
        5.0, ge=0, description="Dynamic batching: how long a batch waits for more requests once it has one."
    )
    default_response_type: str | None = Field(
        None,
        description="Response type of items with neither response_type nor category; 'auto': read it from the "
        "prompt (the prompt classifier); unset = 422.",
    )
    auto_reward: AutoReward = Field(
        "most_likely",
        description="Category 'auto': the RBR term under the most likely response type, or its expectation over "
        "P(response type) (expected); most_likely ranked held-out reply pairs better (docs/classifier.md).",
    )

    @field_validator("grader_url")
    @classmethod
    def _grader_urls(cls, value: str | None) -> str | None:
        return None if value is None else ",".join(parse_urls(value, ""))

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Priority: explicit arguments (CLI flags) > RBR_* environment > config file > defaults.
        return init_settings, env_settings, _FileSource(settings_cls, _FILE_VALUES.get({}))

    @property
    def mode(self) -> str:
        if self.grader_mode is not None:
            return self.grader_mode
        embedded = self.grader_model == EMBEDDED_MODEL and self.grader_backend == "transformers"
        return "heads" if embedded else "prompted"

    @property
    def weights_path(self) -> Path:
        return self.weights_file or DATA_DIR / "weights" / "default.json"

    @property
    def heads_path(self) -> Path:
        return self.grader_heads or DATA_DIR / "grader" / "heads.npz"

    @property
    def classifier_path(self) -> Path:
        return self.classifier_file or DATA_DIR / "grader" / "classifier.npz"

    @property
    def rule_heads_path(self) -> Path:
        return self.rule_heads or DATA_DIR / "grader" / "rule_heads.npz"

    @property
    def rule_weights_path(self) -> Path:
        return self.rule_weights_file or DATA_DIR / "weights" / "rules.json"


#: Settings by what they configure: the groups of `rbr serve --help` and of docs/configuration.md. Every field is in
#: exactly one group (tests/reward_service/test_config.py).
SETTING_GROUPS: dict[str, tuple[str, ...]] = {
    "grader": (
        "policy_file", "grader_backend", "grader_model", "grader_url", "grader_served_name", "grader_timeout_s",
        "grader_concurrency", "grader_logprobs", "grader_vllm_args", "grader_mode", "grader_heads", "grader_dtype",
        "grader_threads", "grader_layers", "grader_batch_size", "max_conversation_tokens", "max_completion_tokens",
        "readout_cache", "classifier_file", "rule_grading", "rule_heads",
    ),
    "reward": (
        "rm_backend", "rm_model", "rm_url", "rm_tokenizer", "rm_timeout_s", "weights_file", "rbr_scale",
        "rule_weights_file", "rule_harm_threshold", "default_response_type", "auto_reward",
    ),
    "server": (
        "host", "port", "api_token", "admin_token", "max_items", "max_chars", "max_messages", "max_rules",
        "max_queue_items", "request_timeout_s", "batch_max_items", "batch_max_wait_ms",
    ),
}  # fmt: skip


class _FileSource(PydanticBaseSettingsSource):
    def __init__(self, settings_cls: type[BaseSettings], values: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self.values = values

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self.values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self.values)


_FILE_VALUES: ContextVar[dict[str, Any]] = ContextVar("rbr_config_file_values")


def _read_config(path: Path) -> dict[str, Any]:
    text = path.read_text()
    if path.suffix == ".toml":
        data = tomllib.loads(text)
    elif path.suffix == ".json":
        data = json.loads(text)
    else:
        data = yaml.safe_load(text) or {}
    return data.get("rbr", data) if isinstance(data, dict) else {}


def load_settings(config: str | Path | None = None, **overrides: Any) -> Settings:
    """Settings from `config` (or $RBR_CONFIG) and the environment; `overrides` beat the file."""
    config = config or os.environ.get("RBR_CONFIG")
    token = _FILE_VALUES.set(_read_config(Path(config)) if config else {})
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    finally:
        _FILE_VALUES.reset(token)
