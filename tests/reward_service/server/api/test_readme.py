"""The README's curl examples work as written against `rbr serve` (only the URL is swapped)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

pytestmark = [pytest.mark.model, pytest.mark.e2e]

README = Path(__file__).resolve().parents[4] / "README.md"


def curl_commands() -> list[str]:
    block = re.search(r"<!-- curl-examples -->\n```bash\n(.*?)```\n<!-- /curl-examples -->", README.read_text(), re.S)
    assert block, "README lost its curl examples"
    commands, current = [], []
    for line in block.group(1).splitlines():
        if line.startswith("curl ") and current:
            commands.append("\n".join(current))
            current = []
        if line.startswith("curl ") or (current and line.strip() and not line.startswith("#")):
            current.append(line)
        elif current and not line.strip():
            commands.append("\n".join(current))
            current = []
    if current:
        commands.append("\n".join(current))
    return commands


def test_readme_curl_examples(server):
    commands = curl_commands()
    assert len(commands) >= 7
    for cmd in commands:
        assert cmd.startswith("curl -s http://127.0.0.1:8000/")
        run = cmd.replace("curl -s ", "curl -sS --fail-with-body ", 1).replace("http://127.0.0.1:8000", server)
        r = subprocess.run(["bash", "-c", run], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, f"{cmd}\n-> {r.stdout} {r.stderr}"
        if "/metrics" not in cmd:
            body = json.loads(r.stdout)
            assert "error" not in body, body
