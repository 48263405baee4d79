"""The grader dtype is chosen by measurement on the machine at hand, and cached."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from reward_service.machine import choose_dtype


def test_an_explicit_dtype_is_kept():
    assert choose_dtype("float32") == "float32" and choose_dtype("bfloat16") == "bfloat16"


def test_auto_picks_the_faster_measured_dtype_and_caches_it(tmp_path, monkeypatch):
    monkeypatch.setenv("RBR_CACHE_DIR", str(tmp_path))
    choice = choose_dtype("auto")
    (cached,) = (tmp_path / "dtype").glob("*.json")
    record = json.loads(cached.read_text())
    assert choice == record["dtype"] in ("float32", "bfloat16")
    faster = max(record["gflops"], key=record["gflops"].get)
    assert choice == faster, record
    cached.write_text(json.dumps({**record, "dtype": "float16"}))  # the cache is what later calls read
    assert choose_dtype("auto") == "float16"


def test_auto_picks_float32_where_bf16_is_emulated(tmp_path):
    """With oneDNN kept below AVX512-BF16/AMX, bf16 matmuls are emulated (several times slower than float32 on
    any x86 CPU): `auto` measures that and picks float32, and does not reuse the unrestricted machine's choice."""
    code = "from reward_service.machine import choose_dtype; print(choose_dtype('auto'))"
    env = {**os.environ, "RBR_CACHE_DIR": str(tmp_path)}
    plain = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    env["ONEDNN_MAX_CPU_ISA"] = "AVX512_CORE"
    slow = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert slow.stdout.strip() == "float32", slow.stderr
    assert plain.stdout.strip() in ("float32", "bfloat16")
    assert len(list((tmp_path / "dtype").glob("*.json"))) == 2  # one measurement per ISA limit
