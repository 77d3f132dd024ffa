#!/usr/bin/env bash
# Copies the pinned charting library (package-lock.json) into assets/vendor/, which is committed:
# cargo build embeds assets/ and needs no npm. Rerun after changing the version in package.json.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --ignore-scripts --no-audit --no-fund
version=$(node -p 'require("./node_modules/uplot/package.json").version')
dest="assets/vendor/uplot-$version"
rm -rf assets/vendor/uplot-*
mkdir -p "$dest"
cp node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css \
   node_modules/uplot/LICENSE "$dest/"
# index.html names the versioned directory: point it at this one, or a bump would 404.
sed -i "s#/ui/vendor/uplot-[0-9][0-9.]*/#/ui/vendor/uplot-$version/#g" assets/index.html
grep -q "/ui/vendor/uplot-$version/" assets/index.html ||
    { echo "error: assets/index.html does not load uplot-$version" >&2; exit 1; }
echo "vendored uPlot $version into $dest (and assets/index.html)"
