#!/usr/bin/env bash
# Install the released OpenRLHF versions that tests/integrations/test_openrlhf.py runs against a real
# `rbr serve`, each into its own folder (never into .venv, never two versions on one sys.path):
#   .upstream/openrlhf-0.9.0    openrlhf==0.9.0   (batch call style: remote_rm_utils.request_api_wrapper)
#   .upstream/openrlhf-0.11.2   openrlhf==0.11.2  (per-sample call style: utils/agent.py SingleTurnAgentExecutor)
#   .upstream/deps              the few light, real dependencies of the modules the tests import that .venv lacks
# The tests run upstream's code in a subprocess of .venv/bin/python with PYTHONPATH=<version folder>:.upstream/deps.
#
# Pins live here, not in a pyproject.toml extra: openrlhf cannot be installed normally here (it pins
# deepspeed==0.18.1, flash-attn==2.8.3, ray[default]==2.48.0, transformers==4.57.0; vllm for rollouts),
# so it is installed with --no-deps. Nothing of ray, deepspeed or vllm is installed: the modules that
# import them at top level are not imported; the tests load just the functions they need from the
# installed upstream files (ast). Upstream modules that do import with .venv + .upstream/deps:
#   0.9.0:  openrlhf.utils.utils, openrlhf.utils.logging_utils
#   0.11.2: openrlhf.utils.agent (aiohttp), openrlhf.trainer.ppo_utils.experience (pylatexenc via openrlhf.utils)
# Idempotent: a folder whose stamp names the same pins is left as it is. Prints nothing on success
# unless something is installed (to stderr).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
if [ ! -x "$PY" ]; then
  echo "[upstream_env] error: .venv missing: run scripts/setup.sh first" >&2
  exit 1
fi
OPENRLHF_VERSIONS="0.9.0 0.11.2"
# aiohttp and its dependencies that .venv lacks (0.11.2's agent.py imports aiohttp), and pylatexenc
# (0.11.2's openrlhf/utils/__init__.py imports math_utils, which imports it). pylatexenc is pure Python;
# the aiohttp family are small wheels with optional C speed-ups. All --no-deps: whatever else they need
# (attrs, idna, typing-extensions) comes from .venv, which .upstream/deps must not shadow.
DEPS="aiohttp==3.14.5 aiohappyeyeballs==2.7.1 aiosignal==1.4.0 frozenlist==1.8.0 multidict==7.2.1 propcache==0.5.4
yarl==1.25.1 pylatexenc==2.11"
PIP=(.venv/bin/pip install --quiet --disable-pip-version-check --no-deps --no-compile)

install() {  # install <folder> <pins...>: (re)install into an empty folder unless its stamp matches
  local dir=$1
  shift
  local want="$*"
  if [ -f "$dir/.rbr-upstream-ready" ] && [ "$(cat "$dir/.rbr-upstream-ready")" = "$want" ]; then
    return 0
  fi
  echo "[upstream_env] installing $want into $dir" >&2
  rm -rf "$dir"
  mkdir -p "$dir"
  # shellcheck disable=SC2048,SC2086
  "${PIP[@]}" --target "$dir" $* >&2
  echo "$want" > "$dir/.rbr-upstream-ready"
}

mkdir -p .upstream
install .upstream/deps $DEPS
for v in $OPENRLHF_VERSIONS; do
  install ".upstream/openrlhf-$v" "openrlhf==$v"
done

# Check that the modules the tests import do import, each version in its own interpreter.
check() {  # check <version> <modules...>
  local v=$1
  shift
  PYTHONPATH="$PWD/.upstream/openrlhf-$v:$PWD/.upstream/deps" "$PY" - "$v" "$@" <<'EOF'
import importlib, importlib.metadata, sys
v, mods = sys.argv[1], sys.argv[2:]
assert importlib.metadata.version("openrlhf") == v, importlib.metadata.version("openrlhf")
for m in mods:
    mod = importlib.import_module(m)
    assert f"/.upstream/openrlhf-{v}/" in mod.__file__, mod.__file__
for name in ("ray", "vllm", "deepspeed"):
    assert name not in sys.modules, f"{name} was imported"
EOF
}
check 0.9.0 openrlhf.utils.utils openrlhf.utils.logging_utils
check 0.11.2 openrlhf.utils.agent openrlhf.trainer.ppo_utils.experience
echo "$PWD/.upstream"
