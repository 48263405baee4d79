"""Schemathesis fuzzes the served OpenAPI spec against a real `rbr serve`, with every check on: no 5xx, and
every answer (status, content type, headers, body) as the spec says; schema-valid data is accepted and
schema-violating data refused (tests/fuzz/schemathesis.toml says where the spec cannot say more)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests._server import rbr_server

pytestmark = [pytest.mark.model, pytest.mark.e2e]

CONFIG = Path(__file__).with_name("schemathesis.toml")
EXAMPLES = os.environ.get("RBR_FUZZ_EXAMPLES", "5")  # per operation and phase; more with the variable set


def test_the_served_spec_holds_under_schemathesis(tmp_path):
    st = Path(sys.executable).with_name("st")
    if not st.exists():
        pytest.skip("schemathesis is not installed (pip install -e '.[dev]')")
    env = {
        "RBR_DEFAULT_RESPONSE_TYPE": "comply",
        "RBR_MAX_ITEMS": "3",
        "RBR_MAX_CHARS": "1500",
        "RBR_ADMIN_TOKEN": "fuzz-token",
        "RBR_API_TOKEN": "fuzz-token",
    }  # one header serves both route kinds
    with rbr_server(env) as (url, proc, log):
        cmd = [
            str(st),
            "--config-file",
            str(CONFIG),
            "run",
            f"{url}/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            EXAMPLES,
            "--workers",
            "1",
            "--seed",
            "7",
            "--no-color",
            "--generation-database",
            "none",
            "--request-timeout",
            "120",
            "--max-response-time",
            "120",
            "-H",
            "Authorization: Bearer fuzz-token",
        ]
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, cwd=tmp_path)
        assert proc.poll() is None, f"the server died under the fuzzer:\n{log.read_text()[-2000:]}"
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-6000:]
    cases = re.search(r"(\d+) generated, (\d+) passed", out)
    assert cases and int(cases.group(1)) == int(cases.group(2)) > 100, out[-2000:]
    print(cases.group(0))
