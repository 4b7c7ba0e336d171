#!/usr/bin/env bash
# The closed loop's own speed, on real hourly bars (Binance BTCUSDT from ../shared/data/btc): two years ingested and a
# champion trained with the default hyperparameters, then `btcml serve --scheduler` replays the following bars at
# one bar every SECONDS_PER_BAR seconds. Measures, per tick, the time from the new bar stored (the tick's ingest task
# done) to its forecast stored, the matured forecasts scored and /metrics showing the new scores (a poller reads
# /metrics every 5 ms); then queues a retrain through the API and reports its time (train on all stored bars, gate,
# reload). Prints a Markdown report on stdout.
# Usage: bench/run_loop_bench.sh [build/btcml]   env: TICKS=30 SECONDS_PER_BAR=2 DATA=<the Binance 1h file>
set -euo pipefail
cd "$(dirname "$0")/.."
btcml=$(realpath "${1:-build/btcml}")
ticks=${TICKS:-30}
seconds_per_bar=${SECONDS_PER_BAR:-2}
data=${DATA:-$(realpath ../shared/data/btc/binance_btcusdt_1h_2017-08-17_2023-12-20.csv)}
for tool in curl python3; do
    command -v "$tool" >/dev/null || { echo "run_loop_bench: $tool is missing" >&2; exit 1; }
done
[ -r "$data" ] || { echo "run_loop_bench: $data is not readable (set DATA)" >&2; exit 1; }
work=$(mktemp -d /tmp/btcml-loop-bench.XXXXXX)
server_pid=
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

home=$work/home
echo "ingesting 2021-2022 and training a champion (default hyperparameters) under $work ..." >&2
"$btcml" --home "$home" ingest "$data" --symbol BTCUSD --interval 1h --from 2021-01-01T00:00:00Z \
    --to 2022-12-31T23:00:00Z --json >"$work/ingest.json"
train_start=$(date +%s.%N)
"$btcml" --home "$home" train --symbol BTCUSD --interval 1h --json >"$work/train.json"
train_seconds=$(python3 -c "print(f'{$(date +%s.%N) - $train_start:.1f}')")
cat >"$home/config.yaml" <<YAML
series:
  - symbol: BTCUSD
    interval: 1h
    source: "replay:$data"
pipelines:
  retrain_every: never
replay_speed: $((3600 / seconds_per_bar))
replay_start: 2023-01-01T00:00:00Z
YAML
port=$(free_port)
"$btcml" --home "$home" --log-format json serve --port "$port" --threads 2 --poll-ms 200 --scheduler \
    --api-key bench >"$work/serve.out" 2>"$work/serve.log" &
server_pid=$!
python3 - "http://127.0.0.1:$port" "$ticks" "$seconds_per_bar" "$work" "$train_seconds" <<'PY'
import json, re, statistics, sys, time, urllib.request
from datetime import datetime, timezone

base, ticks, seconds_per_bar, work, train_seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5]
ms = lambda iso: datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp() * 1000
get = lambda path: urllib.request.urlopen(base + path, timeout=30).read().decode()
for _ in range(400):
    try:
        get("/healthz")
        break
    except OSError:
        time.sleep(0.05)
scored = re.compile(r'^btcml_live_scored_forecasts\{[^}]*window="24h"[^}]*\} (\S+)$', re.M)
changes, last = [], None  # (wall ms, total scored in the 24h windows) at each change seen on /metrics
deadline = time.time() + ticks * seconds_per_bar + 5
while time.time() < deadline:
    total = sum(float(v) for v in scored.findall(get("/metrics")))
    if total != last:
        changes.append((time.time() * 1000, total))
        last = total
    time.sleep(0.005)
runs = json.loads(get("/api/v1/pipelines/tick-BTCUSD-1h/runs?limit=100"))["runs"]
latency, forecast_score = [], []
for run in runs:
    tasks = {t["task"]: t for t in run["tasks"] if t["status"] == "succeeded"}
    if set(tasks) != {"ingest", "forecast", "score"} or not tasks["score"]["detail"].get("scored"):
        continue
    stored = ms(tasks["ingest"]["finished_at"])
    seen = next((t for t, _ in changes[1:] if t >= stored), None)
    if seen is None:
        continue
    latency.append(seen - stored)
    forecast_score.append(ms(tasks["score"]["finished_at"]) - stored)
if not latency:
    sys.exit(f"no tick scored anything: {runs[:2]}")
req = urllib.request.Request(base + "/api/v1/pipelines/retrain-BTCUSD-1h/runs", method="POST",
                             data=json.dumps({"reason": "benchmark"}).encode(),
                             headers={"X-API-Key": "bench", "Content-Type": "application/json"})
run_id = json.loads(urllib.request.urlopen(req, timeout=30).read())["run"]["id"]
while True:
    run = next(r for r in json.loads(get("/api/v1/pipelines/retrain-BTCUSD-1h/runs"))["runs"] if r["id"] == run_id)
    if run["status"] not in ("queued", "running"):
        break
    time.sleep(0.2)
durations = {t["task"]: t["seconds"] for t in run["tasks"]}
q = lambda xs, p: sorted(xs)[min(len(xs) - 1, int(p * len(xs)))]
ingest = json.load(open(f"{work}/ingest.json"))
print(f"Ticks measured: {len(latency)} of {len(runs)} (those that scored matured forecasts); {ingest['rows_inserted']} "
      f"hourly bars stored before the replay, {train_seconds} s to train the first champion.\n")
print("| measure | median | p95 | max |")
print("|---|---:|---:|---:|")
print(f"| new bar stored -> forecast stored and matured forecasts scored (ms) | {statistics.median(forecast_score):.0f} | "
      f"{q(forecast_score, .95):.0f} | {max(forecast_score):.0f} |")
print(f"| new bar stored -> /metrics shows the new scores (ms) | {statistics.median(latency):.0f} | "
      f"{q(latency, .95):.0f} | {max(latency):.0f} |")
print(f"\nRetrain queued through the API: {run['status']}, {run['seconds']:.1f} s "
      f"from claimed to done (train {durations.get('train', 0):.1f} s, gate {durations.get('gate', 0):.2f} s, "
      f"reload {durations.get('reload', 0):.2f} s); promoted: {run['result'].get('gate', {}).get('promoted')}")
PY
echo
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); serve --threads 2 --scheduler; $btcml"
