"""The pipelines and the scheduler through the real binary: `btcml pipeline list|run|show`, `btcml scheduler`,
`btcml serve --scheduler` and /api/v1/pipelines, on real stores (SQLite and PostgreSQL)."""
import datetime
import json
import os
import signal
import socket
import sqlite3
import subprocess
import time

import pytest
import requests

from conftest import BIN, Btcml
from serving import Server

SYMBOL = "BTCUSD-SYNTH"  # the synthetic source's symbol
TINY = ["--symbol", SYMBOL, "--window", "24", "--hidden", "8", "--layers", "1", "--epochs", "2",
        "--samples-per-epoch", "256", "--seed", "3"]
TICK = f"tick-{SYMBOL}-1h"
RETRAIN = f"retrain-{SYMBOL}-1h"


def write_config(b: Btcml, source="", **pipelines):
    b.home.mkdir(parents=True, exist_ok=True)
    lines = ["series:", f"  - symbol: {SYMBOL}", "    interval: 1h"]
    if source:
        lines.append(f"    source: {source}")
    settings = {"retrain_every": "never", **pipelines}
    lines.append("pipelines:")
    lines += [f"  {k}: {v}" for k, v in settings.items()]
    (b.home / "config.yaml").write_text("\n".join(lines) + "\n")


@pytest.fixture
def trained(btcml):
    btcml.json("ingest", "synthetic:7")
    write_config(btcml)
    btcml.json("train", *TINY)
    return btcml


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_scheduler(b: Btcml, log, env=None):
    cmd = [str(BIN), "--home", str(b.home), "--log-format", "json"]
    if b.db:
        cmd += ["--db", b.db]
    full_env = {k: v for k, v in os.environ.items() if k not in ("BTCML_DB", "BTCML_TRACKING_URI")}
    full_env.update(env or {})
    return subprocess.Popen([*cmd, "scheduler", "--poll-ms", "100"], stdout=subprocess.DEVNULL, stderr=log,
                            stdin=subprocess.DEVNULL, env=full_env)


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
            raise
    return proc.returncode


@pytest.mark.timeout(300)
def test_pipeline_run_retrains_and_records_every_task(trained):
    out = trained.json("pipeline", "run", RETRAIN, "--reason", "by hand", "--wait")
    run = out["run"]
    assert out["created"] is True
    assert run["status"] == "succeeded" and run["trigger"] == "cli" and run["reason"] == "by hand", run
    # No server runs in this process: a promotion is picked up by a running `btcml serve` by itself.
    assert [(t["task"], t["status"]) for t in run["tasks"]] == [
        ("train", "succeeded"), ("gate", "succeeded"), ("reload", "skipped")], run["tasks"]
    version = run["result"]["train"]["model_version"]
    assert version == 2 and run["result"]["gate"]["model_version"] == 2
    assert isinstance(run["result"]["gate"]["promoted"], bool)
    assert all(t["seconds"] is not None and t["seconds"] >= 0 for t in run["tasks"])
    # The retrain used the champion's window and hyperparameters, and is a registered version.
    card = trained.json("models", "show", str(version))
    assert card["window"] == 24 and card["hyperparameters"]["hidden"] == 8 and card["hyperparameters"]["seed"] == 3
    shown = trained.json("pipeline", "show", str(run["id"]))
    assert shown["id"] == run["id"] and shown["status"] == "succeeded" and len(shown["tasks"]) == 3
    listed = {p["name"]: p for p in trained.json("pipeline", "list")["pipelines"]}
    assert set(listed) == {TICK, RETRAIN}
    assert listed[RETRAIN]["last_run"]["id"] == run["id"] and listed[RETRAIN]["next_due"] is None
    assert listed[TICK]["every"] == "1h" and listed[TICK]["next_due"] is not None


def test_pipeline_commands_reject_bad_input(trained):
    proc = trained.run("pipeline", "run", "retrain-NOPE-1h", "--reason", "x", check=False)
    assert proc.returncode == 4 and "no pipeline 'retrain-NOPE-1h' is configured" in proc.stderr
    assert RETRAIN in proc.stderr  # the message names what is configured
    proc = trained.run("pipeline", "run", RETRAIN, check=False)
    assert proc.returncode != 0 and "--reason" in proc.stderr
    proc = trained.run("pipeline", "show", "999", check=False)
    assert proc.returncode == 4 and "no pipeline run 999" in proc.stderr
    (trained.home / "config.yaml").write_text("series:\n  - symbol: X\npipelines:\n  attempts: lots\n")
    proc = trained.run("pipeline", "list", check=False)
    assert proc.returncode != 0 and "pipelines.attempts 'lots'" in proc.stderr


@pytest.mark.timeout(300)
def test_a_tick_ingests_from_its_source_and_stores_a_scheduled_forecast(btcml_sqlite, tmp_path):
    b = btcml_sqlite
    b.json("ingest", "synthetic:7")
    b.json("train", *TINY)
    db = sqlite3.connect(b.home / "btcml.db")
    last, close = db.execute("SELECT open_time, close FROM bars WHERE symbol=? ORDER BY open_time DESC LIMIT 1",
                             (SYMBOL,)).fetchone()
    # Five new hourly bars after the stored ones, in a file the tick's source reads.
    source = tmp_path / "new-bars.csv"
    rows = ["DateTime,Open,High,Low,Close,Volume"]
    for i in range(1, 6):
        t = datetime.datetime.fromtimestamp(last + 3600 * i, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        rows.append(f"{t},{close},{close * 1.01},{close * 0.99},{close},10")
    source.write_text("\n".join(rows) + "\n")
    write_config(b, source=str(source))

    run = b.json("pipeline", "run", TICK, "--reason", "test tick", "--wait")["run"]
    assert run["status"] == "succeeded", run
    tasks = {t["task"]: t for t in run["tasks"]}
    assert set(tasks) == {"ingest", "forecast", "score"}
    assert tasks["ingest"]["detail"]["rows_inserted"] == 5
    newest = last + 5 * 3600
    assert tasks["forecast"]["detail"]["as_of"] == datetime.datetime.fromtimestamp(
        newest, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    stored = db.execute("SELECT provenance, model_version, count(*) FROM predictions WHERE origin_time=? "
                        "GROUP BY provenance, model_version", (newest,)).fetchall()
    assert stored == [("scheduled", 1, 3)]  # horizons 1, 6, 24 of the champion


@pytest.mark.timeout(300)
def test_an_unreachable_source_is_retried_recorded_failed_and_the_next_tick_still_runs(btcml, tmp_path):
    btcml.json("ingest", "synthetic:7")
    write_config(btcml, source="binance:BTCUSDT", tick_every="2s", attempts=2, backoff="1s")
    with open(tmp_path / "scheduler.log", "w") as log:
        proc = start_scheduler(btcml, log, env={"BTCML_BINANCE_URL": f"http://127.0.0.1:{closed_port()}"})
        try:
            def two_failed():
                runs = [r for r in btcml.json("pipeline", "list")["pipelines"] if r["name"] == TICK][0]["last_run"]
                return runs and runs["id"] >= 2 and runs["status"] == "failed" and runs
            wait_until(two_failed, 120, "a second failed tick")
        finally:
            assert stop(proc) == 0, (tmp_path / "scheduler.log").read_text()
    for run_id in (1, 2):
        run = btcml.json("pipeline", "show", str(run_id))
        assert run["status"] == "failed" and run["trigger"] == "schedule", run
        assert "task ingest failed after 2 attempt(s)" in run["error"], run
        attempts = [t for t in run["tasks"] if t["task"] == "ingest"]
        assert [a["attempt"] for a in attempts] == [1, 2] and all(a["status"] == "failed" for a in attempts)
        assert all("127.0.0.1" in a["error"] for a in attempts), attempts
        # The second attempt waited for the backoff after the first.
        assert attempts[1]["started_at"] >= attempts[0]["finished_at"]
        assert [t["task"] for t in run["tasks"]] == ["ingest", "ingest"]  # later tasks did not run


@pytest.mark.timeout(400)
def test_two_schedulers_on_one_store_run_each_run_once_and_a_trigger_joins_the_running_retrain(trained, tmp_path):
    # A retrain long enough to overlap both schedulers' polls.
    write_config(trained, epochs=30)
    queued = trained.json("pipeline", "run", RETRAIN, "--reason", "first")
    assert queued["created"] is True and queued["run"]["status"] == "queued"
    logs = [open(tmp_path / f"scheduler-{i}.log", "w") for i in range(2)]
    procs = [start_scheduler(trained, log) for log in logs]
    try:
        running = wait_until(lambda: (lambda r: r if r["status"] == "running" else None)(
            trained.json("pipeline", "show", str(queued["run"]["id"]))), 120, "the retrain to start")
        owners = {f"{p.pid}" for p in procs}
        assert running["owner"].rsplit(":", 1)[1] in owners
        # A trigger while it runs joins it: no second run.
        joined = trained.json("pipeline", "run", RETRAIN, "--reason", "second")
        assert joined["created"] is False and joined["run"]["id"] == queued["run"]["id"]
        done = wait_until(lambda: (lambda r: r if r["status"] not in ("queued", "running") else None)(
            trained.json("pipeline", "show", str(queued["run"]["id"]))), 300, "the retrain to finish")
        assert done["status"] == "succeeded", done
        assert [t["task"] for t in done["tasks"]] == ["train", "gate", "reload"]
        assert all(p.poll() is None for p in procs)
    finally:
        codes = [stop(p) for p in procs]
        for log in logs:
            log.close()
    assert codes == [0, 0]
    # Exactly one scheduler claimed each run (the retrain, and the hourly tick both queued); the other waited.
    started = [json.loads(line) for i in range(2)
               for line in (tmp_path / f"scheduler-{i}.log").read_text().splitlines()
               if line.startswith("{") and "pipeline run started" in line]
    assert sorted(e["btcml.pipeline.run_id"] for e in started) == sorted({e["btcml.pipeline.run_id"] for e in started})
    assert [e["btcml.pipeline.name"] for e in started].count(RETRAIN) == 1, started
    assert trained.json("pipeline", "list")["pipelines"][1]["last_run"]["id"] == queued["run"]["id"]


@pytest.mark.timeout(300)
def test_the_api_lists_and_queues_runs_that_serve_scheduler_runs(trained):
    with Server(trained, "--scheduler", "--api-key", "k1") as server:
        listed = server.get("/api/v1/pipelines").json()["pipelines"]
        assert [p["name"] for p in listed] == [TICK, RETRAIN]
        assert server.post(f"/api/v1/pipelines/{RETRAIN}/runs", json={"reason": "x"}).status_code == 401
        key = {"X-API-Key": "k1"}
        r = server.post("/api/v1/pipelines/retrain-NOPE-1h/runs", json={"reason": "x"}, headers=key)
        assert r.status_code == 404 and RETRAIN in r.json()["detail"]
        r = server.post(f"/api/v1/pipelines/{RETRAIN}/runs", json={}, headers=key)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "reason"
        r = server.post(f"/api/v1/pipelines/{RETRAIN}/runs", data="{", headers={**key, "Content-Type": "application/json"})
        assert r.status_code == 400
        assert server.get(f"/api/v1/pipelines/{RETRAIN}/runs?limit=0").status_code == 400
        r = server.post(f"/api/v1/pipelines/{RETRAIN}/runs", json={"reason": "api test"}, headers=key)
        assert r.status_code == 202 and r.json()["created"] is True, r.text
        run_id = r.json()["run"]["id"]
        again = server.post(f"/api/v1/pipelines/{RETRAIN}/runs", json={"reason": "again"}, headers=key)
        assert again.status_code == 202
        # Joined the active run, unless the scheduler already finished it (then a new one is queued).
        assert again.json()["created"] is False or again.json()["run"]["id"] != run_id

        def finished():
            runs = server.get(f"/api/v1/pipelines/{RETRAIN}/runs").json()["runs"]
            mine = [r for r in runs if r["id"] == run_id]
            return mine and mine[0]["status"] not in ("queued", "running") and mine[0]
        run = wait_until(finished, 240, "the server's scheduler to run the retrain")
        assert run["status"] == "succeeded" and run["trigger"] == "api" and run["reason"] == "api test", run
        assert [t["task"] for t in run["tasks"]] == ["train", "gate", "reload"]
        reload = run["tasks"][2]
        if run["result"]["gate"]["promoted"]:
            assert reload["status"] == "succeeded"
            version = run["result"]["train"]["model_version"]
            server.wait_for(lambda: server.get("/api/v1/forecast").json()["model_version"] == version, 30,
                            "the promoted version to serve")
        else:
            assert reload["status"] == "skipped"
        assert server.terminate() == 0


@pytest.mark.timeout(300)
def test_a_task_past_its_timeout_is_stopped_and_recorded_failed(btcml):
    # Training checks its stop token after every epoch: a 1 s timeout ends a retrain of 500 epochs (the champion's
    # patience of 100 keeps early stopping out of the way) after an epoch or two.
    trained = btcml
    trained.json("ingest", "synthetic:7")
    trained.json("train", "--symbol", SYMBOL, "--window", "24", "--hidden", "16", "--layers", "1", "--epochs", "1",
                 "--samples-per-epoch", "2048", "--patience", "100")
    write_config(trained, retrain_timeout="1s", attempts=1, epochs=500)
    started = time.monotonic()
    proc = trained.run("pipeline", "run", RETRAIN, "--reason", "too slow", "--wait", "--json", check=False)
    assert proc.returncode == 5, proc.stderr
    assert time.monotonic() - started < 120
    run = json.loads(proc.stdout)["run"]
    assert run["status"] == "failed" and "task train failed after 1 attempt(s): timed out after 1s" in run["error"]
    assert [(t["task"], t["status"]) for t in run["tasks"]] == [("train", "failed")]
    # The stopped training is tracked as KILLED, and no version was published.
    runs = trained.json("tracking", "runs")["runs"]
    assert [r["status"] for r in runs] == ["KILLED", "FINISHED"], runs
    versions = trained.json("models", "list")["models"][0]["versions"]
    assert [v["version"] for v in versions] == [1]
