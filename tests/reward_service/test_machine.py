"""The grader dtype is chosen by measurement on the machine at hand, and cached."""

from __future__ import annotations

import json

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
