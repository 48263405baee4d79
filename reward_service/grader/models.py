"""Loading grader models: the dtype this CPU computes fastest, and a causal LM from any model id.

Where models are (the embedded default, the cache folder) is `reward_service/paths.py`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from reward_service.errors import ModelLoadError
from reward_service.paths import cache_dir, resolve_model_path

__all__ = ["choose_dtype", "load_causal_lm", "matmul_gflops"]

log = logging.getLogger(__name__)


def matmul_gflops(dtype: str, m: int = 256, k: int = 576, n: int = 1536, repeats: int = 8) -> float:
    """This machine's measured rate of one (m x k) @ (k x n) matmul in `dtype` (the shape of a 135M model's
    MLP on 256 tokens), best of `repeats` after a warm-up."""
    import time

    import torch

    a, b = torch.randn(m, k, dtype=getattr(torch, dtype)), torch.randn(k, n, dtype=getattr(torch, dtype))
    best = float("inf")
    for i in range(repeats + 2):
        t0 = time.perf_counter()
        a @ b
        if i >= 2:
            best = min(best, time.perf_counter() - t0)
    return 2 * m * k * n / best / 1e9


def choose_dtype(requested: str = "auto") -> str:
    """The grader's dtype: `requested`, or for "auto" bfloat16 where this CPU computes it faster than float32
    (native bf16: AMX or AVX512-BF16) and float32 where bf16 is emulated (2-4x slower). Measured once per
    machine (CPU model and flags, torch version) and cached in the cache folder."""
    if requested != "auto":
        return requested
    import hashlib
    import json
    import platform

    import torch

    cpu = ""
    if Path("/proc/cpuinfo").exists():
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = "|".join(sorted({ln for ln in lines if ln.startswith(("model name", "flags"))}))
    key = hashlib.sha256(f"{platform.machine()}|{cpu}|{torch.__version__}".encode()).hexdigest()[:16]
    path = cache_dir() / "dtype" / f"{key}.json"
    try:
        return json.loads(path.read_text())["dtype"]
    except (OSError, ValueError, KeyError):
        pass
    rates = {dt: matmul_gflops(dt) for dt in ("float32", "bfloat16")}
    choice = "bfloat16" if rates["bfloat16"] > rates["float32"] else "float32"
    log.info("grader dtype: %s (measured GFLOP/s: %s)", choice, {k: round(v, 1) for k, v in rates.items()})
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"dtype": choice, "gflops": rates}))
    except OSError:
        pass
    return choice


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
