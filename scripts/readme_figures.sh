#!/usr/bin/env bash
# The README's pictures, from this checkout's finished run (`make readme-figures` runs it first,
# so they show what the pipeline computed): the claims table as Chromium draws it, one figure,
# and the rule graph drawn by graphviz. As root, Debian's chromium and graphviz are installed.
set -euo pipefail
cd "$(dirname "$0")/.."
out=docs/img
scripts/install_test_deps.sh
if ! command -v dot >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing graphviz with apt-get (the rule graph)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null
fi
browser=$(command -v chromium || command -v chromium-browser)
mkdir -p "$out"
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir="$profile" \
  --window-size=1760,1100 --screenshot="$out/claims.png" "file://$PWD/reports/tables/claims.html"
cp reports/figures/keskar2017_training_curves.png "$out/keskar2017_training_curves.png"
snakemake --rulegraph dot reproduce_all --config scale="${SCALE:-quick}" | dot -Tsvg > "$out/rulegraph.svg"
echo "wrote $out/claims.png, $out/keskar2017_training_curves.png, $out/rulegraph.svg"
