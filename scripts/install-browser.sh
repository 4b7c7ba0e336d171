#!/usr/bin/env bash
# Installs Debian's Chromium for the dashboard's browser tests (tests/e2e/test_dashboard.py drives it through
# playwright-core from web/package.json). Idempotent; works as root or through sudo.
set -euo pipefail
command -v chromium >/dev/null && exit 0
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get -o DPkg::Lock::Timeout=600 update -qq
"${sudo_cmd[@]}" apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
