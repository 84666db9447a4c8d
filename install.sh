#!/usr/bin/env bash
# Installs uniwav and what it needs on a fresh machine. Usage: bash install.sh [--dev]
#   - espeak-ng + fortunes-min (Debian/Ubuntu packages) for the built-in demo corpus
#   - torch: kept if already installed (install your CUDA build first); else the CPU build torch==2.13.0
#   - uniwav itself, editable, with the eval extra (independent scorers); --dev adds pytest, transformers
#     and, where it builds, the lm extra (pyctcdecode + kenlm)
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
extra="[eval]"
[ "${1:-}" = "--dev" ] && extra="[dev]"

if ! command -v espeak-ng >/dev/null 2>&1 || ! ls /usr/share/games/fortunes/fortunes >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" != 0 ] && SUDO="sudo"
    if ! $SUDO apt-get update -qq; then
      echo "install.sh: 'apt-get update' failed (no network, or another apt process holds the lock: wait for it and run" \
           "install.sh again); espeak-ng and fortunes-min are needed for the demo corpus" >&2
      exit 1
    fi
    if ! $SUDO apt-get install -y -qq espeak-ng fortunes-min >/dev/null; then
      echo "install.sh: 'apt-get install espeak-ng fortunes-min' failed; install them and run install.sh again" >&2
      exit 1
    fi
  else
    echo "install.sh: please install espeak-ng and a fortunes package yourself (e.g. brew install espeak-ng fortune);" \
         "they are only needed for the demo corpus" >&2
  fi
fi

if ! $PY -c "import torch" >/dev/null 2>&1; then
  $PY -m pip install -q "torch==${UNIWAV_TORCH_VERSION:-2.13.0}"
fi
$PY -m pip install -q -e ".${extra}"
if [ "$extra" = "[dev]" ]; then  # the LM decoding tests run when kenlm builds here, and are skipped otherwise
  $PY -m pip install -q -e ".[lm]" || echo "install.sh: kenlm did not build (needs a C++ compiler); LM beam search tests will be skipped" >&2
fi
echo "install.sh: uniwav installed ($($PY -c 'import torch; print("torch", torch.__version__)'))"
