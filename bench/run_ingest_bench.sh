#!/usr/bin/env bash
# The ingest benchmark: btcml's CSV parsing against pandas.read_csv, pyarrow, polars and DuckDB with the same
# threads, and btcml's loads into SQLite and PostgreSQL against `psql \copy` of the same rows into the same table.
# Prints one JSON object on stdout and a table on stderr.
#   bench/run_ingest_bench.sh            (after building: cmake --build build --target btcml bench_ingest)
# Environment: ROWS (2000000), REPEAT (3), BUILD (build), THREADS ("1 2": the thread counts of the parsing runs),
# PARSE_ONLY (1: skip the loads), PYTHON (default .venv-ingest/bin/python, created from bench/requirements-ingest.txt
# when missing), DATA (/tmp/btcml-bench: the generated files and stores; never in the repository),
# BTCML_BENCH_POSTGRES_URL (a server to use; by default scripts/pg-test-server.sh starts a throwaway one and stops
# it afterwards).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
rows=${ROWS:-2000000}
repeat=${REPEAT:-3}
build=${BUILD:-$root/build}
threads=${THREADS:-1 2}
python=${PYTHON:-}
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
[ -n "${PARSE_ONLY:-}" ] || command -v psql >/dev/null || { echo "run_ingest_bench: psql not found" >&2; exit 1; }
if [ -z "$python" ]; then
    python=$root/.venv-ingest/bin/python
    if [ ! -x "$python" ]; then
        echo "installing the baselines into $root/.venv-ingest (bench/requirements-ingest.txt)" >&2
        python3 -m venv "$root/.venv-ingest" && "$root/.venv-ingest/bin/pip" install -q -r "$root/bench/requirements-ingest.txt" ||
            { echo "run_ingest_bench: could not install bench/requirements-ingest.txt into .venv-ingest" >&2; exit 1; }
    fi
fi

if [ ! -s "$kaggle" ] || [ ! -s "$bars" ]; then
    echo "generating $rows rows into $data" >&2
    "$python" "$root/bench/ingest_baselines.py" generate "$kaggle" "$bars" --rows "$rows"
fi

parse_args=()
readers_args=()
for t in $threads; do
    echo "parsing with $t thread(s): btcml, then pandas, pyarrow, polars, DuckDB" >&2
    "$build/bench_ingest" "$kaggle" --repeat "$repeat" --threads "$t" >"$data/parse-$t.json"
    "$python" "$root/bench/ingest_baselines.py" readers "$kaggle" --threads "$t" --repeat "$repeat" >"$data/readers-$t.json"
    parse_args+=("$data/parse-$t.json")
    readers_args+=("$data/readers-$t.json")
done
if [ -n "${PARSE_ONLY:-}" ]; then
    exec "$python" "$root/bench/ingest_baselines.py" report --parse "${parse_args[@]}" --readers "${readers_args[@]}"
fi

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

"$python" "$root/bench/ingest_baselines.py" report --parse "${parse_args[@]}" --readers "${readers_args[@]}" --runs "$runs"
