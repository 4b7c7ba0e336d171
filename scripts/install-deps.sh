#!/usr/bin/env bash
# Installs every missing build, test and benchmark dependency of btcml on Debian bookworm.
# Idempotent: packages already present are skipped. Works as root or through sudo.
# Python packages go into a virtualenv (.venv) created here; nothing is installed with pip globally.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
    build-essential cmake ninja-build pkg-config git ca-certificates
    libcli11-dev nlohmann-json3-dev libsqlite3-dev sqlite3 libpq-dev postgresql postgresql-client
    libyaml-cpp-dev libspdlog-dev libfmt-dev libcurl4-openssl-dev libssl-dev libarchive-dev zlib1g-dev
    libeigen3-dev libgtest-dev libgmock-dev libfast-float-dev libbenchmark-dev libonnx-dev libprotobuf-dev protobuf-compiler
    python3 python3-venv python3-pip python3-pytest python3-torch python3-numpy
    libboost-dev prometheus prometheus-alertmanager wrk nginx-light graphviz
    poppler-utils # pdfinfo: the report test counts the PDF's pages
)
# npm installs Swagger UI (web/package.json), which the build embeds into btcml for GET /docs. A Node.js that
# brings its own npm (e.g. NodeSource's) is used as it is.
command -v npm >/dev/null || APT_PACKAGES+=(npm)

. scripts/lib.sh
# prometheus, prometheus-alertmanager (promtool, amtool and the servers the closed-loop test starts) and nginx-light
# (the serving benchmark's reference) would start system services: apt_install_missing refuses that. Alertmanager
# must come from the package manager, not an unpacked .deb: Debian's build reads its templates from
# /usr/share/prometheus/alertmanager.
apt_install_missing install-deps "${APT_PACKAGES[@]}"

# Swagger UI, the dashboard's libraries and its bundler, pinned by web/package-lock.json.
if [ ! -f web/node_modules/.package-lock.json ] || ! cmp -s web/package-lock.json web/node_modules/.btcml-lock; then
    # --ignore-scripts: the packages need no build step, and scarf (a dependency) would phone home.
    (cd web && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
    cp web/package-lock.json web/node_modules/.btcml-lock
fi
scripts/install-browser.sh # Debian's chromium for the dashboard's browser tests
scripts/install-slides.sh # Marp CLI for docs/slides (after chromium)

# Python tools for tests and benchmark baselines, pinned (see requirements-dev.txt).
if ! venv_is_current .venv/bin/python requirements-dev.txt .venv/.requirements; then
    python_bin=/usr/bin/python3
    "$python_bin" -m venv --system-site-packages .venv
    .venv/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt
    venv_mark_current requirements-dev.txt .venv/.requirements
fi

# Apache Airflow (its own virtualenv) and redis-server: docs/airflow.md.
scripts/install-airflow.sh
# OpenSearch for the log-shipping tests and the container-file linters (issue 13).
scripts/install-opensearch.sh; scripts/install-container-lint.sh
scripts/install-stack.sh # deploy/stack.sh: psycopg2 for MLflow on PostgreSQL
