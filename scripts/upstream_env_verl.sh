#!/usr/bin/env bash
# verl 0.9.1's released code for tests/integrations/test_verl.py, into .upstream/verl-0.9.1 (~10 MB, once).
# --no-deps: the tests load only verl's reward-function plumbing from these files (importing the `verl`
# package needs ray and tensordict); omegaconf is the config type verl hands to get_custom_reward_fn.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=.upstream/verl-0.9.1
if [ -f "$DEST/.complete" ]; then
  exit 0
fi
rm -rf "$DEST"
.venv/bin/pip install --quiet --disable-pip-version-check --no-deps --target "$DEST" \
  "verl==0.9.1" "omegaconf==2.3.0" "antlr4-python3-runtime==4.9.3"
touch "$DEST/.complete"
echo "[upstream] verl 0.9.1 in $DEST"
