#!/usr/bin/env bash
# Serving while the built-in scheduler retrains: wrk on loopback against `btcml serve --scheduler`, first idle, then
# while a retrain queued through POST /api/v1/pipelines/{name}/runs runs in the same process (SCHED_IDLE, at most
# --train-threads cores). Prints requests/s idle and during the retrain, their ratio and the failed requests, for
#   GET /api/v1/forecast (answered on the I/O thread from the cache) and
#   POST /api/v1/predict (the model runs per request on a worker).
# Usage: bench/run_retrain_serve_bench.sh [build/btcml]   env: DURATION=8s CONNECTIONS=64 THREADS=1 (server I/O
# threads) TRAIN_THREADS (default: serve's, half the cores) EPOCHS=6 (of the retrain: long enough to cover the runs)
set -euo pipefail
cd "$(dirname "$0")/.."
btcml=$(realpath "${1:-build/btcml}")
duration=${DURATION:-8s}
connections=${CONNECTIONS:-64}
threads=${THREADS:-1}
epochs=${EPOCHS:-6}
for tool in wrk curl python3; do
    command -v "$tool" >/dev/null || { echo "run_retrain_serve_bench: $tool is missing" >&2; exit 1; }
done
work=$(mktemp -d /tmp/btcml-retrain-bench.XXXXXX)
server_pid=
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 200); do curl -fs "$1" >/dev/null && return 0; sleep 0.05; done; echo "no answer from $1" >&2; exit 1; }

echo "preparing two years of hourly bars and a champion under $work ..." >&2
home=$work/home
"$btcml" --home "$home" ingest synthetic:42 >/dev/null
"$btcml" --home "$home" train --symbol BTCUSD-SYNTH --epochs 1 --samples-per-epoch 256 >/dev/null 2>&1
cat >"$home/config.yaml" <<YAML
series:
  - symbol: BTCUSD-SYNTH
    interval: 1h
pipelines:
  retrain_every: never
  tick_every: 1d
  epochs: $epochs
YAML
port=$(free_port)
extra=()
[ -n "${TRAIN_THREADS:-}" ] && extra=(--train-threads "$TRAIN_THREADS")
"$btcml" --home "$home" --log-format json serve --port "$port" --threads "$threads" --scheduler --api-key bench \
    "${extra[@]}" >"$work/serve.out" 2>"$work/serve.log" &
server_pid=$!
base=http://127.0.0.1:$port
wait_http "$base/healthz"
python3 - "$base" >"$work/window.json" <<'PY'
import json, sys, urllib.request
from datetime import datetime, timedelta
base = sys.argv[1]
f = json.load(urllib.request.urlopen(base + "/api/v1/forecast"))
card = json.load(urllib.request.urlopen(f"{base}/api/v1/models/{f['model_version']}"))
start = datetime.strptime(f["as_of"], "%Y-%m-%dT%H:%M:%SZ") - timedelta(hours=card["window"])
page = json.load(urllib.request.urlopen(f"{base}/api/v1/bars?from={start:%Y-%m-%dT%H:%M:%SZ}"))
print(json.dumps({"symbol": f["symbol"], "interval": f["interval"], "bars": page["bars"]}))
PY
cat >"$work/predict.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-API-Key"] = "bench"
local f = io.open("$work/window.json", "r")
wrk.body = f:read("*a")
f:close()
LUA

# requests/s and failures (non-2xx + socket errors) of one wrk run: "RPS FAILED"
measure() {
    local out
    out=$(wrk -t1 -c"$connections" -d"$duration" "$@")
    python3 - "$out" <<'PY'
import re, sys
out = sys.argv[1]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
failed = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses:\s+(\d+)", out))
m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
failed += sum(int(x) for x in m.groups()) if m else 0
print(f"{rps:.0f} {failed}")
PY
}
run_status() { curl -fs "$base/api/v1/pipelines/retrain-BTCUSD-SYNTH-1h/runs?limit=1" | python3 -c 'import json,sys; r=json.load(sys.stdin)["runs"]; print(r[0]["status"] if r else "none")'; }

echo "idle ..." >&2
read -r idle_get idle_get_failed < <(measure "$base/api/v1/forecast")
read -r idle_post idle_post_failed < <(measure -s "$work/predict.lua" "$base/api/v1/predict")

curl -fs -X POST -H 'X-API-Key: bench' -H 'Content-Type: application/json' -d '{"reason":"benchmark"}' \
    "$base/api/v1/pipelines/retrain-BTCUSD-SYNTH-1h/runs" >/dev/null
for _ in $(seq 300); do [ "$(run_status)" = running ] && break; sleep 0.1; done
started=$(date +%s.%N)
echo "during the retrain ..." >&2
read -r busy_get busy_get_failed < <(measure "$base/api/v1/forecast")
status_after_get=$(run_status)
read -r busy_post busy_post_failed < <(measure -s "$work/predict.lua" "$base/api/v1/predict")
status_after_post=$(run_status)
for _ in $(seq 3000); do s=$(run_status); [ "$s" != running ] && [ "$s" != queued ] && break; sleep 0.2; done
retrain_seconds=$(curl -fs "$base/api/v1/pipelines/retrain-BTCUSD-SYNTH-1h/runs?limit=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["runs"][0]["seconds"])')

echo "| route | idle req/s | during retrain req/s | ratio | failed (idle / during) | retrain still running after |"
echo "|---|---|---|---|---|---|"
python3 - <<PY
for route, idle, busy, fi, fb, st in [("GET /api/v1/forecast", $idle_get, $busy_get, $idle_get_failed, $busy_get_failed, "$status_after_get"),
                                      ("POST /api/v1/predict", $idle_post, $busy_post, $idle_post_failed, $busy_post_failed, "$status_after_post")]:
    print(f"| {route} | {idle} | {busy} | {busy / idle:.0%} | {fi} / {fb} | {'yes' if st == 'running' else 'no (' + st + ')'} |")
PY
echo
echo "retrain (train + gate + reload, $epochs epochs, 2 years of hourly bars): ${retrain_seconds}s; $(nproc) cores, serve --threads $threads, train threads ${TRAIN_THREADS:-half the cores}"
