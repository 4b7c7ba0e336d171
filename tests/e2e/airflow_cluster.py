"""Real Apache Airflow for the tests (tests/e2e/test_airflow.py): a metadata database on the test PostgreSQL server,
`airflow` commands run with the repository's config (deploy/airflow), btcml stores whose configured series the DAGs
retrain, and a CeleryExecutor cluster (Redis, API server, scheduler, DAG processor, two Celery workers) started once
per session and always stopped. Under CI=true a missing Airflow, Redis or PostgreSQL fails the tests."""
from __future__ import annotations

import contextlib
import datetime
import json
import math
import os
import random
import secrets
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import pytest
import requests

from conftest import BIN, REPO, Btcml
from mlflow_server import free_port

VENV = Path(os.environ.get("BTCML_AIRFLOW_VENV", REPO / ".venv-airflow"))
AIRFLOW = VENV / "bin" / "airflow"
DEPLOY = REPO / "deploy" / "airflow"
BTCML_USER = "btcml"


def psql(url: str, sql: str):
    subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-qc", sql], check=True, capture_output=True, timeout=60)


def database_url(base: str, name: str, scheme: str | None = None) -> str:
    parts = urlparse(base)
    return urlunparse(parts._replace(path="/" + name, scheme=scheme or parts.scheme))


class Airflow:
    """Airflow's settings for one session: its home, metadata database and the btcml environment its tasks see."""

    def __init__(self, root: Path, pg_base: str):
        self.root = root
        self.home = root / "airflow-home"
        self.home.mkdir(parents=True)
        self.password = secrets.token_urlsafe(16)
        passwords = self.home / "passwords.json"
        passwords.write_text(json.dumps({BTCML_USER: self.password, "admin": secrets.token_urlsafe(16)}))
        self.db_name = "airflow_" + secrets.token_hex(5)
        psql(pg_base, f"CREATE DATABASE {self.db_name}")
        self.pg_base = pg_base
        self.api_port = free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.env = {
            **os.environ,
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW_CONFIG": str(DEPLOY / "airflow.cfg"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DEPLOY / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(DEPLOY / "plugins"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url(pg_base, self.db_name, "postgresql+psycopg2"),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
            # Several workers on one machine: each names itself (BTCML_WORKER_NAME) in the task instances it runs.
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "btcml_steps.worker_hostname",
            "BTCML_BIN": str(BIN),
            # Retries stay on, their waits short.
            "BTCML_AIRFLOW_RETRY_DELAY": "2",
            # Runs come from the tests alone: no cron slot falls inside a test session.
            "BTCML_AIRFLOW_RETRAIN_CRON": "0 0 1 1 *",
            "PYTHONUNBUFFERED": "1",
        }
        # Each use says which btcml store its tasks work on (BTCML_DB, BTCML_HOME, BTCML_CONFIG).
        for key in ("BTCML_DB", "BTCML_HOME", "BTCML_CONFIG", "BTCML_TRACKING_URI"):
            self.env.pop(key, None)

    def run(self, *args, timeout=300, check=True, env=None) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(AIRFLOW), *[str(a) for a in args]], capture_output=True, text=True,
                              timeout=timeout, env={**self.env, **(env or {})}, stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise AssertionError(f"airflow {' '.join(map(str, args))} exited {proc.returncode}:\n"
                                 f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
        return proc

    def json(self, *args, **kw):
        out = self.run(*args, "-o", "json", **kw).stdout
        # Airflow's warnings share stdout: the document is the last line that is one.
        for line in reversed(out.splitlines()):
            with contextlib.suppress(ValueError):
                if line.startswith("["):
                    return json.loads(line)
        return []  # "No data found"

    def drop(self):
        psql(self.pg_base, f"DROP DATABASE IF EXISTS {self.db_name} WITH (FORCE)")

    def query(self, sql: str) -> list[list[str]]:
        """Rows of a query on Airflow's metadata database, every field as text."""
        out = subprocess.run(["psql", database_url(self.pg_base, self.db_name), "-v", "ON_ERROR_STOP=1", "-AtF",
                              "\t", "-c", sql], check=True, capture_output=True, text=True, timeout=60).stdout
        return [line.split("\t") for line in out.splitlines()]

    # The REST API (v2), as a client signed in as btcml.
    def token(self) -> str:
        r = requests.post(f"{self.api_url}/auth/token", json={"username": BTCML_USER, "password": self.password},
                          timeout=30)
        assert r.status_code == 201, r.text
        return r.json()["access_token"]

    def api(self, method: str, path: str, **kw) -> requests.Response:
        headers = {"Authorization": "Bearer " + self.token()}
        return requests.request(method, f"{self.api_url}/api/v2{path}", headers=headers, timeout=30, **kw)


class Cluster:
    """The CeleryExecutor deployment: every process is started here and killed by stop(), whatever happened."""

    def __init__(self, airflow: Airflow, btcml_env: dict[str, str]):
        self.airflow = airflow
        self.btcml_env = btcml_env
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.logs = airflow.root / "logs"
        self.logs.mkdir()
        self.redis_port = free_port()
        broker = f"redis://127.0.0.1:{self.redis_port}/0"
        airflow.env["AIRFLOW__CELERY__BROKER_URL"] = broker
        airflow.env["AIRFLOW__CELERY__RESULT_BACKEND"] = "db+" + airflow.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]

    def start(self, name: str, cmd: list[str], env: dict | None = None):
        log = open(self.logs / f"{name}.log", "w")
        proc = subprocess.Popen([str(c) for c in cmd], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**self.airflow.env, **self.btcml_env, **(env or {})},
                                start_new_session=True)
        self.procs.append((name, proc))

    def up(self, timeout=240):
        redis = shutil.which("redis-server")
        assert redis, "redis-server is missing: scripts/install-airflow.sh installs it"
        self.start("redis", [redis, "--port", self.redis_port, "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", self.airflow.root])
        self.start("api-server", [AIRFLOW, "api-server", "--host", "127.0.0.1", "--port", self.airflow.api_port,
                                  "--workers", "1"])
        self.start("scheduler", [AIRFLOW, "scheduler"])
        self.start("dag-processor", [AIRFLOW, "dag-processor"])
        for n in (1, 2):
            self.start(f"worker{n}", [AIRFLOW, "celery", "worker", "--concurrency", "1",
                                      "--celery-hostname", f"worker{n}@%h", "--without-mingle", "--without-gossip"],
                       env={"BTCML_WORKER_NAME": f"worker{n}"})
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            with contextlib.suppress(requests.RequestException):
                if self.airflow.api("GET", "/dags/btcml_retrain").status_code == 200:
                    return
            assert time.monotonic() < deadline, f"Airflow did not serve btcml_retrain within {timeout}s\n{self.tail()}"
            time.sleep(1)

    def check_alive(self):
        for name, proc in self.procs:
            assert proc.poll() is None, f"{name} exited {proc.returncode}\n{self.tail(name)}"

    def tail(self, name: str | None = None) -> str:
        names = [name] if name else [n for n, _ in self.procs]
        return "\n".join(f"--- {n}\n" + (self.logs / f"{n}.log").read_text()[-3000:] for n in names)

    def stop(self):
        for _, proc in reversed(self.procs):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 15)
        for _, proc in reversed(self.procs):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, 9)
                proc.wait()


def wait_for_dag_run(airflow: Airflow, dag_id: str, run_id: str, timeout: float) -> dict:
    """Polls the API until the run has finished; returns it."""
    deadline = time.monotonic() + timeout
    while True:
        run = airflow.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}").json()
        if run.get("state") in ("success", "failed"):
            return run
        assert time.monotonic() < deadline, f"DAG run {run_id} still {run.get('state')} after {timeout}s"
        time.sleep(2)


def task_instances(airflow: Airflow, dag_id: str, run_id: str) -> list[dict]:
    r = airflow.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 100})
    assert r.status_code == 200, r.text
    return r.json()["task_instances"]


# A tiny first model per series: a retrain keeps the champion's settings, so every retrain stays this small.
TINY = ["--window", "24", "--horizons", "1,6", "--hidden", "8", "--layers", "1", "--epochs", "2",
        "--samples-per-epoch", "256", "--seed", "3"]
SERIES = ("AAA", "BBB")


def need(condition: bool, what: str):
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{what} (CI=true: scripts/test.sh installs and starts what the Airflow tests need)")
    pytest.skip(what)


@pytest.fixture(scope="session")
def pg_base():
    base = os.environ.get("BTCML_TEST_POSTGRES_URL")
    need(bool(base), "BTCML_TEST_POSTGRES_URL is not set")
    return base


@pytest.fixture(scope="session")
def airflow(tmp_path_factory, pg_base):
    need(AIRFLOW.exists(), f"{AIRFLOW} is missing: run scripts/install-airflow.sh")
    need(shutil.which("redis-server") is not None, "redis-server is missing: run scripts/install-airflow.sh")
    af = Airflow(tmp_path_factory.mktemp("airflow"), pg_base)
    try:
        af.run("db", "migrate", timeout=600)
        yield af
    finally:
        af.drop()


def write_bars(path: Path, seed: int, bars: int = 1200, bad_every: int = 0):
    """Hourly bars of a seeded random walk from 2025-11-01 (more bars: the same ones and later ones); every
    `bad_every`-th row a negative price."""
    rng = random.Random(seed)
    start = datetime.datetime(2025, 11, 1, tzinfo=datetime.timezone.utc)
    price = 100.0 * (1 + seed)
    lines = ["time,open,high,low,close,volume"]
    for i in range(bars):
        t = start + datetime.timedelta(hours=i)
        close = price * math.exp(rng.gauss(0, 0.01))
        high, low = max(price, close) * 1.002, min(price, close) * 0.998
        o = -price if bad_every and i % bad_every == 0 else price
        lines.append(f"{t:%Y-%m-%dT%H:%M:%SZ},{o:.4f},{high:.4f},{low:.4f},{close:.4f},{rng.uniform(1, 9):.3f}")
        price = close
    path.write_text("\n".join(lines) + "\n")


class Store:
    """A btcml store (a PostgreSQL database, or SQLite when `pg_base` is None) with configured series, their bars
    and a tiny champion each; `env` points btcml (and so Airflow's tasks) at it."""

    def __init__(self, root: Path, pg_base: str | None, series: dict[str, int], bad: dict[str, int] | None = None):
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.seeds = series
        self.db_name = None
        self.pg_base = pg_base
        db = None
        if pg_base:
            self.db_name = "btcml_af_" + secrets.token_hex(5)
            psql(pg_base, f"CREATE DATABASE {self.db_name}")
            db = database_url(pg_base, self.db_name)
        self.btcml = Btcml(root / "home", db)
        self.btcml.home.mkdir(parents=True)
        self.config = root / "btcml.yaml"
        lines = ["series:"]
        for symbol, seed in series.items():
            data = root / f"{symbol}.csv"
            write_bars(data, seed, bad_every=(bad or {}).get(symbol, 0))
            lines += [f"  - symbol: {symbol}", "    interval: 1h", f"    source: {data}"]
        lines += ["pipelines:", "  retrain_every: never"]
        self.config.write_text("\n".join(lines) + "\n")
        self.env = {"BTCML_HOME": str(self.btcml.home), "BTCML_CONFIG": str(self.config),
                    # One thread: training is then bit-for-bit the same in every process.
                    "OMP_NUM_THREADS": "1"}
        if db:
            self.env["BTCML_DB"] = db
        for symbol in series:
            self.btcml.json("--config", self.config, "pipeline", "step", f"tick-{symbol}-1h", "ingest")
            if not (bad or {}).get(symbol):
                self.btcml.json("train", "--symbol", symbol, *TINY, env={"OMP_NUM_THREADS": "1"})

    def versions(self, symbol: str) -> list[int]:
        models = self.btcml.json("models", "list")["models"]
        return sorted(v["version"] for m in models if m["name"] == f"btcml-{symbol}-1h" for v in m["versions"])

    def drop(self):
        if self.db_name:
            psql(self.pg_base, f"DROP DATABASE IF EXISTS {self.db_name} WITH (FORCE)")


@pytest.fixture(scope="session")
def cluster(airflow, tmp_path_factory, pg_base):
    """The CeleryExecutor deployment with two workers, working on its own btcml store (series AAA and BBB)."""
    store = Store(tmp_path_factory.mktemp("cluster-store"), pg_base, {"AAA": 1, "BBB": 2})
    c = Cluster(airflow, store.env)
    c.store = store
    try:
        c.up()
        yield c
    finally:
        c.stop()
        store.drop()
