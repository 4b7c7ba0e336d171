#!/usr/bin/env bash
# The ingest benchmark: btcml's CSV parsing against pandas.read_csv, and btcml's loads into SQLite and PostgreSQL
# against `psql \copy` of the same rows into the same table. Prints one JSON object on stdout and a table on stderr.
#   bench/run_ingest_bench.sh            (after building: cmake --build build)
# Environment: ROWS (2000000), REPEAT (3), BUILD (build), PYTHON (python3, needs pandas and numpy),
# DATA (/tmp/btcml-bench: the generated files and stores; never in the repository), BTCML_BENCH_POSTGRES_URL
# (a server to use; by default scripts/pg-test-server.sh starts a throwaway one and stops it afterwards).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
rows=${ROWS:-2000000}
repeat=${REPEAT:-3}
build=${BUILD:-$root/build}
python=${PYTHON:-python3}
data=${DATA:-/tmp/btcml-bench}
btcml=$build/btcml
mkdir -p "$data"
kaggle=$data/kaggle-$rows.csv
bars=$data/bars-$rows.csv
runs=$data/runs.jsonl
: >"$runs"

for tool in "$btcml" "$build/bench_ingest"; do
    [ -x "$tool" ] || { echo "run_ingest_bench: $tool not built (cmake --build $build)" >&2; exit 1; }
done
command -v psql >/dev/null || { echo "run_ingest_bench: psql not found" >&2; exit 1; }

if [ ! -s "$kaggle" ] || [ ! -s "$bars" ]; then
    echo "generating $rows rows into $data" >&2
    "$python" "$root/bench/ingest_baselines.py" generate "$kaggle" "$bars" --rows "$rows"
fi

echo "parsing: btcml, then pandas" >&2
"$build/bench_ingest" "$kaggle" --repeat "$repeat" >"$data/parse.json"
"$python" "$root/bench/ingest_baselines.py" pandas "$kaggle" --repeat "$repeat" >"$data/pandas.json"

now() { date +%s.%N; }

# Runs a command under /usr/bin/time; appends {kind, rows, seconds, peak_rss_kb} to the runs file.
timed() {
    local kind=$1 rows_done=$2
    shift 2
    local started ended
    started=$(now)
    /usr/bin/time -f %M -o "$data/rss" "$@" >/dev/null
    ended=$(now)
    printf '{"kind": "%s", "rows": %s, "seconds": %s, "peak_rss_kb": %s}\n' "$kind" "$rows_done" \
        "$(awk -v a="$started" -v b="$ended" 'BEGIN { printf "%.6f", b - a }')" "$(tail -n 1 "$data/rss")" >>"$runs"
}

inserted() { "$btcml" --log-level warn "$@" series --json | "$python" -c 'import json,sys; print(sum(s["bars"] for s in json.load(sys.stdin)["series"]))'; }

echo "loading into SQLite" >&2
for _ in $(seq "$repeat"); do
    rm -rf "$data/home"
    mkdir -p "$data/home"
    timed btcml_sqlite "$rows" "$btcml" --log-level warn --home "$data/home" ingest "$kaggle" --json
    [ "$(inserted --home "$data/home")" -eq "$rows" ] || { echo "run_ingest_bench: SQLite holds the wrong count" >&2; exit 1; }
done

started_pg=0
if [ -z "${BTCML_BENCH_POSTGRES_URL:-}" ]; then
    if ! "$root/scripts/pg-test-server.sh" url >/dev/null 2>&1; then
        "$root/scripts/pg-test-server.sh" start
        started_pg=1
    fi
    BTCML_BENCH_POSTGRES_URL=$("$root/scripts/pg-test-server.sh" url)
fi
[ "$started_pg" -eq 1 ] && trap '"$root/scripts/pg-test-server.sh" stop' EXIT
server=${BTCML_BENCH_POSTGRES_URL%/*}
bench_db=btcml_bench_ingest
export PGOPTIONS='-c client_min_messages=warning'

echo "loading into PostgreSQL: btcml and psql \\copy, alternating" >&2
for i in $(seq "$repeat"); do
    # A fresh database each time, migrated before the clock starts; bars_copy is btcml's bars table re-created
    # with the same columns, types, defaults and primary key.
    psql "$server/postgres" -qX -c "DROP DATABASE IF EXISTS $bench_db" -c "CREATE DATABASE $bench_db" >/dev/null
    url=$server/$bench_db
    "$btcml" --log-level warn --db "$url" series --json >/dev/null
    psql "$url" -qX -c "CREATE TABLE bars_copy (LIKE bars INCLUDING ALL)"
    timed btcml_postgres "$rows" "$btcml" --log-level warn --db "$url" ingest "$kaggle" --json
    timed psql_copy "$rows" psql "$url" -qX -c "\\copy bars_copy FROM '$bars' CSV HEADER"
    if [ "$i" -eq "$repeat" ]; then
        # Both tables must hold the same rows, bit for bit.
        differ=$(psql "$url" -qXtA -c "SELECT (SELECT count(*) FROM bars) - $rows + (SELECT count(*) FROM bars_copy) - $rows
            + (SELECT count(*) FROM (SELECT * FROM bars EXCEPT SELECT * FROM bars_copy) d)")
        [ "$differ" -eq 0 ] || { echo "run_ingest_bench: bars and bars_copy differ" >&2; exit 1; }
    fi
done
psql "$server/postgres" -qX -c "DROP DATABASE IF EXISTS $bench_db" >/dev/null

"$python" "$root/bench/ingest_baselines.py" report "$data/parse.json" "$data/pandas.json" "$runs"
