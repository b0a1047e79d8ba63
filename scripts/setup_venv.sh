#!/usr/bin/env bash
# Create .venv with Python 3.11, 3.12 or 3.13 and install lbgap with its pinned dependencies;
# requirements.lock pins the whole tree, so two installs get the same versions.
# On a fresh Debian machine the venv module may be missing (package python3-venv): as root we
# install it with apt-get, otherwise we say which package to install.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
supported() { "$1" -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 13))' 2>/dev/null; }

if [ -z "${PYTHON:-}" ]; then
  for candidate in python3 python3.13 python3.12 python3.11; do
    if command -v "$candidate" >/dev/null && supported "$candidate"; then
      PYTHON=$(command -v "$candidate")
      break
    fi
  done
fi
if [ -z "${PYTHON:-}" ]; then
  echo "error: lbgap needs Python 3.11, 3.12 or 3.13 and none was found (Debian: apt-get install python3)" >&2
  exit 1
fi
if ! supported "$PYTHON"; then
  echo "error: lbgap needs Python 3.11, 3.12 or 3.13, $PYTHON is $("$PYTHON" -V 2>&1); set PYTHON=/path/to/python3.13" >&2
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
"$VENV/bin/python" -m pip install --quiet -c requirements.lock -e '.[dev]'
touch "$VENV/.installed"
echo "lbgap installed in $VENV ($("$VENV/bin/python" -V))"
