#!/usr/bin/env bash
# Installs uniwav and what it needs on a fresh machine, into one consistent Python environment.
# Usage: bash install.sh [--dev]
#   - where: the project's own virtual environment .venv (created here; nothing installed elsewhere
#     matters), or the interpreter in $PYTHON if you bring one (a conda env or venv with your CUDA torch)
#   - Debian/Ubuntu packages: espeak-ng + fortunes-min + fortunes-de (the demo corpus); --dev adds chromium (the web
#     page's browser test); python3-venv if this Python cannot make a virtual environment
#   - torch: kept if the environment has one; else the CPU build torch==2.13.0
#   - uniwav itself, editable, with the eval extra (independent scorers); --dev: every extra
#     (eval, bench, lm, app, onnx) plus pytest and ruff, all resolved together
#   - versions are constrained in one place, constraints.txt; the install ends with `pip check` and
#     fails, naming the conflicting packages, if the environment it leaves is inconsistent
set -euo pipefail
cd "$(dirname "$0")"
dev=0
case "${1:-}" in
  "") ;;
  --dev) dev=1 ;;
  *) echo "install.sh: unknown option '$1' (usage: bash install.sh [--dev])" >&2; exit 2 ;;
esac

SUDO=""; [ "$(id -u)" != 0 ] && SUDO="sudo"
apt_updated=0
apt_install() {  # apt_install WHY PACKAGE...
  local why=$1; shift
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "install.sh: please install $* yourself ($why)" >&2
    return 1
  fi
  if [ $apt_updated = 0 ]; then
    if ! $SUDO apt-get update -qq; then
      echo "install.sh: 'apt-get update' failed (no network, or another apt process holds the lock: wait for it and run" \
           "install.sh again); $* needed for $why" >&2
      exit 1
    fi
    apt_updated=1
  fi
  if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null; then
    echo "install.sh: 'apt-get install $*' failed; install them and run install.sh again ($why)" >&2
    return 1
  fi
}

if ! command -v espeak-ng >/dev/null 2>&1 || ! ls /usr/share/games/fortunes/fortunes /usr/share/games/fortunes/de >/dev/null 2>&1; then
  apt_install "the demo corpus (English, and German with --language de)" espeak-ng fortunes-min fortunes-de \
    || { command -v apt-get >/dev/null 2>&1 && exit 1; }
fi
if ! command -v cc >/dev/null 2>&1 && ! command -v gcc >/dev/null 2>&1; then  # pesq and webrtcvad ship no wheels
  apt_install "pesq and webrtcvad, which build from source" build-essential python3-dev || exit 1
fi
if [ $dev = 1 ] && ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  apt_install "the web page's browser test, which is skipped without it" chromium || true
fi

if [ -n "${PYTHON:-}" ]; then
  PY=$PYTHON
  where="the interpreter $PY"
else
  if [ ! -x .venv/bin/python ]; then
    if ! python3 -m venv .venv >/dev/null 2>&1; then
      rm -rf .venv
      pyver=$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
      apt_install "python3 -m venv" "python$pyver-venv" || apt_install "python3 -m venv" python3-venv || exit 1
      python3 -m venv .venv
    fi
  fi
  PY=.venv/bin/python
  where="the virtual environment .venv"
fi
if ! $PY -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
  echo "install.sh: uniwav needs Python 3.10 or newer; $PY is $($PY --version 2>&1)" >&2
  exit 1
fi

$PY -m pip install -q --upgrade pip
if ! $PY -c "import torch" >/dev/null 2>&1; then
  $PY -m pip install -q "torch==${UNIWAV_TORCH_VERSION:-2.13.0}"
fi
extra="eval"; [ $dev = 1 ] && extra="dev"
$PY -m pip install -q -c constraints.txt -e ".[$extra]"

if ! conflicts=$($PY -m pip check 2>&1); then
  echo "install.sh: the environment is inconsistent ('pip check'):" >&2
  echo "$conflicts" | sed 's/^/  /' >&2
  echo "install.sh: please report this with the lines above; constraints.txt is where versions are pinned" >&2
  exit 1
fi
echo "install.sh: uniwav installed into $where ($($PY -c 'import torch; print("torch", torch.__version__)'); pip check clean)"
[ -z "${PYTHON:-}" ] && echo "install.sh: run it as .venv/bin/uniwav (or 'source .venv/bin/activate' and then uniwav)"
exit 0
