#!/usr/bin/env bash
# Create .venv with Python 3.11 and install lbgap with its pinned dependencies.
# On a fresh Debian machine the venv module may be missing (package python3-venv): as root we
# install it with apt-get, otherwise we say which package to install.
set -euo pipefail
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3 || true)}

if [ -z "$PYTHON" ]; then
  echo "error: no python3 found; install Python 3.11 (Debian: apt-get install python3)" >&2
  exit 1
fi
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "error: lbgap needs Python 3.11, $PYTHON is $("$PYTHON" -V 2>&1); set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  if ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "installing python3-venv with apt-get (the venv module is missing)"
      apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
    else
      echo "error: Python's venv module is missing; run: sudo apt-get install python3-venv" >&2
      exit 1
    fi
  fi
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e '.[dev]'
touch "$VENV/.installed"
echo "lbgap installed in $VENV"
