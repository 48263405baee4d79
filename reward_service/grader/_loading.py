"""The one engine factory (settings -> tokenizer, engine, engine id) and the one boundary for engine errors."""

from __future__ import annotations

from typing import Any

from reward_service.errors import GraderError
from reward_service.grader._engine import GraderEngine, Readout

__all__ = ["engine_call", "load_engine"]


def load_engine(s) -> tuple[Any, GraderEngine, str]:
    """The one engine factory: (tokenizer, engine, engine id) for settings' grader_backend.

    The engine id names the model (and, for transformers, the dtype): cached readouts are keyed by it,
    and heads are checked against its model part.
    """
    if s.grader_backend == "transformers":
        from reward_service.grader._engine import TransformersEngine
        from reward_service.grader.models import load_causal_lm
        from reward_service.machine import choose_dtype

        dtype = choose_dtype(s.grader_dtype)
        tok, lm = load_causal_lm(s.grader_model, dtype, s.grader_threads)
        engine = TransformersEngine(tok, lm, s.grader_layers, s.grader_batch_size)
        return tok, engine, f"{s.grader_model}|{dtype}"

    from transformers import AutoTokenizer

    from reward_service.errors import ModelLoadError
    from reward_service.grader._engine import NO_WORDS, YES_WORDS, _single_token_ids
    from reward_service.grader._logprob_engines import OpenAIEngine, VLLMEngine
    from reward_service.paths import resolve_model_path

    path = resolve_model_path(s.grader_model)
    try:
        tok = AutoTokenizer.from_pretrained(path)
    except Exception as e:
        raise ModelLoadError(f"cannot load the grader tokenizer {s.grader_model!r}: {e}") from e
    yes, no = _single_token_ids(tok, YES_WORDS), _single_token_ids(tok, NO_WORDS)
    if s.grader_backend == "vllm":
        engine = VLLMEngine(path, yes, no, s.grader_logprobs, s.grader_dtype, **s.grader_vllm_args)
        return tok, engine, f"vllm:{s.grader_model}"
    if not s.grader_url:
        raise ModelLoadError("grader_backend 'openai' needs grader_url (RBR_GRADER_URL), e.g. http://127.0.0.1:8001")
    name = s.grader_served_name or s.grader_model
    engine = OpenAIEngine(s.grader_url, name, tok, yes, no, s.grader_logprobs, s.grader_timeout_s, s.grader_concurrency)
    return tok, engine, f"openai:{name}"


def engine_call(fn, *args) -> list[Readout]:
    """Call an engine; anything it raises that is not already a GraderError becomes one (never a default)."""
    try:
        return fn(*args)
    except GraderError:
        raise
    except Exception as e:
        raise GraderError(f"grader forward pass failed: {type(e).__name__}: {e}") from e
