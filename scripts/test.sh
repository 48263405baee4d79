#!/usr/bin/env bash
# Set up, then run the linter and the whole test suite (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# vLLM (CPU) in its own venv for the tests that check the vLLM code paths against a real server (~2 min once).
if [ "${RBR_SKIP_VLLM:-0}" != "1" ]; then
  bash scripts/vllm_env.sh > /dev/null
fi
.venv/bin/ruff check .
.venv/bin/python -m pytest -q "$@"
