#!/usr/bin/env bash
# Installs Marp CLI for the slides (docs/slides/package.json, pinned by its package-lock.json). It drives Debian's
# chromium (scripts/install-browser.sh); no browser is downloaded. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/../docs/slides"
if [ ! -f node_modules/.package-lock.json ] || ! cmp -s package-lock.json node_modules/.btcml-lock; then
    # --ignore-scripts: puppeteer-core needs no install step, and none may download anything.
    npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
    cp package-lock.json node_modules/.btcml-lock
fi
