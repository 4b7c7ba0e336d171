"""Faults against `btcml serve`: hostile JSON, a PostgreSQL restart under a running server, a corrupt champion,
and anonymous traffic trying to grow the predictions table."""
import os
import shutil
import socket
import subprocess
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import requests

from conftest import Btcml, copy_home
from serving import Server

SYMBOL = "BTCUSD-SYNTH"
TINY = ["--symbol", SYMBOL, "--window", "24", "--hidden", "8", "--layers", "1", "--epochs", "1",
        "--samples-per-epoch", "128", "--seed", "3"]
KEY = "s3cret-key-for-faults"
DEEP = 70_000  # far past the documented limit of 64 levels; enough to overflow the stack of a recursive walker
PG_BIN = Path("/usr/lib/postgresql/15/bin")


@pytest.fixture(scope="module")
def trained_home(tmp_path_factory):
    """A SQLite home with synthetic bars and two tiny models (version 2 the champion); tests copy it."""
    b = Btcml(tmp_path_factory.mktemp("trained") / "home", None)
    b.json("ingest", "synthetic:7")
    b.json("train", *TINY)
    b.json("train", *TINY[:-1], "4", "--force-promote")
    return b.home


@pytest.fixture
def home(trained_home, tmp_path):
    return copy_home(trained_home, tmp_path)


def problem(resp, status):
    assert resp.status_code == status, resp.text
    assert resp.headers["Content-Type"] == "application/problem+json"
    return resp.json()


def windows(server, count, size=25):
    """`count` distinct predict bodies of `size` consecutive stored bars each (oldest windows first)."""
    bars = server.get("/api/v1/bars", params={"limit": size + count}).json()["bars"]
    assert len(bars) == size + count
    return [{"symbol": SYMBOL, "interval": "1h", "bars": bars[i:i + size]} for i in range(count)]


# ---- item 2: nesting depth ------------------------------------------------------------------------------------------

def nested(depth):
    return "[" * depth + "]" * depth


def bar_body(open_value: str) -> str:
    return ('{"symbol": "%s", "interval": "1h", "bars": [{"time": "2024-01-01T00:00:00Z", "open": %s, '
            '"high": 2, "low": 1, "close": 1.5, "volume": 3}]}' % (SYMBOL, open_value))


@pytest.mark.timeout(120)
@pytest.mark.parametrize("route", ["/api/v1/bars", "/api/v1/predict"])
@pytest.mark.parametrize("where", ["whole body", "bar field"])
def test_deeply_nested_json_is_refused_naming_the_limit(home, route, where):
    with Server(home, "--api-key", KEY) as s:
        data = nested(DEEP) if where == "whole body" else bar_body(nested(DEEP))
        r = s.post(route, data=data, headers={"Content-Type": "application/json", "X-API-Key": KEY})
        body = problem(r, 400)
        assert "more than 64 levels deep" in body["detail"], body
        assert s.get("/healthz").status_code == 200, "the server survives"
        assert s.proc.poll() is None


@pytest.mark.timeout(120)
def test_json_nested_up_to_the_limit_is_parsed(home):
    headers = {"Content-Type": "application/json", "X-API-Key": KEY}
    with Server(home, "--api-key", KEY) as s:
        # The body, the bars array and the bar are 3 levels: 61 more reach the limit of 64 exactly. The bar is
        # rejected (its open is no number) and kept with its raw text, as any bad row.
        r = s.post("/api/v1/bars", data=bar_body(nested(61)), headers=headers)
        assert r.status_code == 200, r.text
        assert r.json()["rows_rejected"] == 1
        r = s.post("/api/v1/bars", data=bar_body(nested(62)), headers=headers)
        assert "more than 64 levels deep" in problem(r, 400)["detail"]


# ---- item 17a: predict takes any number >= window + 1 of bars ---------------------------------------------------------

@pytest.mark.timeout(120)
def test_predict_uses_the_latest_window_of_a_longer_run_of_bars(home):
    with Server(home) as s:
        forecast = s.get("/api/v1/forecast").json()
        # The 100 bars ending at the forecast's last bar: the answer is the forecast's, made from the last 25.
        as_of = datetime.strptime(forecast["as_of"], "%Y-%m-%dT%H:%M:%SZ")
        start = (as_of - timedelta(hours=99)).strftime("%Y-%m-%dT%H:%M:%SZ")
        page = s.get("/api/v1/bars", params={"from": start, "to": forecast["as_of"]}).json()["bars"]
        assert len(page) == 100
        r = s.post("/api/v1/predict", json={"symbol": SYMBOL, "interval": "1h", "bars": page})
        assert r.status_code == 200, r.text
        out = r.json()
        assert out.pop("bars_used") == 25
        assert out == forecast
        # Fewer than window + 1 is still refused, naming how many are needed.
        r = s.post("/api/v1/predict", json={"symbol": SYMBOL, "interval": "1h", "bars": page[-24:]})
        assert "at least 25" in problem(r, 422)["detail"]


# ---- item 16: a corrupt champion ------------------------------------------------------------------------------------

@pytest.mark.timeout(180)
def test_corrupt_champion_is_named_with_its_reason_and_retried_until_it_loads(home):
    weights = home.home / "models" / "2" / "weights.bin"
    good = weights.read_bytes()
    weights.write_bytes(good[: len(good) // 2])
    with Server(home) as s:
        for method, path in (("GET", "/api/v1/forecast"), ("GET", "/readyz"), ("POST", "/api/v1/predict")):
            r = requests.request(method, s.url + path, json={}, timeout=30)
            detail = problem(r, 503)["detail"]
            assert "champion version 2 failed to load" in detail and "weights.bin" in detail, detail
            assert "retrying in" in detail, detail
        # Repaired in place: served again without a restart, within the backoff (capped at 60 s).
        weights.write_bytes(good)
        s.wait_for(lambda: s.get("/readyz").status_code == 200, timeout=90, what="the repaired champion")
        assert [entry["model_version"] for entry in s.get("/readyz").json()["series"]] == [2]
        assert s.get("/api/v1/forecast").status_code == 200
        assert s.proc.poll() is None


# ---- item 10: anonymous predictions are bounded -------------------------------------------------------------------

def metric(server, name):
    for line in server.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


@pytest.mark.timeout(120)
def test_anonymous_predictions_are_stored_up_to_a_budget_and_keyed_ones_always(home):
    with Server(home, "--api-key", KEY, "--anonymous-predictions", "3") as s:
        bodies = windows(s, 7)
        for body in bodies[:6]:
            r = s.post("/api/v1/predict", json=body)
            assert r.status_code == 200, "over the budget the answer still comes; only storing stops"
        # Repeats of a stored body cost nothing and store nothing.
        assert s.post("/api/v1/predict", json=bodies[0]).status_code == 200
        # A request with a valid key is stored whatever the anonymous budget says.
        assert s.post("/api/v1/predict", json=bodies[6], headers={"X-API-Key": KEY}).status_code == 200
        # The writer is first-in first-out: once the keyed set is stored, everything before it was handled.
        s.wait_for(lambda: metric(s, "btcml_predictions_stored_total") == 12, timeout=30, what="12 stored rows")
        assert len(s.get("/api/v1/predictions", params={"limit": 1000}).json()["predictions"]) == 12
        assert metric(s, 'btcml_predictions_not_stored_total{reason="anonymous_budget"}') == 9


# ---- item 3: PostgreSQL restarts under a running server ---------------------------------------------------------------

def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivatePostgres:
    """A PostgreSQL server of this test alone, so that stopping it disturbs no other test."""

    def __init__(self):
        if not (PG_BIN / "pg_ctl").exists():
            if os.environ.get("CI"):
                pytest.fail(f"{PG_BIN}/pg_ctl is missing: CI must run the PostgreSQL fault tests")
            pytest.skip("PostgreSQL server binaries are not installed")
        self.dir = Path(tempfile.mkdtemp(prefix="btcml-pg-fault-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self.dir.chmod(0o700)
        self._as_server_user(PG_BIN / "initdb", "-D", self.data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
                             "--locale=C", "--no-sync")
        self.start()

    def _as_server_user(self, *cmd):
        cmd = [str(c) for c in cmd]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120, cwd="/")

    def start(self):
        self._as_server_user(PG_BIN / "pg_ctl", "start", "-w", "-t", "60", "-D", self.data, "-l",
                             self.dir / "server.log", "-o",
                             f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off")

    def stop(self):
        self._as_server_user(PG_BIN / "pg_ctl", "stop", "-w", "-m", "fast", "-D", self.data)

    def close(self):
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass  # already stopped
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def private_pg():
    pg = PrivatePostgres()
    yield pg
    pg.close()


def status_of(server, path):
    try:
        return requests.get(server.url + path, timeout=10).status_code
    except requests.RequestException as e:
        return repr(e)


@pytest.mark.timeout(300)
def test_serve_reconnects_after_postgresql_restarts(private_pg, tmp_path):
    b = Btcml(tmp_path / "home", private_pg.url)
    b.json("ingest", "synthetic:7")
    b.json("train", *TINY)
    with Server(b) as s:
        assert s.get("/readyz").status_code == 200
        assert s.get("/api/v1/forecast").status_code == 200  # stores 3 predictions
        bodies = windows(s, 2)
        s.wait_for(lambda: len(s.get("/api/v1/predictions").json()["predictions"]) == 3, what="3 predictions")

        private_pg.stop()
        s.wait_for(lambda: status_of(s, "/readyz") == 503, timeout=10, what="/readyz 503 while the database is down")
        assert "store unreachable" in s.get("/readyz").json()["detail"]
        problem(s.get("/api/v1/bars"), 503)
        assert s.get("/healthz").status_code == 200
        # Predictions made while the database is down are answered, and stored once it is back.
        for body in bodies:
            assert s.post("/api/v1/predict", json=body).status_code == 200

        private_pg.start()
        back = time.monotonic()
        s.wait_for(lambda: status_of(s, "/readyz") == 200, timeout=10, what="/readyz 200 after the restart")
        s.wait_for(lambda: status_of(s, "/api/v1/bars") == 200, timeout=10, what="GET /api/v1/bars 200")
        assert time.monotonic() - back < 10
        s.wait_for(lambda: len(s.get("/api/v1/predictions").json()["predictions"]) == 9, timeout=30,
                   what="the predictions queued during the outage")
        assert s.get("/api/v1/forecast").status_code == 200
        assert s.proc.poll() is None


@pytest.mark.timeout(120)
@pytest.mark.parametrize("query,limit", [("", 30), ("?connect_timeout=1", 8)])
def test_a_database_that_never_answers_fails_the_connection_in_time(tmp_path, query, limit):
    """A server that accepts connections and never answers (a hung host behind a live port) once held libpq, and
    the thread that connects, for ever. The default connect timeout is 10 s; one in the URL wins."""
    with socket.socket() as mute:
        mute.bind(("127.0.0.1", 0))
        mute.listen(16)  # the kernel completes the handshakes; nobody ever reads or answers
        url = f"postgresql://postgres@127.0.0.1:{mute.getsockname()[1]}/btcml{query}"
        started = time.monotonic()
        proc = Btcml(tmp_path / "home", url).run("serve", "--port", "0", check=False, timeout=60)
        elapsed = time.monotonic() - started
    assert proc.returncode != 0
    assert "timeout expired" in proc.stderr, proc.stderr
    assert elapsed < limit, elapsed
