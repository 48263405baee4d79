"""Loading grader models: a causal LM from any model id, in the dtype this CPU computes fastest (machine.py).

Where models are (the embedded default, the cache folder) is `reward_service/paths.py`.
"""

from __future__ import annotations

from reward_service.errors import ModelLoadError
from reward_service.machine import choose_dtype
from reward_service.paths import resolve_model_path

__all__ = ["load_causal_lm"]


def load_causal_lm(model: str, dtype: str = "auto", threads: int | None = None):
    """(tokenizer, model) in eval mode. `model` is `embedded:...`, a local folder or a hub id; `dtype` "auto"
    is `choose_dtype`'s pick for this machine."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if threads:
        torch.set_num_threads(threads)
    path = resolve_model_path(model)
    try:
        tok = AutoTokenizer.from_pretrained(path)
        lm = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, choose_dtype(dtype)))
    except Exception as e:
        raise ModelLoadError(f"cannot load grader model {model!r} ({path}): {e}") from e
    lm.eval()
    return tok, lm
