"""Shared fixtures for the tests that drive the real btcml binary (tests/e2e) and the fault-injection suite
(tests/faults)."""
import contextlib
import importlib
import json
import shutil
import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import pytest

REPO = Path(__file__).resolve().parents[1]
# The helpers beside the end-to-end tests (serving.py, mlflow_server.py, fake_servers.py) serve both suites.
sys.path.insert(0, str(Path(__file__).resolve().parent / "e2e"))
BIN = Path(os.environ.get("BTCML_BIN", REPO / "build" / "btcml"))
SHARED_DATA = Path(os.environ.get("BTCML_SHARED_DATA", REPO.parent / "shared" / "data" / "btc"))


class Btcml:
    """Runs the real binary against one store (SQLite under a temp home, or a fresh PostgreSQL database)."""

    def __init__(self, home: Path, db: str | None):
        self.home = home
        self.db = db

    def run(self, *args, check=True, timeout=600, env=None):
        cmd = [str(BIN), "--home", str(self.home)]
        if self.db:
            cmd += ["--db", self.db]
        cmd += [str(a) for a in args]
        full_env = dict(os.environ)
        full_env.pop("BTCML_DB", None)
        full_env.pop("BTCML_TRACKING_URI", None)
        full_env.update(env or {})
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env, stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise AssertionError(f"{cmd} exited {proc.returncode}: {proc.stderr}")
        return proc

    def json(self, *args, **kw):
        proc = self.run(*args, "--json", **kw)
        lines = [line for line in proc.stdout.splitlines() if line.strip()]
        assert len(lines) == 1, f"expected one JSON line on stdout, got {proc.stdout!r}"
        return json.loads(lines[0])


def _psql(url: str, sql: str):
    subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-qc", sql], check=True, capture_output=True, timeout=60)


@pytest.fixture
def pg_url():
    """A fresh PostgreSQL database on the test server, dropped afterwards."""
    base = os.environ.get("BTCML_TEST_POSTGRES_URL")
    if not base:
        if os.environ.get("CI"):
            pytest.fail("BTCML_TEST_POSTGRES_URL is not set: CI must run the PostgreSQL tests (scripts/test.sh starts a server)")
        pytest.skip("BTCML_TEST_POSTGRES_URL not set")
    name = "btcml_e2e_" + uuid.uuid4().hex[:10]
    _psql(base, f"CREATE DATABASE {name}")
    parts = urlparse(base)
    yield urlunparse(parts._replace(path="/" + name))
    _psql(base, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgresql"])
def btcml(request, tmp_path):
    """The binary against each backend in turn."""
    if request.param == "sqlite":
        return Btcml(tmp_path / "home", None)
    return Btcml(tmp_path / "home", request.getfixturevalue("pg_url"))


@pytest.fixture
def btcml_sqlite(tmp_path):
    return Btcml(tmp_path / "home", None)


def shared_file(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.exists():
        pytest.fail(f"shared test data {path} is missing (set BTCML_SHARED_DATA)")
    return path


def require_module(name: str):
    """Imports an optional Python package a test needs. Under CI a missing one fails the run: a skipped interop
    test is not a passing one."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is required under CI=true (scripts/install-deps.sh installs it): {e}")
        pytest.skip(f"{name} is not installed: {e}", allow_module_level=True)


def copy_home(home: Path, tmp_path: Path) -> Btcml:
    """A private copy of a prepared SQLite home (a module fixture trains once; each test gets its own copy)."""
    dest = tmp_path / "home"
    shutil.copytree(home, dest)
    return Btcml(dest, None)


@contextlib.contextmanager
def child(cmd, **popen_kwargs):
    """A child process that is killed and reaped when the block ends, however it ends; stdin is /dev/null."""
    proc = subprocess.Popen([str(c) for c in cmd], stdin=subprocess.DEVNULL, **popen_kwargs)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
