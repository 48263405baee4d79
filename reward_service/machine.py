"""What this machine computes fastest: the dtype choice shared by the grader and the trainer.

Never hard-coded: CPUs with native bf16 (AMX, AVX512-BF16) run it several times faster than float32, those
that emulate it 2-4x slower. Measured once per machine and cached. torch is imported only when measuring.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from reward_service.paths import cache_dir

__all__ = ["choose_dtype", "matmul_gflops"]

log = logging.getLogger(__name__)

#: Environment variables that limit which instructions torch and oneDNN use. `ONEDNN_MAX_CPU_ISA=AVX512_CORE`
#: turns a CPU with native bf16 into one that emulates it (benchmarks/grader_throughput.py measures the slow
#: kind of CPU this way), so they are part of the measured machine.
ISA_ENV = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")


def matmul_gflops(dtype: str, m: int = 256, k: int = 576, n: int = 1536, repeats: int = 30) -> float:
    """This machine's measured rate of one linear layer in `dtype`, as the model computes it (`F.linear`: an
    (m x k) input against an (n x k) weight; the shape of a 135M model's MLP on 256 tokens), best of `repeats`
    after a warm-up. Not a plain `a @ b`: on a CPU with AVX2 only, bf16 `a @ b` takes a path ~8x slower than
    bf16 `F.linear` (1 against 10 GFLOP/s, measured 2026-11-29), and the model never runs it."""
    import time

    import torch
    import torch.nn.functional as F

    a, w = torch.randn(m, k, dtype=getattr(torch, dtype)), torch.randn(n, k, dtype=getattr(torch, dtype))
    best = float("inf")
    for i in range(repeats + 2):
        t0 = time.perf_counter()
        F.linear(a, w)
        if i >= 2:
            best = min(best, time.perf_counter() - t0)
    return 2 * m * k * n / best / 1e9


def choose_dtype(requested: str = "auto") -> str:
    """The compute dtype: `requested`, or for "auto" bfloat16 where this CPU computes it faster than float32
    (native bf16: AMX or AVX512-BF16) and float32 where bf16 is emulated (2-4x slower). Measured once per
    machine (CPU model and flags, torch version, the ISA_ENV limits) and cached in the cache folder."""
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
    isa = "|".join(f"{v}={os.environ.get(v, '')}" for v in ISA_ENV)  # limits on the instructions torch may use
    key = hashlib.sha256(f"{platform.machine()}|{cpu}|{torch.__version__}|{isa}".encode()).hexdigest()[:16]
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
