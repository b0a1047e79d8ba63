#!/usr/bin/env bash
# Real datasets that a package registry ships, for the default (quick) reproduction offline:
# Debian's dataset-fashion-mnist (60,000 + 10,000 images, the idx files as distributed, under
# /usr/share/datasets/fashion-mnist). Idempotent: does nothing when it is there. Without root or
# apt-get it only says what to install; the quick scale then falls back to the 4,000 bundled
# MNIST digits (scales.quick.fallback), on which Keskar's headline claims cannot be tested.
set -euo pipefail
package=dataset-fashion-mnist
if [ -d /usr/share/datasets/fashion-mnist ] || { command -v dpkg >/dev/null && dpkg -s $package >/dev/null 2>&1; }; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing $package with apt-get (Fashion-MNIST for the default reproduction)"
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends $package >/dev/null; }; then
    echo "note: could not install $package; the quick scale will use the 4,000 bundled MNIST digits" >&2
  fi
else
  echo "note: Fashion-MNIST is not installed; for the default reproduction run: sudo apt-get install $package (or put its idx files in data/FashionMNIST/raw)" >&2
fi
