#!/usr/bin/env bash
# The whole btcml production stack on one machine, from the configuration in deploy/ (docs/operations.md, "The stack
# on one machine"):
#   stack.sh up                  start every component that is not running, in dependency order, each health-checked
#   stack.sh down                stop them in reverse order (SIGTERM, then SIGKILL after a grace period)
#   stack.sh status [--json]     every component with its health; exits 1 if any is down
#   stack.sh logs COMPONENT [-f] the last lines of a component's log (-f: follow it)
#   stack.sh env                 the environment the btcml CLI needs to work on the stack's store (export lines)
#   stack.sh btcml ARGS...       runs the btcml CLI as the stack's user with that environment
# Components: postgres, mlflow, opensearch, alertmanager, prometheus, airflow-api, airflow-scheduler,
# airflow-dag-processor, airflow-triggerer, btcml-serve-1, btcml-serve-2, btcml-scheduler, nginx. Every one listens on
# 127.0.0.1 only. State (data, logs, pid files, secrets, generated configs) lives under STACK_HOME. As root, btcml and
# the services run as the user `btcml` (created if missing) and PostgreSQL as `postgres`; otherwise all run as the
# current user. This script only orchestrates: everything btcml does is in the btcml binary.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEPLOY=$REPO/deploy

if [ "$(id -u)" -eq 0 ]; then
    STACK_HOME=${STACK_HOME:-/var/lib/btcml-stack}
    STACK_USER=${STACK_USER:-btcml}
else
    STACK_HOME=${STACK_HOME:-$HOME/.btcml-stack}
    STACK_USER=$(id -un)
fi
BASE=${STACK_PORT_BASE:-18000}
PORT_NGINX=${STACK_PORT_NGINX:-$BASE}
PORT_SERVE_1=${STACK_PORT_SERVE_1:-$((BASE + 1))}
PORT_SERVE_2=${STACK_PORT_SERVE_2:-$((BASE + 2))}
PORT_POSTGRES=${STACK_PORT_POSTGRES:-$((BASE + 10))}
PORT_MLFLOW=${STACK_PORT_MLFLOW:-$((BASE + 11))}
PORT_PROMETHEUS=${STACK_PORT_PROMETHEUS:-$((BASE + 12))}
PORT_ALERTMANAGER=${STACK_PORT_ALERTMANAGER:-$((BASE + 13))}
PORT_OPENSEARCH=${STACK_PORT_OPENSEARCH:-$((BASE + 14))}
PORT_OPENSEARCH_TRANSPORT=${STACK_PORT_OPENSEARCH_TRANSPORT:-$((BASE + 15))}
PORT_AIRFLOW=${STACK_PORT_AIRFLOW:-$((BASE + 16))}
# The scheduler's and the triggerer's log servers (Airflow binds them to every address: firewall them).
PORT_AIRFLOW_SCHEDULER_LOGS=${STACK_PORT_AIRFLOW_SCHEDULER_LOGS:-$((BASE + 17))}
PORT_AIRFLOW_TRIGGERER_LOGS=${STACK_PORT_AIRFLOW_TRIGGERER_LOGS:-$((BASE + 18))}
# STACK_FAST=1: test timings (scrape and rule evaluation every second, `for:` of 2 s, Alertmanager groups at once)
# so that a degradation reaches Airflow in seconds; CI and demos use it, production does not.
FAST=${STACK_FAST:-0}
START_TIMEOUT=${STACK_START_TIMEOUT:-300}
STOP_GRACE=${STACK_STOP_GRACE:-30}

BTCML_BIN=${STACK_BTCML_BIN:-$( [ -x "$REPO/build/btcml" ] && echo "$REPO/build/btcml" || command -v btcml || true)}
MLFLOW=${STACK_MLFLOW:-$( [ -x "$REPO/.venv/bin/mlflow" ] && echo "$REPO/.venv/bin/mlflow" ||
    command -v mlflow || true)}
AIRFLOW=${STACK_AIRFLOW:-$REPO/.venv-airflow/bin/airflow}
OPENSEARCH_DIR=${STACK_OPENSEARCH_DIR:-$REPO/.cache/opensearch}
PG_BIN=${STACK_PG_BIN:-/usr/lib/postgresql/15/bin}

# btcml-scheduler starts before the replicas: in replay mode each process's clock starts with it, and a replica whose
# clock ran ahead of the scheduler's would see the newest bar as stale (BtcmlDataStale holds back retrain alerts).
COMPONENTS=(postgres mlflow opensearch alertmanager prometheus airflow-api airflow-dag-processor airflow-scheduler
    airflow-triggerer btcml-scheduler btcml-serve-1 btcml-serve-2 nginx)

RUN=$STACK_HOME/run
LOGS=$STACK_HOME/logs
SECRETS=$STACK_HOME/secrets

say() { echo "stack: $*" >&2; }
die() {
    say "$*"
    exit 1
}

is_root() { [ "$(id -u)" -eq 0 ]; }

# Runs a command as the stack's user (root: drops to it; otherwise the current user already is).
as_user() {
    if is_root; then
        setpriv --reuid="$STACK_USER" --regid="$STACK_USER" --init-groups -- "$@"
    else
        "$@"
    fi
}

as_postgres() {
    if is_root; then
        (cd / && setpriv --reuid=postgres --regid=postgres --init-groups -- "$@")
    else
        "$@"
    fi
}

secret() { cat "$SECRETS/$1"; }

url_of() {
    case $1 in
    postgres) echo "postgresql://btcml@127.0.0.1:$PORT_POSTGRES/btcml" ;;
    mlflow) echo "http://127.0.0.1:$PORT_MLFLOW" ;;
    opensearch) echo "http://127.0.0.1:$PORT_OPENSEARCH" ;;
    alertmanager) echo "http://127.0.0.1:$PORT_ALERTMANAGER" ;;
    prometheus) echo "http://127.0.0.1:$PORT_PROMETHEUS" ;;
    airflow-*) echo "http://127.0.0.1:$PORT_AIRFLOW" ;;
    btcml-serve-1) echo "http://127.0.0.1:$PORT_SERVE_1" ;;
    btcml-serve-2) echo "http://127.0.0.1:$PORT_SERVE_2" ;;
    btcml-scheduler) echo "-" ;;
    nginx) echo "http://127.0.0.1:$PORT_NGINX" ;;
    esac
}

store_url() { echo "postgresql://btcml:$(secret pg-password)@127.0.0.1:$PORT_POSTGRES/${1:-btcml}"; }

# What every btcml process of the stack sees (serve, scheduler, Airflow's tasks, `stack.sh btcml`).
btcml_env() {
    echo "BTCML_DB=$(store_url)"
    echo "BTCML_HOME=$STACK_HOME/btcml"
    echo "BTCML_CONFIG=$STACK_HOME/btcml/config.yaml"
    echo "BTCML_TRACKING_URI=$(url_of mlflow)"
    echo "BTCML_LOG_SINK=$(url_of opensearch)"
    echo "BTCML_LOG_FORMAT=json"
    echo "BTCML_ALERT_TOKEN=$(secret alert-token)"
    echo "BTCML_API_KEY=$(secret api-key)"
    echo "BTCML_AIRFLOW_URL=$(url_of airflow-api)"
    echo "BTCML_AIRFLOW_USERNAME=btcml"
    echo "BTCML_AIRFLOW_PASSWORD=$(secret airflow-btcml-password)"
}

airflow_env() {
    echo "AIRFLOW_HOME=$STACK_HOME/airflow"
    echo "AIRFLOW_CONFIG=$DEPLOY/airflow/airflow.cfg"
    # One machine: the scheduler runs the tasks itself (docs/airflow.md scales out with Celery workers instead).
    echo "AIRFLOW__CORE__EXECUTOR=LocalExecutor"
    echo "AIRFLOW__CORE__PARALLELISM=${STACK_AIRFLOW_PARALLELISM:-2}"
    echo "AIRFLOW__CORE__DAGS_FOLDER=$DEPLOY/airflow/dags"
    echo "AIRFLOW__CORE__PLUGINS_FOLDER=$DEPLOY/airflow/plugins"
    echo "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=$(store_url airflow | sed 's|^postgresql:|postgresql+psycopg2:|')"
    echo "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=$SECRETS/airflow-passwords.json"
    echo "AIRFLOW__API_AUTH__JWT_SECRET=$(secret airflow-jwt-secret)"
    echo "AIRFLOW__API__SECRET_KEY=$(secret airflow-secret-key)"
    echo "AIRFLOW__CORE__EXECUTION_API_SERVER_URL=$(url_of airflow-api)/execution/"
    echo "AIRFLOW__LOGGING__BASE_LOG_FOLDER=$LOGS/airflow-tasks"
    echo "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=$PORT_AIRFLOW_SCHEDULER_LOGS"
    echo "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=$PORT_AIRFLOW_TRIGGERER_LOGS"
    echo "BTCML_BIN=$BTCML_BIN"
    # The reload task waits until the replicas (through nginx) serve a new champion.
    echo "BTCML_SERVE_URL=$(url_of nginx)"
    echo "BTCML_AIRFLOW_RETRY_DELAY=${STACK_AIRFLOW_RETRY_DELAY:-30}"
    # The built-in scheduler runs the ticks (btcml-scheduler): btcml_ingest stays paused, and retrains come from
    # alerts (and the cron schedule).
    echo "BTCML_AIRFLOW_RETRAIN_CRON=${STACK_AIRFLOW_RETRAIN_CRON:-0 3 * * *}"
    echo "PYTHONUNBUFFERED=1"
}

pid_of() {
    local f=$RUN/$1.pid
    [ -f "$f" ] && cat "$f"
}

alive() {
    local pid
    pid=$(pid_of "$1") || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

http_ok() { curl -fsS -o /dev/null --max-time 3 "$1" 2>/dev/null; }

airflow_health() { curl -fsS --max-time 3 "$(url_of airflow-api)/api/v2/monitor/health" 2>/dev/null; }

# One component's health: 0 healthy; the check each uses is the one docs/operations.md names.
healthy() {
    case $1 in
    postgres) as_postgres "$PG_BIN/pg_ctl" status -D "$STACK_HOME/postgres/data" >/dev/null 2>&1 &&
        pg_isready -q -h 127.0.0.1 -p "$PORT_POSTGRES" ;;
    mlflow) alive mlflow && http_ok "$(url_of mlflow)/health" ;;
    opensearch) alive opensearch && grep -Eq '"status":"(green|yellow)"' < <(curl -fsS --max-time 3 \
        "$(url_of opensearch)/_cluster/health" 2>/dev/null) ;;
    alertmanager | prometheus) alive "$1" && http_ok "$(url_of "$1")/-/ready" ;;
    airflow-api) alive airflow-api && http_ok "$(url_of airflow-api)/api/v2/monitor/health" ;;
    airflow-scheduler | airflow-dag-processor | airflow-triggerer)
        local key=${1#airflow-}
        key=${key//-/_}
        alive "$1" && airflow_health |
            python3 -c "import json,sys; sys.exit(json.load(sys.stdin)['$key']['status'] != 'healthy')" 2>/dev/null ;;
    btcml-serve-*) alive "$1" && http_ok "$(url_of "$1")/healthz" ;;
    # It serves no HTTP: healthy once this start logged "scheduler started" (it exits at once on a bad config).
    # (grep reads a process substitution: under pipefail, tail killed by grep -q's early exit would fail a pipe.)
    btcml-scheduler) alive btcml-scheduler && grep -q '"scheduler started"' < <(tail -c \
        "+$(cat "$RUN/btcml-scheduler.logpos" 2>/dev/null || echo 1)" "$LOGS/btcml-scheduler.log") ;;
    nginx) alive nginx && http_ok "$(url_of nginx)/healthz" ;;
    *) return 1 ;;
    esac
}

# PostgreSQL writes its own log, as its own user: beside its data.
log_of() { [ "$1" = postgres ] && echo "$STACK_HOME/postgres/postgres.log" || echo "$LOGS/$1.log"; }

tail_log() { tail -n 30 "$(log_of "$1")" 2>/dev/null | sed "s/^/  $1| /" >&2 || true; }

wait_healthy() {
    local name=$1 deadline=$((SECONDS + START_TIMEOUT))
    until healthy "$name"; do
        if [ "$name" != postgres ] && ! alive "$name"; then
            say "$name exited during its start; its log ($(log_of "$name")) ends:"
            tail_log "$name"
            exit 1
        fi
        if [ $SECONDS -ge $deadline ]; then
            say "$name is not healthy after ${START_TIMEOUT}s; its log ($(log_of "$name")) ends:"
            tail_log "$name"
            exit 1
        fi
        sleep 0.5
    done
}

# Starts a component in its own session (process group) as the stack's user, its output in its log; the environment
# comes as NAME=VALUE lines on stdin.
launch() {
    local name=$1 env_lines drop=()
    shift
    mapfile -t env_lines
    touch "$LOGS/$name.log"
    echo $(($(stat -c %s "$LOGS/$name.log") + 1)) >"$RUN/$name.logpos"
    if is_root; then
        drop=(setpriv --reuid="$STACK_USER" --regid="$STACK_USER" --init-groups --)
        chown "$STACK_USER:" "$LOGS/$name.log"  # nginx reopens its log itself
    fi
    (
        cd "$STACK_HOME"
        exec setsid "${drop[@]}" env "HOME=$STACK_HOME/home" "${env_lines[@]}" "$@" </dev/null >>"$LOGS/$name.log" 2>&1
    ) &
    echo $! >"$RUN/$name.pid"
}

# ---- setup ------------------------------------------------------------------------------------------------------

ensure_user() {
    is_root || {
        say "not root: every component runs as $(id -un)"
        return
    }
    if ! id "$STACK_USER" >/dev/null 2>&1; then
        useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$STACK_USER"
        say "created the system user $STACK_USER"
    fi
}

new_secret() {
    local f=$SECRETS/$1
    [ -s "$f" ] || (umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=\n' >"$f")
}

prepare() {
    [ -n "$BTCML_BIN" ] && [ -x "$BTCML_BIN" ] ||
        die "no btcml binary: build it (cmake --build build) or set STACK_BTCML_BIN"
    [ -n "$MLFLOW" ] && [ -x "$MLFLOW" ] || die "no mlflow: run scripts/install-deps.sh or set STACK_MLFLOW"
    [ -x "$AIRFLOW" ] || die "no Airflow at $AIRFLOW: run scripts/install-airflow.sh or set STACK_AIRFLOW"
    [ -f "$OPENSEARCH_DIR/java_home" ] || die "no OpenSearch in $OPENSEARCH_DIR: run scripts/install-opensearch.sh"
    [ -x "$PG_BIN/pg_ctl" ] || die "no PostgreSQL server in $PG_BIN: apt-get install postgresql (or set STACK_PG_BIN)"
    local tool
    for tool in prometheus prometheus-alertmanager nginx curl; do
        command -v "$tool" >/dev/null || die "$tool is missing: run scripts/install-deps.sh"
    done
    ensure_user
    mkdir -p "$STACK_HOME" "$RUN" "$LOGS" "$SECRETS" "$STACK_HOME/home" "$STACK_HOME/btcml" "$STACK_HOME/postgres" \
        "$STACK_HOME/airflow" "$STACK_HOME/mlflow" "$STACK_HOME/opensearch" "$STACK_HOME/prometheus" \
        "$STACK_HOME/alertmanager" "$STACK_HOME/nginx" "$LOGS/airflow-tasks"
    local s
    for s in pg-password alert-token api-key airflow-btcml-password airflow-admin-password airflow-jwt-secret \
        airflow-secret-key; do
        new_secret "$s"
    done
    (umask 077 && printf '{"btcml": "%s", "admin": "%s"}\n' "$(secret airflow-btcml-password)" \
        "$(secret airflow-admin-password)" >"$SECRETS/airflow-passwords.json")
    if [ ! -f "$STACK_HOME/btcml/config.yaml" ] || [ -n "${STACK_BTCML_CONFIG:-}" ]; then
        if [ -n "${STACK_BTCML_CONFIG:-}" ]; then
            cp "$STACK_BTCML_CONFIG" "$STACK_HOME/btcml/config.yaml"
        else
            # btcml scheduler refuses to start without series: `up` stops there and shows its message.
            printf '%s\n' "# btcml's config for the stack (docs/configuration.md): list your series here, e.g." \
                "# series:" "#   - {symbol: BTCUSD, interval: 1h, source: \"bitstamp:btcusd\"}" \
                "# Airflow retrains on alerts; the built-in scheduler only runs the ticks." \
                "pipelines:" "  retrain_every: never" >"$STACK_HOME/btcml/config.yaml"
        fi
    fi
    if is_root; then
        # Not recursive: what the components write is theirs already.
        chown "$STACK_USER:" "$STACK_HOME" "$RUN" "$LOGS" "$LOGS/airflow-tasks" "$SECRETS" "$SECRETS"/* \
            "$STACK_HOME"/{home,btcml,btcml/config.yaml,airflow,mlflow,opensearch,prometheus,alertmanager,nginx}
        chown postgres: "$STACK_HOME/postgres"
        as_user test -x "$STACK_HOME" -a -r "$BTCML_BIN" ||
            die "the user $STACK_USER cannot reach $STACK_HOME or $BTCML_BIN: give every parent folder o+x"
    fi
}

# ---- components -------------------------------------------------------------------------------------------------

start_postgres() {
    local data=$STACK_HOME/postgres/data sock=$STACK_HOME/postgres
    touch "$(log_of postgres)"
    is_root && chown postgres: "$(log_of postgres)"
    if [ ! -f "$data/PG_VERSION" ]; then
        # Local socket: trust for the administrator (postgres); TCP on 127.0.0.1: passwords (scram-sha-256).
        as_postgres "$PG_BIN/initdb" -D "$data" -U postgres --auth-local=trust --auth-host=scram-sha-256 -E UTF8 \
            --locale=C >>"$(log_of postgres)" 2>&1 || {
            say "postgres: initdb failed"
            tail_log postgres
            exit 1
        }
    fi
    as_postgres "$PG_BIN/pg_ctl" start -w -t 120 -D "$data" -l "$(log_of postgres)" \
        -o "-p $PORT_POSTGRES -k $sock -c listen_addresses=127.0.0.1" >/dev/null 2>&1 || {
        say "postgres did not start; its log ($(log_of postgres)) ends:"
        tail_log postgres
        exit 1
    }
    head -n 1 "$data/postmaster.pid" >"$RUN/postgres.pid"
    wait_healthy postgres
    if [ ! -f "$STACK_HOME/postgres/.initialized" ]; then
        local psql=(psql -h "$sock" -p "$PORT_POSTGRES" -U postgres -v ON_ERROR_STOP=1 -q)
        as_postgres "${psql[@]}" -d postgres -c "CREATE ROLE btcml LOGIN PASSWORD '$(secret pg-password)'" \
            -c "CREATE DATABASE btcml OWNER btcml" >>"$(log_of postgres)"
        # The same script the postgres container image runs (docker-compose.yml): MLflow's and Airflow's databases.
        as_postgres "${psql[@]}" -d postgres -f "$DEPLOY/postgres/init.sql" >>"$(log_of postgres)"
        touch "$STACK_HOME/postgres/.initialized"
    fi
}

start_mlflow() {
    # The store URL (with its password) in the environment, not on a command line that `ps` shows everyone.
    echo "MLFLOW_BACKEND_STORE_URI=$(store_url mlflow)" | launch mlflow "$MLFLOW" server --serve-artifacts \
        --artifacts-destination "$STACK_HOME/mlflow/artifacts" --host 127.0.0.1 --port "$PORT_MLFLOW" --workers 1
}

start_opensearch() {
    local java
    java=$(cat "$OPENSEARCH_DIR/java_home")/bin/java
    # The runner serves while its stdin is open: `sleep infinity` holds it; both go with the process group.
    launch opensearch bash -c 'sleep infinity | exec "$@"' opensearch "$java" -Xms256m -Xmx1g -XX:+UseSerialGC \
        -cp "$OPENSEARCH_DIR/lib/*" "$REPO/tests/tools/opensearch/OpenSearchServer.java" "$PORT_OPENSEARCH" \
        "$PORT_OPENSEARCH_TRANSPORT" "$STACK_HOME/opensearch/data" </dev/null
}

start_alertmanager() {
    local dir=$STACK_HOME/alertmanager
    (umask 077 && secret alert-token >"$dir/alert-token")
    sed -e "s|http://127.0.0.1:8080/api/v1/alerts|$(url_of nginx)/api/v1/alerts|" \
        -e "s|/etc/btcml/alert-token|$dir/alert-token|" "$DEPLOY/alertmanager/alertmanager.yml" >"$dir/alertmanager.yml"
    if [ "$FAST" = 1 ]; then
        sed -i -E -e 's/^( *group_wait:).*/\1 1s/' -e 's/^( *group_interval:).*/\1 1s/' \
            -e 's/^( *repeat_interval:).*/\1 10s/' "$dir/alertmanager.yml"
    fi
    is_root && chown -R "$STACK_USER:" "$dir"
    # --cluster.listen-address= keeps it off the gossip port 9094: one instance, no cluster.
    launch alertmanager prometheus-alertmanager --config.file="$dir/alertmanager.yml" \
        --storage.path="$dir/data" --web.listen-address="127.0.0.1:$PORT_ALERTMANAGER" --cluster.listen-address= \
        </dev/null
}

start_prometheus() {
    local dir=$STACK_HOME/prometheus f
    mkdir -p "$dir/rules"
    for f in "$DEPLOY"/prometheus/rules/*.yml; do
        if [ "$FAST" = 1 ]; then
            sed -E 's/^( *for:).*/\1 2s/' "$f" >"$dir/rules/$(basename "$f")"
        else
            cp "$f" "$dir/rules/"
        fi
    done
    sed -e "s|\"127.0.0.1:9093\"|\"127.0.0.1:$PORT_ALERTMANAGER\"|" \
        -e "s|\\[\"127.0.0.1:8080\"\\]|[\"127.0.0.1:$PORT_SERVE_1\", \"127.0.0.1:$PORT_SERVE_2\"]|" \
        "$DEPLOY/prometheus/prometheus.yml" >"$dir/prometheus.yml"
    if [ "$FAST" = 1 ]; then
        sed -i -E -e 's/^( *scrape_interval:).*/\1 1s/' -e 's/^( *evaluation_interval:).*/\1 1s/' "$dir/prometheus.yml"
    fi
    is_root && chown -R "$STACK_USER:" "$dir"
    launch prometheus prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
        --web.listen-address="127.0.0.1:$PORT_PROMETHEUS" </dev/null
}

airflow_cmd() {
    local env_lines
    mapfile -t env_lines < <(btcml_env && airflow_env)
    (cd "$STACK_HOME" && as_user env "HOME=$STACK_HOME/home" "${env_lines[@]}" "$AIRFLOW" "$@")
}

start_airflow-api() {
    # Migrated once per Airflow release (its constraints file pins it).
    if ! cmp -s "$DEPLOY/airflow/constraints.txt" "$STACK_HOME/airflow/.migrated"; then
        say "airflow: migrating its metadata database (first start)"
        airflow_cmd db migrate >>"$LOGS/airflow-api.log" 2>&1 || {
            say "airflow db migrate failed; its log ($LOGS/airflow-api.log) ends:"
            tail_log airflow-api
            exit 1
        }
        cp "$DEPLOY/airflow/constraints.txt" "$STACK_HOME/airflow/.migrated"
    fi
    { btcml_env; airflow_env; } | launch airflow-api "$AIRFLOW" api-server --host 127.0.0.1 \
        --port "$PORT_AIRFLOW" --workers 1
}

start_airflow_process() { { btcml_env; airflow_env; } | launch "airflow-$1" "$AIRFLOW" "$1"; }
start_airflow-scheduler() { start_airflow_process scheduler; }
start_airflow-dag-processor() { start_airflow_process dag-processor; }
start_airflow-triggerer() { start_airflow_process triggerer; }

# With the built-in scheduler running the ticks, btcml_ingest would ingest twice and schedule retrains on every new
# bar: it is paused as soon as the DAG processor has stored it, before Airflow's scheduler starts (which would run it
# at once).
pause_ingest_dag() {
    local token deadline=$((SECONDS + START_TIMEOUT))
    token=$(curl -fsS --max-time 10 -H 'Content-Type: application/json' \
        -d "{\"username\": \"admin\", \"password\": \"$(secret airflow-admin-password)\"}" \
        "$(url_of airflow-api)/auth/token" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
    until curl -fsS -o /dev/null --max-time 10 -X PATCH -H "Authorization: Bearer $token" \
        -H 'Content-Type: application/json' -d '{"is_paused": true}' \
        "$(url_of airflow-api)/api/v2/dags/btcml_ingest" 2>/dev/null; do
        [ $SECONDS -lt $deadline ] || {
            say "airflow: the DAG btcml_ingest did not appear within ${START_TIMEOUT}s; the DAG processor's log ends:"
            tail_log airflow-dag-processor
            exit 1
        }
        sleep 1
    done
}

start_btcml_serve() {
    local port=$2
    btcml_env | launch "$1" "$BTCML_BIN" serve --host 127.0.0.1 --port "$port" --no-scheduler
}
start_btcml-serve-1() { start_btcml_serve btcml-serve-1 "$PORT_SERVE_1"; }
start_btcml-serve-2() { start_btcml_serve btcml-serve-2 "$PORT_SERVE_2"; }
start_btcml-scheduler() { btcml_env | launch btcml-scheduler "$BTCML_BIN" scheduler; }

start_nginx() {
    local dir=$STACK_HOME/nginx
    mkdir -p "$dir/tmp"
    sed -e "s|127.0.0.1:8080|127.0.0.1:$PORT_SERVE_1|" -e "s|127.0.0.1:8081|127.0.0.1:$PORT_SERVE_2|" \
        -e "s|listen 127.0.0.1:8000;|listen 127.0.0.1:$PORT_NGINX;|" "$DEPLOY/nginx/btcml.conf" >"$dir/btcml.conf"
    # Debian's nginx with a main config of its own: no system paths, no daemon (the pid file is the stack's).
    cat >"$dir/nginx.conf" <<EOF
worker_processes 2;
pid $dir/nginx.pid;
error_log $LOGS/nginx.log warn;
events { worker_connections 1024; }
http {
    access_log $LOGS/nginx-access.log;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    include $dir/btcml.conf;
}
EOF
    is_root && chown -R "$STACK_USER:" "$dir"
    launch nginx nginx -e "$LOGS/nginx.log" -c "$dir/nginx.conf" -g 'daemon off;' </dev/null
}

start_one() {
    local name=$1
    if healthy "$name"; then
        say "$name: already running"
        return
    fi
    if [ "$name" != postgres ] && alive "$name"; then
        say "$name: running but not healthy; restarting it"
        stop_one "$name"
    fi
    say "$name: starting"
    local started=$SECONDS
    "start_$name"
    wait_healthy "$name"
    [ "$name" != airflow-dag-processor ] || pause_ingest_dag
    say "$name: healthy in $((SECONDS - started))s ($(url_of "$name"))"
}

stop_one() {
    local name=$1 pid
    if [ "$name" = postgres ]; then
        if [ -f "$STACK_HOME/postgres/data/postmaster.pid" ]; then
            as_postgres "$PG_BIN/pg_ctl" stop -D "$STACK_HOME/postgres/data" -m fast -w -t "$STOP_GRACE" \
                >/dev/null 2>&1 ||
                as_postgres "$PG_BIN/pg_ctl" stop -D "$STACK_HOME/postgres/data" -m immediate -w >/dev/null 2>&1 || true
        fi
        rm -f "$RUN/postgres.pid"
        return
    fi
    pid=$(pid_of "$name") || return 0
    if kill -0 "$pid" 2>/dev/null; then
        say "$name: stopping (pid $pid)"
        kill -TERM -- "-$pid" 2>/dev/null || true
        local deadline=$((SECONDS + STOP_GRACE))
        while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
        if kill -0 "$pid" 2>/dev/null; then
            say "$name: still running after ${STOP_GRACE}s: SIGKILL"
        fi
    fi
    # The whole process group: children a TERM left behind (task runners, the opensearch stdin holder) go too.
    kill -KILL -- "-$pid" 2>/dev/null || true
    rm -f "$RUN/$name.pid"
}

# ---- commands ---------------------------------------------------------------------------------------------------

cmd_up() {
    prepare
    local name
    for name in "${COMPONENTS[@]}"; do start_one "$name"; done
    say "up: $(url_of nginx) (btcml through nginx); deploy/stack.sh status shows every component"
}

cmd_down() {
    local i
    for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do stop_one "${COMPONENTS[$i]}"; done
    say "down"
}

# What `status` adds to a healthy component: whether btcml serves a champion yet (GET /readyz).
detail_of() {
    [ "$2" = healthy ] || {
        echo "log: $(log_of "$1")"
        return
    }
    case $1 in
    btcml-serve-* | nginx)
        if http_ok "$(url_of "$1")/readyz"; then echo "ready"; else echo "no champion served yet (/readyz 503)"; fi ;;
    *) echo "" ;;
    esac
}

cmd_status() {
    local json=0 name state pid detail down=0 first=1
    [ "${1:-}" = --json ] && json=1
    [ $json = 1 ] && printf '{"stack_home": "%s", "components": [' "$STACK_HOME"
    [ $json = 1 ] || printf '%-22s %-9s %-8s %-24s %s\n' COMPONENT HEALTH PID URL DETAIL
    for name in "${COMPONENTS[@]}"; do
        pid=$(pid_of "$name" 2>/dev/null || echo "-")
        if healthy "$name"; then
            state=healthy
        elif [ "$name" != postgres ] && alive "$name"; then
            state=unhealthy
            down=1
        else
            state=down
            pid=-
            down=1
        fi
        detail=$(detail_of "$name" "$state")
        if [ $json = 1 ]; then
            [ $first = 1 ] || printf ', '
            first=0
            printf '{"name": "%s", "health": "%s", "pid": %s, "url": "%s", "detail": "%s", "log": "%s"}' "$name" \
                "$state" "$([ "$pid" = - ] && echo null || echo "$pid")" "$(url_of "$name")" "$detail" \
                "$(log_of "$name")"
        else
            printf '%-22s %-9s %-8s %-24s %s\n' "$name" "$state" "$pid" "$(url_of "$name")" "$detail"
        fi
    done
    [ $json = 1 ] && printf ']}\n'
    return $down
}

cmd_logs() {
    local name=${1:-} follow=()
    [ -n "$name" ] || die "usage: stack.sh logs COMPONENT [-f]; components: ${COMPONENTS[*]}"
    [[ " ${COMPONENTS[*]} " == *" $name "* ]] || die "no component '$name'; components: ${COMPONENTS[*]}"
    [ "${2:-}" = -f ] && follow=(-F)
    [ -f "$(log_of "$name")" ] || die "$name has no log yet ($(log_of "$name"))"
    exec tail -n "${STACK_LOG_LINES:-100}" "${follow[@]}" "$(log_of "$name")"
}

cmd_env() {
    [ -f "$SECRETS/pg-password" ] || die "no stack in $STACK_HOME yet: run stack.sh up"
    btcml_env | sed 's/^/export /'
}

cmd_btcml() {
    [ -f "$SECRETS/pg-password" ] || die "no stack in $STACK_HOME yet: run stack.sh up"
    local env_lines
    mapfile -t env_lines < <(btcml_env)
    cd "$STACK_HOME"
    as_user env "HOME=$STACK_HOME/home" "${env_lines[@]}" "$BTCML_BIN" "$@"
}

case "${1:-}" in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status "${2:-}" ;;
logs) cmd_logs "${2:-}" "${3:-}" ;;
env) cmd_env ;;
btcml)
    shift
    cmd_btcml "$@"
    ;;
*)
    echo "usage: $0 up|down|status [--json]|logs COMPONENT [-f]|env|btcml ARGS..." >&2
    exit 2
    ;;
esac
