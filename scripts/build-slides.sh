#!/usr/bin/env bash
# Builds docs/slides/btcml.md into a PDF with Marp (pinned by docs/slides/package-lock.json, installed by
# scripts/install-slides.sh) and Debian's chromium: scripts/build-slides.sh [OUT.pdf] (default build/slides/btcml.pdf).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/build/slides/btcml.pdf}
marp=$root/docs/slides/node_modules/.bin/marp
[ -x "$marp" ] || { echo "build-slides: $marp is missing: run scripts/install-slides.sh" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
# As root Chromium needs --no-sandbox, which Marp adds when CHROME_NO_SANDBOX is set; the architecture diagram is a
# local file (--allow-local-files).
CHROME_PATH=${CHROME_PATH:-/usr/bin/chromium} CHROME_NO_SANDBOX=1 \
    "$marp" --no-stdin --no-config-file --pdf --allow-local-files --browser chrome --browser-timeout 120 \
    -o "$out" "$root/docs/slides/btcml.md"
