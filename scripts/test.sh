#!/usr/bin/env bash
# Runs every test of btcml: installs what is missing, builds, starts a throwaway PostgreSQL server, runs the
# GoogleTest suite (ctest) and the tests that drive the real binary (pytest), then stops the server.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"

scripts/pg-test-server.sh start
trap 'scripts/pg-test-server.sh stop' EXIT
BTCML_TEST_POSTGRES_URL=$(scripts/pg-test-server.sh url)
export BTCML_TEST_POSTGRES_URL
export BTCML_BIN="$PWD/build/btcml" BTCML_BUILD_DIR="$PWD/build"
export BTCML_SHARED_DATA=${BTCML_SHARED_DATA:-"$PWD/../shared/data/btc"}
# Tests must never read the developer's own settings or store.
unset BTCML_DB BTCML_HOME BTCML_CONFIG BTCML_TRACKING_URI

status=0
(cd build && ctest --output-on-failure -j2 --timeout 900) || status=1
.venv/bin/python -m pytest -q tests/e2e tests/faults tests/prometheus || status=1
exit $status
