#!/usr/bin/env bash
# Set up, then run the linter and the whole test suite (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
# Disk matters: .venv ~2 GB, .venv-vllm ~3.7 GB, the embedded model ~0.8 GB, PPO test checkpoints ~3 GB each.
echo "[test] free disk: $(df -Ph . | awk 'NR==2 {print $4 " of " $2 " on " $6}')" >&2
t0=$SECONDS
# vLLM (CPU) in its own venv for the tests that check the vLLM code paths against a real server (~2 min once):
# built beside .venv (both mostly wait on downloads and unpacking), its log shown only if it fails.
vllm_pid=""
if [ "${RBR_SKIP_VLLM:-0}" != "1" ]; then
  vllm_log=$(mktemp -t rbr-vllm-env-XXXXXX.log)
  bash scripts/vllm_env.sh > /dev/null 2> "$vllm_log" &
  vllm_pid=$!
  trap 'kill "$vllm_pid" 2>/dev/null || true' EXIT  # a failed set-up below stops it too
fi
bash scripts/setup.sh
# Released upstream trainer code, without heavy dependencies, for tests/integrations/ (~20 s once):
# OpenRLHF 0.9.0 and 0.11.2, verl 0.9.1. Quiet unless an install fails.
for script in scripts/upstream_env.sh scripts/upstream_env_verl.sh; do
  if ! out=$(bash "$script" 2>&1); then
    echo "$out" >&2
    exit 1
  fi
done
if [ -n "$vllm_pid" ]; then
  if ! wait "$vllm_pid"; then
    cat "$vllm_log" >&2
    exit 1
  fi
  trap - EXIT
  rm -f "$vllm_log"
fi
echo "[test] set up in $((SECONDS - t0)) s" >&2
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/python -m pytest -q --durations=15 "$@"
