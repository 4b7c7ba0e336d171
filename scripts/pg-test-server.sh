#!/usr/bin/env bash
# Runs a throwaway PostgreSQL server for tests and CI: trust auth, 127.0.0.1 only, a free private port.
#   pg-test-server.sh start   start it (idempotent, silent, waits until it accepts connections)
#   pg-test-server.sh url     print postgresql://postgres@127.0.0.1:PORT/btcml_test
#   pg-test-server.sh stop    stop it and delete its data directory
# State lives in ${BTCML_PG_DIR:-/tmp/btcml-pg-$UID}. As root the server runs as the `postgres` OS user
# (PostgreSQL refuses root), so that directory must be reachable by that user. Durability is switched off:
# this server holds test data only.
set -euo pipefail

dir=${BTCML_PG_DIR:-/tmp/btcml-pg-$(id -u)}
data=$dir/data
db=btcml_test

bindir=/usr/lib/postgresql/15/bin
if [ ! -x "$bindir/pg_ctl" ]; then
    bindir=$(dirname "$(command -v pg_ctl || echo /nonexistent/pg_ctl)")
    [ -x "$bindir/pg_ctl" ] || { echo "pg-test-server: PostgreSQL server binaries not found (apt-get install postgresql)" >&2; exit 1; }
fi

as_server_user() {
    if [ "$(id -u)" -eq 0 ]; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

running() { [ -f "$data/postmaster.pid" ] && as_server_user "$bindir/pg_ctl" status -D "$data" >/dev/null 2>&1; }

port() { cat "$dir/port"; }

fail() {
    echo "pg-test-server: $1" >&2
    local f
    for f in "$dir/initdb.log" "$dir/server.log"; do
        [ -f "$f" ] && tail -n 20 "$f" >&2
    done
    exit 1
}

# A port nothing listens on; the server start below is the real test, and is retried if it loses a race.
candidate_port() {
    local p
    for _ in $(seq 1 50); do
        p=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return
        fi
    done
    fail "no free port found"
}

start() {
    if running; then
        return
    fi
    mkdir -p "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
    chmod 700 "$dir"
    if [ ! -f "$data/PG_VERSION" ]; then
        as_server_user "$bindir/initdb" -D "$data" -U postgres -A trust -E UTF8 --locale=C --no-sync \
            >"$dir/initdb.log" 2>&1 || fail "initdb failed"
    fi
    local p started=0
    for _ in 1 2 3 4 5; do
        p=$(candidate_port)
        if as_server_user "$bindir/pg_ctl" start -w -t 60 -D "$data" -l "$dir/server.log" \
            -o "-p $p -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
            >/dev/null 2>&1; then
            started=1
            break
        fi
    done
    [ "$started" -eq 1 ] || fail "the server did not start"
    echo "$p" >"$dir/port"
    for _ in $(seq 1 100); do
        pg_isready -q -h 127.0.0.1 -p "$p" && break
        sleep 0.1
    done
    pg_isready -q -h 127.0.0.1 -p "$p" || fail "the server does not accept connections"
    if ! psql -h 127.0.0.1 -p "$p" -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'" |
        grep -q 1; then
        psql -h 127.0.0.1 -p "$p" -U postgres -d postgres -qc "CREATE DATABASE $db" >/dev/null || fail "createdb failed"
    fi
}

stop() {
    if running; then
        as_server_user "$bindir/pg_ctl" stop -D "$data" -m fast -w >/dev/null 2>&1 || fail "the server did not stop"
    fi
    rm -rf "$dir"
}

url() {
    running || { echo "pg-test-server: not running (run: $0 start)" >&2; exit 1; }
    echo "postgresql://postgres@127.0.0.1:$(port)/$db"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
url) url ;;
*)
    echo "usage: $0 start|stop|url" >&2
    exit 2
    ;;
esac
