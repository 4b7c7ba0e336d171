"""The scheduler through a real PostgreSQL restart: it keeps polling while the database is down and runs the next
tick once it is back (a private server per test, so that stopping it disturbs no other test)."""
import json
import os
import signal
import subprocess
import time

import pytest

from conftest import BIN, Btcml
from test_serve_faults import private_pg  # noqa: F401 (fixture)

SYMBOL = "BTCUSD-SYNTH"
TICK = f"tick-{SYMBOL}-1h"


def newest_tick(b):
    listed = [p for p in b.json("pipeline", "list")["pipelines"] if p["name"] == TICK]
    return listed[0]["last_run"]


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except AssertionError:
            value = None  # the CLI could not reach the database yet
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.mark.timeout(300)
def test_the_scheduler_keeps_running_through_a_postgresql_restart(private_pg, tmp_path):  # noqa: F811
    b = Btcml(tmp_path / "home", private_pg.url)
    b.json("ingest", "synthetic:7")
    b.home.mkdir(parents=True, exist_ok=True)
    (b.home / "config.yaml").write_text(f"series:\n  - symbol: {SYMBOL}\n    interval: 1h\n"
                                        "pipelines:\n  tick_every: 1s\n  retrain_every: never\n  attempts: 1\n")
    env = {k: v for k, v in os.environ.items() if k != "BTCML_DB"}
    log_path = tmp_path / "scheduler.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([str(BIN), "--home", str(b.home), "--db", private_pg.url, "--log-format", "json",
                                 "scheduler", "--poll-ms", "100"], stdout=subprocess.DEVNULL, stderr=log,
                                stdin=subprocess.DEVNULL, env=env)
        try:
            before = wait_until(lambda: (lambda r: r if r and r["status"] == "succeeded" else None)(newest_tick(b)),
                                60, "a first tick")
            private_pg.stop()
            wait_until(lambda: "scheduler poll failed" in log_path.read_text(), 60, "a poll to fail")
            assert proc.poll() is None, log_path.read_text()
            private_pg.start()
            after = wait_until(lambda: (lambda r: r if r and r["status"] == "succeeded" and r["id"] > before["id"]
                                        else None)(newest_tick(b)), 90, "a tick after the restart")
            assert after["trigger"] == "schedule"
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=60)
    assert code == 0, log_path.read_text()
    # Nothing stays running: a run caught by the outage ends failed (or abandoned), never running for ever.
    statuses = [json.loads(line) for line in log_path.read_text().splitlines() if "pipeline run finished" in line]
    assert statuses and all(s["btcml.pipeline.status"] in ("succeeded", "failed") for s in statuses)
