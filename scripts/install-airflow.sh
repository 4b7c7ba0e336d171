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

. scripts/lib.sh
# redis-server: the Celery broker of the scale-out test.
apt_install_missing install-airflow redis-server

if ! venv_is_current "$VENV/bin/airflow" "$CONSTRAINTS" "$VENV/.constraints"; then
    echo "install-airflow: installing Apache Airflow $AIRFLOW_VERSION into $VENV" >&2
    rm -rf "$VENV"
    /usr/bin/python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -c "$CONSTRAINTS" \
        "apache-airflow[celery,postgres]==$AIRFLOW_VERSION"
    venv_mark_current "$CONSTRAINTS" "$VENV/.constraints"
fi
