#!/usr/bin/env bash
# Installs what running btcml under Apache Airflow needs (docs/airflow.md): Airflow itself, pinned to one release
# with every dependency pinned by deploy/airflow/constraints.txt, in its own virtualenv .venv-airflow (Airflow's
# dependencies clash with the test tools in .venv), and Debian's redis-server, the Celery broker of the scale-out
# test. Idempotent: the pip install is skipped while .venv-airflow holds the same constraints file.
set -euo pipefail
cd "$(dirname "$0")/.."

AIRFLOW_VERSION=3.3.2
CONSTRAINTS=deploy/airflow/constraints.txt
VENV=.venv-airflow

sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)

if ! dpkg-query -W -f='${Status}' redis-server 2>/dev/null | grep -q "ok installed"; then
    echo "install-airflow: installing redis-server" >&2
    export DEBIAN_FRONTEND=noninteractive
    "${sudo_cmd[@]}" apt-get update -qq
    # The tests start Redis themselves on a free port: no system service is started while it installs.
    policy=/usr/sbin/policy-rc.d
    added_policy=false
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | "${sudo_cmd[@]}" tee "$policy" >/dev/null
        "${sudo_cmd[@]}" chmod +x "$policy"
        added_policy=true
    fi
    status=0
    "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends redis-server >/dev/null || status=$?
    if $added_policy; then "${sudo_cmd[@]}" rm -f "$policy"; fi
    [ "$status" -eq 0 ] || exit "$status"
fi

if [ ! -x "$VENV/bin/airflow" ] || ! cmp -s "$CONSTRAINTS" "$VENV/.constraints" 2>/dev/null; then
    echo "install-airflow: installing Apache Airflow $AIRFLOW_VERSION into $VENV" >&2
    rm -rf "$VENV"
    /usr/bin/python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -c "$CONSTRAINTS" \
        "apache-airflow[celery,postgres]==$AIRFLOW_VERSION"
    cp "$CONSTRAINTS" "$VENV/.constraints"
fi
