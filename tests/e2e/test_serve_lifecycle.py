"""btcml serve under change: hot reload of the champion under concurrent load, a champion that fails to load,
graceful SIGTERM with a request in flight, and a schemathesis fuzz run against /openapi.json."""
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from conftest import Btcml
from serving import Hammer, Server
from test_serve import KEY, MODEL, SYMBOL, home, iso, parse, trained_home, window  # noqa: F401 (fixtures)


def point_champion_at_unloadable(home: Btcml, version: int):
    """The store names a champion whose files do not load here (damaged since it was promoted, or a home whose
    model files lag the shared store): what the registry's own checks never let a promotion do."""
    with sqlite3.connect(home.home / "btcml.db") as db:
        db.execute("INSERT INTO model_versions VALUES (?, ?, 'damaged', 0, '{}', '')", (version, MODEL))
        db.execute("UPDATE model_aliases SET version = ? WHERE model_name = ? AND alias = 'champion'",
                   (version, MODEL))


def test_hot_reload_under_load_fails_no_request(home):
    with Server(home, "--api-key", KEY) as s:
        body = window(s)
        with Hammer(s, threads=4, predict_body=body) as load:
            for i in range(6):
                load.wait_for_more()
                if i % 2 == 0:
                    home.json("models", "promote", "1")  # another process: the CLI
                    s.wait_for(lambda: serving(s) == 1, what="reload to 1")
                else:
                    assert s.post("/api/v1/models/2/promote", headers={"X-API-Key": KEY}).status_code == 200
                    s.wait_for(lambda: serving(s) == 2, what="reload to 2")
            load.wait_for_more()
        assert load.failures == []
        assert load.versions == {1, 2} and load.count > 50
        swaps = [line for line in s.log_lines() if line["message"] == "serving model"]
        assert len(swaps) == 7  # the first load and six swaps


def test_a_champion_that_fails_to_load_keeps_the_old_model(home):
    with Server(home) as s:
        broken = home.home / "models" / "3"
        shutil.copytree(home.home / "models" / "2", broken)
        (broken / "weights.bin").write_bytes(b"BTCMLWTS-truncated")
        point_champion_at_unloadable(home, 3)
        failures = f'btcml_model_load_failures_total{{symbol="{SYMBOL}",interval="1h"}} 1'
        s.wait_for(lambda: failures in s.get("/metrics").text, what="failure metric")
        assert s.get("/api/v1/forecast").json()["model_version"] == 2
        assert s.get("/readyz").status_code == 200
        failed = [line for line in s.log_lines() if line["log.level"] == "error"]
        assert failed and failed[0]["btcml.model.version"] == 3 and failed[0]["btcml.model.serving_version"] == 2
        assert "champion version 3 failed to load" in s.get("/readyz").json()["series"][0]["champion_error"]
        home.json("models", "promote", "1")
        s.wait_for(lambda: s.get("/api/v1/forecast").json()["model_version"] == 1, what="recovery")


def serving(server) -> int:
    [series] = server.get("/readyz").json()["series"]
    return series["model_version"]


def in_flight(server) -> int:
    metrics = server.get("/metrics").text
    return int(re.search(r"^btcml_http_requests_in_flight (\d+)$", metrics, re.M).group(1))


@pytest.mark.timeout(120)
def test_sigterm_finishes_a_request_in_flight_and_exits_0(home):
    with Server(home, "--api-key", KEY) as s:
        last = s.get("/api/v1/bars", params={"from": s.get("/api/v1/forecast").json()["as_of"]}).json()["bars"][-1]
        new_time = iso(parse(last["time"]) + timedelta(hours=1))
        body = {"symbol": SYMBOL, "interval": "1h", "bars": [dict(last, time=new_time)]}
        # This process holds SQLite's write lock, so the POST below waits inside the server: it is in flight, for
        # certain, until the lock is released after the signal.
        lock = sqlite3.connect(home.home / "btcml.db", isolation_level=None, timeout=30)
        lock.execute("BEGIN IMMEDIATE")
        answers = []
        poster = threading.Thread(target=lambda: answers.append(
            requests.post(s.url + "/api/v1/bars", json=body, headers={"X-API-Key": KEY}, timeout=60)))
        poster.start()
        try:
            # The /metrics request counts itself: 2 means the POST is being handled too.
            s.wait_for(lambda: in_flight(s) == 2, what="the POST in flight")
            s.proc.send_signal(signal.SIGTERM)
            s.wait_for(lambda: any(line["message"].startswith("stopping") for line in s.log_lines()), what="stopping")
            stopping = next(line for line in s.log_lines() if line["message"].startswith("stopping"))
            assert stopping["message"] == "stopping: no new connections; finishing in-flight requests"
            assert stopping["btcml.in_flight"] == 1
            with pytest.raises(requests.ConnectionError):
                requests.get(s.url + "/healthz", timeout=5)
            assert s.proc.poll() is None, "the server must wait for the request in flight"
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        assert s.proc.wait(timeout=60) == 0
        poster.join(timeout=60)
        assert answers and answers[0].status_code == 201, answers and answers[0].text
        assert answers[0].json()["rows_inserted"] == 1
        assert s.log_lines()[-1]["message"] == "stopped"
    stored = home.run("bars", "--symbol", SYMBOL, "--from", new_time, "--format", "csv").stdout.splitlines()
    assert len(stored) == 2 and stored[1].startswith(new_time + ","), stored


def test_schemathesis_finds_no_server_errors_or_schema_violations(home, tmp_path):
    st = Path(sys.executable).with_name("st")
    if not st.exists():
        pytest.fail("schemathesis is not installed: run scripts/install-deps.sh")
    # The alert token too, so that POST /api/v1/alerts is fuzzed past its authentication (it reads only the bearer).
    with Server(home, "--api-key", KEY, "--alert-token", "fuzz-alert-token") as s:
        proc = subprocess.run(
            [str(st), "run", f"{s.url}/openapi.json", "--experimental=openapi-3.1",
             "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
                         "response_schema_conformance",
             "--hypothesis-max-examples", "25", "--hypothesis-deadline", "none", "--hypothesis-seed", "1",
             "--hypothesis-suppress-health-check", "all",
             "-H", f"X-API-Key: {KEY}", "-H", "Authorization: Bearer fuzz-alert-token",
             "--max-response-time", "5000", "--request-timeout", "10000",
             "--no-color", "--exclude-path", "/docs/{file}"],
            capture_output=True, text=True, timeout=170, cwd=tmp_path)
        assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
        assert s.get("/healthz").status_code == 200
