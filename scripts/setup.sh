#!/usr/bin/env bash
# Set up AlgoSpace in .venv/ at the repository root (idempotent; fast when up to date).
#
#   bash scripts/setup.sh          # the package and its runtime dependencies
#   bash scripts/setup.sh --dev    # plus the test tools (pytest, ruff, mypy)
#
# torch is installed first, so that a machine without an NVIDIA GPU gets the
# small CPU build instead of several GB of CUDA wheels:
#   ALGOSPACE_TORCH=auto (default)  CUDA build if `nvidia-smi` finds a GPU, else CPU build
#   ALGOSPACE_TORCH=cpu | cuda      force one; ALGOSPACE_TORCH=skip keeps the torch you have
# PYTHON=python3.12 picks the interpreter that creates .venv (3.11 or 3.12).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

TORCH_VERSION=2.13.0
CPU_INDEX=https://download.pytorch.org/whl/cpu
extras=""
case "${1:-}" in
  --dev) extras="[dev]" ;;
  "") ;;
  *) echo "error: unknown option '$1' (use --dev or nothing)" >&2; exit 2 ;;
esac

PY=${PYTHON:-python3}
if ! command -v "$PY" >/dev/null 2>&1; then
  echo "error: $PY not found; install Python 3.11 or 3.12, or set PYTHON=/path/to/python3" >&2
  exit 2
fi
if ! "$PY" -c 'import sys; sys.exit(not ((3, 11) <= sys.version_info[:2] <= (3, 12)))'; then
  echo "error: AlgoSpace needs Python 3.11 or 3.12; $PY is $("$PY" -V 2>&1)." \
       "Set PYTHON=/path/to/python3.11" >&2
  exit 2
fi

if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $("$PY" -V 2>&1)"
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
stamp=".venv/.algospace-setup${extras:+-dev}"
want=$(cat pyproject.toml scripts/setup.sh | "$VPY" -c 'import hashlib,sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "[setup] .venv is up to date"
  exit 0
fi

pip_install() { "$VPY" -m pip install --disable-pip-version-check -q "$@"; }

install_torch() {
  local mode=${ALGOSPACE_TORCH:-auto} have
  have=$("$VPY" -c 'import torch; print(torch.__version__)' 2>/dev/null || true)
  if [ "$mode" = skip ] || [ "${have%%+*}" = "$TORCH_VERSION" ]; then
    echo "[setup] torch ${have:-not installed} kept"; return
  fi
  if [ "$mode" = auto ]; then
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then mode=cuda; else mode=cpu; fi
  fi
  if [ "$mode" = cuda ]; then
    echo "[setup] installing torch $TORCH_VERSION (CUDA build)"
    pip_install "torch==$TORCH_VERSION"
    return
  fi
  # CPU: take what plain pip would install if it is already a CPU build (macOS,
  # Windows, or a local wheel configured for pip); otherwise use PyTorch's CPU index.
  local resolved
  resolved=$("$VPY" -m pip install --dry-run --no-deps --quiet --report - "torch==$TORCH_VERSION" 2>/dev/null \
    | "$VPY" -c 'import json,sys; print(json.load(sys.stdin)["install"][0]["metadata"]["version"])' 2>/dev/null || true)
  if [[ "$resolved" == *+cpu* ]] || [ "$(uname -s)" != Linux ]; then
    echo "[setup] installing torch $resolved (CPU build)"
    pip_install "torch==$TORCH_VERSION"
  else
    echo "[setup] installing torch $TORCH_VERSION CPU build from $CPU_INDEX"
    pip_install --no-deps --index-url "$CPU_INDEX" "torch==$TORCH_VERSION"
  fi
}

install_torch
echo "[setup] installing algospace${extras} and its dependencies into .venv"
pip_install -e ".${extras}"
echo "$want" > "$stamp"
[ -n "$extras" ] && cp "$stamp" ".venv/.algospace-setup"
echo "[setup] done: $("$VPY" -c 'import algospace, torch, ray; print(f"algospace {algospace.__version__}, torch {torch.__version__}, ray {ray.__version__}")')"
