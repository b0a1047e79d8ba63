#!/usr/bin/env bash
# System packages the test suite needs beyond the venv: Debian's chromium, which renders the
# Snakemake report headless (tests/test_report.py). Idempotent: does nothing when it is there.
# Without root or apt-get it only says what to install; the report test then skips, saying why.
set -euo pipefail
if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing chromium with apt-get (headless rendering of the report in the tests)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null
else
  echo "note: chromium is missing; install it (Debian: sudo apt-get install chromium) to run the report rendering test" >&2
fi
