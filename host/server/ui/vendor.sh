#!/usr/bin/env bash
# Copies the pinned libraries (package-lock.json: uPlot for charts, markdown-it for descriptions)
# into assets/vendor/, which is committed:
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
sed -i "s#ui/vendor/uplot-[0-9][0-9.]*/#ui/vendor/uplot-$version/#g" assets/index.html
grep -q "ui/vendor/uplot-$version/" assets/index.html ||
    { echo "error: assets/index.html does not load uplot-$version" >&2; exit 1; }
echo "vendored uPlot $version into $dest (and assets/index.html)"

# markdown-it's browser build bundles its dependencies: their licences go beside it. markdown.js
# imports it by its versioned path.
md_version=$(node -p 'require("./node_modules/markdown-it/package.json").version')
md_dest="assets/vendor/markdown-it-$md_version"
rm -rf assets/vendor/markdown-it-*
mkdir -p "$md_dest"
# Without its source map (not vendored), so no browser asks for it.
sed '/^\/\/# sourceMappingURL=/d' node_modules/markdown-it/dist/browser/markdown-it.esm.min.mjs >"$md_dest/markdown-it.min.js"
{
    for pkg in markdown-it entities linkify-it mdurl uc.micro punycode.js; do
        echo "== $pkg $(node -p "require('./node_modules/$pkg/package.json').version") =="
        cat node_modules/$pkg/LICENSE*
        echo
    done
} >"$md_dest/LICENSE"
sed -i "s#vendor/markdown-it-[0-9][0-9.]*/#vendor/markdown-it-$md_version/#g" assets/markdown.js
grep -q "vendor/markdown-it-$md_version/" assets/markdown.js ||
    { echo "error: assets/markdown.js does not import markdown-it-$md_version" >&2; exit 1; }
echo "vendored markdown-it $md_version into $md_dest (and assets/markdown.js)"
