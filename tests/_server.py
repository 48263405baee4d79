"""Start a real `rbr serve` process on a free port (for end-to-end tests)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

__all__ = ["free_port", "rbr_exe", "rbr_server"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rbr_exe() -> str:
    """The `rbr` console script of the running interpreter's environment."""
    exe = Path(sys.executable).parent / "rbr"
    return str(exe) if exe.exists() else "rbr"


@contextmanager
def rbr_server(
    env: dict[str, str] | None = None,
    args: list[str] | None = None,
    timeout_s: float = 180,
    wait_ready: bool = True,
    port: int | None = None,
) -> Iterator[tuple[str, subprocess.Popen, Path]]:
    """Yields (base URL, process, log path) once /readyz answers 200 (or /healthz, without wait_ready); on `port`
    (default: a free one)."""
    port = port or free_port()
    log = Path(tempfile.mkstemp(prefix="rbr-serve-", suffix=".log")[1])
    full_env = {**os.environ, **(env or {})}
    cmd = [rbr_exe(), "serve", "--port", str(port), "--log-level", "warning", *(args or [])]
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, env=full_env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        path = "/readyz" if wait_ready else "/healthz"
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"rbr serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(url + path, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"rbr serve not ready after {timeout_s} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.25)
        yield url, proc, log
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.unlink(missing_ok=True)  # errors above carry its tail
