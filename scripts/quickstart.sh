#!/usr/bin/env bash
# The main job on embedded defaults: installs what is missing, builds btcml, ingests market data (real hourly
# bars from Binance when the internet is reachable, otherwise the labelled synthetic series) into the SQLite
# store under $BTCML_HOME (default ~/.btcml), shows what was stored, trains a small LSTM forecaster, prints its
# test metrics beside the naive, drift and linear baselines, forecasts the next hours, and serves the API in the
# foreground until Ctrl-C (PORT=8080 by default; SERVE=0 stops before serving, e.g. in scripts).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target btcml
btcml=build/btcml

echo "== ingest"
if $btcml ingest binance:BTCUSDT --symbol BTCUSD --interval 1h 2>/tmp/btcml-quickstart.err; then
    symbol=BTCUSD
else
    echo "(Binance not reachable: $(tail -n1 /tmp/btcml-quickstart.err); using the synthetic series instead)"
    $btcml ingest synthetic:42
    symbol=BTCUSD-SYNTH
fi
echo "== stored series"
$btcml series
echo "== latest bars of $symbol 1h"
$btcml bars --symbol "$symbol" --interval 1h | tail -n 5
echo "== train (small model; metrics on the held-out test part, beside the baselines)"
$btcml train --symbol "$symbol" --interval 1h --epochs 4
echo "== forecast from the latest bars"
$btcml predict
if [ "${SERVE:-1}" = 0 ]; then
    exit 0
fi
port=${PORT:-8080}
echo "== serve: API docs at http://127.0.0.1:$port/docs, forecast at http://127.0.0.1:$port/api/v1/forecast"
echo "   (Ctrl-C stops the server)"
exec $btcml serve --port "$port"
