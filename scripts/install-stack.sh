#!/usr/bin/env bash
# Installs what deploy/stack.sh needs beyond scripts/install-deps.sh: Debian's psycopg2, which the MLflow of .venv
# (created with --system-site-packages) needs for its PostgreSQL backend store. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
apt_install_missing install-stack python3-psycopg2
