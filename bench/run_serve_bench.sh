#!/usr/bin/env bash
# Serving benchmark: wrk on loopback, 256 keep-alive connections for 20 s each, against
#   1. btcml serve, GET /api/v1/forecast (the cached champion forecast),
#   2. nginx serving the same forecast body as a static file (the reference, same run, same machine),
#   3. btcml serve, POST /api/v1/predict (the model runs per request; a wrk Lua script sends the window),
#   4. the same model exported (`btcml models export`) behind FastAPI + uvicorn, one worker per core, run by
#      PyTorch and then by ONNX Runtime (bench/predict_baselines.py), the same body and wrk script,
# then the resident memory of each server. Prints a Markdown table.
# Usage: bench/run_serve_bench.sh [build/btcml]   env: DURATION=20s CONNECTIONS=256 THREADS=1 (server threads and
# nginx workers) WRK_THREADS=1 WRK_TIMEOUT=30s (wrk counts a slower answer as an error) PREDICT_BASELINES=1 (0: skip step 4) PREDICT_PYTHON (default .venv-predict/bin/python,
# created from bench/requirements-predict.txt when missing)
set -euo pipefail
cd "$(dirname "$0")/.."
btcml=$(realpath "${1:-build/btcml}")
duration=${DURATION:-20s}
connections=${CONNECTIONS:-256}
threads=${THREADS:-1}
wrk_threads=${WRK_THREADS:-1}
# FastAPI + PyTorch answers 256 queued connections in seconds; wrk's default of 2 s would count every answer as an
# error and leave no latency to report.
wrk_timeout=${WRK_TIMEOUT:-30s}
baselines=${PREDICT_BASELINES:-1}
for tool in wrk nginx curl python3; do
    command -v "$tool" >/dev/null || { echo "run_serve_bench: $tool is missing (scripts/install-deps.sh)" >&2; exit 1; }
done
predict_python=${PREDICT_PYTHON:-$PWD/.venv-predict/bin/python}
if [ "$baselines" = 1 ] && [ -z "${PREDICT_PYTHON:-}" ] && [ ! -x "$predict_python" ]; then
    echo "installing the FastAPI baselines into .venv-predict (bench/requirements-predict.txt)" >&2
    /usr/bin/python3 -m venv --system-site-packages .venv-predict && .venv-predict/bin/pip install -q -r bench/requirements-predict.txt ||
        { echo "run_serve_bench: could not install bench/requirements-predict.txt into .venv-predict" >&2; exit 1; }
fi
if [ "$baselines" = 1 ]; then
    "$predict_python" -c 'import fastapi, uvicorn, uvloop, httptools, torch, onnxruntime, onnx' ||
        { echo "run_serve_bench: $predict_python lacks a baseline module (bench/requirements-predict.txt, python3-torch)" >&2; exit 1; }
fi

work=$(mktemp -d /tmp/btcml-serve-bench.XXXXXX)
chmod 755 "$work" # nginx started by root runs its workers as nobody, who must read the static file
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 200); do curl -fs "$1" >/dev/null && return 0; sleep 0.05; done; echo "no answer from $1" >&2; exit 1; }

echo "preparing a store and a model under $work ..." >&2
home=$work/home
"$btcml" --home "$home" ingest synthetic:42 >/dev/null
# The default architecture (2 layers of 64), trained briefly: the speed of a forward pass does not depend on
# how well the weights were fitted.
"$btcml" --home "$home" train --symbol BTCUSD-SYNTH --epochs 1 --samples-per-epoch 256 >/dev/null 2>&1

port=$(free_port)
"$btcml" --home "$home" --log-format json serve --port "$port" --threads "$threads" >"$work/serve.out" 2>"$work/serve.log" &
server_pid=$!
pids+=("$server_pid")
base=http://127.0.0.1:$port
wait_http "$base/healthz"
curl -fs "$base/api/v1/forecast" >"$work/forecast.json"
window=$(python3 - "$base" <<'PY'
import json, sys, urllib.request
from datetime import datetime, timedelta
base = sys.argv[1]
f = json.load(urllib.request.urlopen(base + "/api/v1/forecast"))
card = json.load(urllib.request.urlopen(f"{base}/api/v1/models/{f['model_version']}"))
# The window the forecast used: window + 1 hourly bars ending at as_of.
start = datetime.strptime(f["as_of"], "%Y-%m-%dT%H:%M:%SZ") - timedelta(hours=card["window"])
page = json.load(urllib.request.urlopen(f"{base}/api/v1/bars?from={start:%Y-%m-%dT%H:%M:%SZ}"))
body = {"symbol": f["symbol"], "interval": f["interval"], "bars": page["bars"]}
print(json.dumps(body))
PY
)
printf '%s' "$window" >"$work/window.json"
cat >"$work/predict.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("$work/window.json", "r")
wrk.body = f:read("*a")
f:close()
LUA
curl -fs -X POST -H 'Content-Type: application/json' --data-binary @"$work/window.json" "$base/api/v1/predict" \
    >"$work/btcml_window_answer.json"

# nginx as a non-root user of a temp dir, one worker per server thread, logging every request as btcml does.
nginx_port=$(free_port)
mkdir -p "$work/nginx/root/api/v1" "$work/nginx/tmp"
cp "$work/forecast.json" "$work/nginx/root/api/v1/forecast"
cat >"$work/nginx/nginx.conf" <<NGINX
worker_processes $threads;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log $work/nginx/access.log;
    client_body_temp_path $work/nginx/tmp;
    proxy_temp_path $work/nginx/tmp;
    fastcgi_temp_path $work/nginx/tmp;
    uwsgi_temp_path $work/nginx/tmp;
    scgi_temp_path $work/nginx/tmp;
    keepalive_requests 1000000;
    default_type application/json;
    server {
        listen 127.0.0.1:$nginx_port;
        root $work/nginx/root;
    }
}
NGINX
nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" -e "$work/nginx/error.log" 2>"$work/nginx/stderr" &
pids+=($!)
wait_http "http://127.0.0.1:$nginx_port/api/v1/forecast"
cmp -s <(curl -fs "http://127.0.0.1:$nginx_port/api/v1/forecast") "$work/forecast.json" || { echo "nginx body differs" >&2; exit 1; }

run_wrk() { # name url [lua]
    local name=$1 url=$2 script=${3:-}
    local args=(-t"$wrk_threads" -c"$connections" -d"$duration" --timeout "$wrk_timeout" --latency)
    [ -n "$script" ] && args+=(-s "$script")
    wrk "${args[@]}" "$url" >"$work/$name.wrk"
    python3 - "$name" "$work/$name.wrk" <<'PY'
import re, sys
name, text = sys.argv[1], open(sys.argv[2]).read()
def latency(p):
    m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    return float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
total = int(re.search(r"(\d+) requests in", text).group(1))
errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", text))
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
errors += int(non2xx.group(1)) if non2xx else 0
print(f"{name}\t{rps:.0f}\t{latency(50):.3f}\t{latency(99):.3f}\t{total}\t{errors}")
PY
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
results=$(
    run_wrk btcml_forecast "$base/api/v1/forecast"
    run_wrk nginx_static "http://127.0.0.1:$nginx_port/api/v1/forecast"
    run_wrk btcml_predict "$base/api/v1/predict" "$work/predict.lua"
)
rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$server_pid/status")
hwm_kb=$(awk '/VmHWM/ {print $2}' "/proc/$server_pid/status")
kill -TERM "$server_pid"
wait "$server_pid" && server_exit=0 || server_exit=$?
memory="btcml serve RSS after the run: $((rss_kb / 1024)) MiB (peak $((hwm_kb / 1024)) MiB); exit status after SIGTERM: $server_exit"

if [ "$baselines" = 1 ]; then
    # The same model, exported, behind FastAPI; btcml serve is stopped so that they do not share the cores.
    version=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["model_version"])' "$work/forecast.json")
    horizons=$(python3 -c 'import json,sys; print(",".join(str(f["horizon"]) for f in json.load(open(sys.argv[1]))["forecasts"]))' "$work/forecast.json")
    "$btcml" --home "$home" models export "$version" --symbol BTCUSD-SYNTH --out "$work/export" >/dev/null
    "$predict_python" bench/predict_baselines.py check "$work/export" >/dev/null
    for runtime in torch onnx; do
        port=$(free_port)
        "$predict_python" bench/predict_baselines.py serve "$work/export" --runtime "$runtime" --port "$port" \
            --workers "$(nproc)" --horizons "$horizons" --model-version "$version" 2>"$work/fastapi_$runtime.log" &
        baseline_pid=$!
        pids+=("$baseline_pid")
        url=http://127.0.0.1:$port/api/v1/predict
        for _ in $(seq 600); do
            curl -fs -X POST -H 'Content-Type: application/json' --data-binary @"$work/window.json" "$url" \
                >"$work/fastapi_$runtime.json" 2>/dev/null && break
            kill -0 "$baseline_pid" 2>/dev/null || { cat "$work/fastapi_$runtime.log" >&2; exit 1; }
            sleep 0.1
        done
        [ -s "$work/fastapi_$runtime.json" ] ||
            { echo "run_serve_bench: FastAPI + $runtime did not answer within a minute" >&2; exit 1; }
        # The same forecast as btcml's (the median; btcml's interval is also calibrated online).
        python3 - "$work/btcml_window_answer.json" "$work/fastapi_$runtime.json" <<'PY'
import json, sys
ours, theirs = (json.load(open(p))["forecasts"] for p in sys.argv[1:])
for a, b in zip(ours, theirs):
    assert a["horizon"] == b["horizon"] and abs(a["price"] - b["price"]) <= 1e-4 * a["price"], (a, b)
PY
        results+=$'\n'$(run_wrk "fastapi_$runtime" "$url" "$work/predict.lua")
        kb=0
        for pid in "$baseline_pid" $(pgrep -P "$baseline_pid"); do
            kb=$((kb + $(awk '/VmRSS/ {print $2}' "/proc/$pid/status")))
        done
        memory+=$'\n'"FastAPI + $runtime RSS after the run, all $(($(pgrep -cP "$baseline_pid") + 1)) processes: $((kb / 1024)) MiB"
        kill -TERM "$baseline_pid"
        wait "$baseline_pid" || true
    done
fi
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

echo "| target | requests/s | p50 ms | p99 ms | requests | errors |"
echo "|---|---:|---:|---:|---:|---:|"
echo "$results" | awk -F'\t' '{printf "| %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6}'
echo
echo "$results" | awk -F'\t' '
    $1 == "btcml_forecast" {f = $2; fp = $4} $1 == "nginx_static" {n = $2; np = $4}
    $1 == "btcml_predict" {p = $2} $1 == "fastapi_torch" {t = $2} $1 == "fastapi_onnx" {o = $2}
    END {
        printf "forecast / nginx: %.2fx requests/s, p99 %.2fx\n", f / n, fp / np
        if (t) printf "predict / FastAPI + PyTorch: %.2fx requests/s (target >= 10x)\n", p / t
        if (o) printf "predict / FastAPI + ONNX Runtime: %.2fx requests/s (goal >= 3x)\n", p / o
    }'
echo "$memory"
echo "setup: $connections connections, wrk $wrk_threads thread(s) (timeout $wrk_timeout), btcml --threads $threads (predict on its worker pool)," \
     "nginx $threads worker(s), FastAPI: uvicorn $(nproc) workers, $duration each;" \
     "forecast body $(wc -c <"$work/forecast.json") bytes; load average before $load_before, after $load_after; $(nproc) cores"
