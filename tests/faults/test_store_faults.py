"""Store and registry faults: concurrent promoters, a version that does not load, runs killed with SIGKILL."""
import json
import os
import signal
import sqlite3
import subprocess
import threading
import time

import pytest

from conftest import BIN, Btcml, child
from serving import Server

SYMBOL = "BTCUSD-SYNTH"
TINY = ["--symbol", SYMBOL, "--window", "24", "--hidden", "8", "--layers", "1", "--epochs", "1",
        "--samples-per-epoch", "128"]
KEY = "promote-key"
# Beats every 0.5 s, so a run is abandoned once its last beat is 3 s old (6 periods): tests need not wait a minute.
HEARTBEAT = {"BTCML_HEARTBEAT_SECONDS": "0.5"}
ABANDON_AFTER_S = 3.0


def command(b: Btcml, *args):
    cmd = [str(BIN), "--home", str(b.home)]
    if b.db:
        cmd += ["--db", b.db]
    return cmd + [str(a) for a in args]


def environment(extra=None):
    env = dict(os.environ)
    env.pop("BTCML_DB", None)
    env.pop("BTCML_TRACKING_URI", None)
    env.update(extra or {})
    return env


def with_versions(b: Btcml, count: int):
    b.json("ingest", "synthetic:7", "--from", "2023-01-01", "--to", "2023-02-15")
    for seed in range(1, count + 1):
        b.json("train", *TINY, "--seed", seed)


def champion(b: Btcml):
    """The alias table's champion: the one record of it (no file on disk names it)."""
    [model] = b.json("models", "list")["models"]
    assert not (b.home / "models" / "champion").exists()
    return model["aliases"].get("champion")


@pytest.mark.timeout(900)
def test_concurrent_promoters_leave_one_champion_that_the_server_serves(btcml):
    with_versions(btcml, 3)
    with Server(btcml, "--api-key", KEY) as server:
        for round_ in range(3):
            answers = []  # (who, version, status, text)
            lock = threading.Lock()

            def http(version):
                r = server.post(f"/api/v1/models/{version}/promote", headers={"X-API-Key": KEY})
                with lock:
                    answers.append(("api", version, r.status_code, r.text))

            versions = [1 + (round_ + k) % 3 for k in range(6)]
            procs = [(v, subprocess.Popen(command(btcml, "models", "promote", v, "--json"), env=environment(),
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                          stdin=subprocess.DEVNULL)) for v in versions]
            threads = [threading.Thread(target=http, args=(v,)) for v in versions]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=120)
                assert not t.is_alive(), "an HTTP promote never answered"
            for v, p in procs:
                out, err = p.communicate(timeout=120)
                answers.append(("cli", v, p.returncode, out + err))
            for who, version, status, text in answers:
                allowed = (200, 409) if who == "api" else (0, 5)
                assert status in allowed, f"{who} promote {version}: {status} {text}"
                if status in (409, 5):
                    assert "already the champion" in text, text
            assert any(status in (200, 0) for _, _, status, _ in answers), answers
            table = champion(btcml)
            history = btcml.json("models", "show", str(table))
            assert "champion" in history["aliases"], f"round {round_}: {history}"
        # The server then serves the champion the alias table names.
        server.wait_for(lambda: server.get("/api/v1/models").json()["registered_models"][0]["serving"] == table,
                        timeout=30, what="the server to serve the champion")


def test_cli_promote_and_rollback_refuse_a_version_that_does_not_load(btcml_sqlite):
    b = btcml_sqlite
    with_versions(b, 2)
    if champion(b) != 1:
        b.json("models", "promote", "1")
    b.json("models", "promote", "2")  # champion 2, previous 1: what rollback would go back to
    weights = b.home / "models" / "1" / "weights.bin"
    weights.write_bytes(weights.read_bytes()[:-20])
    listed = b.json("models", "list")

    p = b.run("models", "promote", "1", check=False)
    assert p.returncode == 3, p.stderr  # invalid input
    assert "version 1 cannot become the champion: it does not load" in p.stderr, p.stderr
    assert "weights.bin" in p.stderr and "truncated" in p.stderr, p.stderr
    p = b.run("models", "rollback", check=False)
    assert p.returncode == 3 and "version 1 cannot become the champion" in p.stderr, p.stderr

    assert b.json("models", "list") == listed


# Runs killed with SIGKILL.

def ingest_runs(b: Btcml):
    """[(id, status, error)] of ingest_runs, read behind btcml's back while a run may hold the write lock."""
    sql = "SELECT id, status, error FROM ingest_runs ORDER BY id"
    if b.db:
        out = subprocess.run(["psql", b.db, "-tAF", "\t", "-c", sql], check=True, capture_output=True, text=True,
                             timeout=60).stdout
        return [(int(i), s, e) for i, s, e in (line.split("\t") for line in out.splitlines() if line)]
    with sqlite3.connect(f"file:{b.home / 'btcml.db'}?mode=ro", uri=True, timeout=30) as db:
        return list(db.execute(sql))


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def outlive_the_threshold(proc):
    """Lets more than the abandon threshold pass while `proc` runs (time itself is what is waited for)."""
    end = time.monotonic() + 2 * ABANDON_AFTER_S
    while time.monotonic() < end:
        assert proc.poll() is None, "the run ended before the test could kill it: make it longer"
        time.sleep(0.1)


def sweep(b: Btcml):
    """A command that lists runs, and so abandons those that stopped beating."""
    return b.json("tracking", "runs", env=HEARTBEAT)["runs"]


@pytest.mark.timeout(300)
def test_a_killed_ingest_is_ended_as_failed_by_the_next_command(btcml):
    # 44 million one-second bars: minutes of work even on a machine ten times faster than the test needs.
    with child(command(btcml, "ingest", "synthetic:3", "--interval", "1s", "--from", "2020-01-01", "--to",
                       "2021-06-01"), env=environment(HEARTBEAT), stdout=subprocess.DEVNULL,
               stderr=subprocess.DEVNULL) as proc:
        def started():
            assert proc.poll() is None, "the ingest ended before the test could kill it"
            try:
                return bool(ingest_runs(btcml))
            except (sqlite3.Error, subprocess.CalledProcessError):  # the store is still being created
                return False

        wait_until(started, 60, "the ingest run's row")
        outlive_the_threshold(proc)
        sweep(btcml)  # a live run keeps beating (or holds SQLite's write lock): it is left alone
        assert proc.poll() is None, "the ingest ended during the sweep"
        assert [status for _, status, _ in ingest_runs(btcml)] == ["running"]
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    wait_until(lambda: sweep(btcml) is not None and ingest_runs(btcml)[0][1] != "running", 60,
               "the killed ingest to be abandoned")
    [(_, status, error)] = ingest_runs(btcml)
    assert status == "failed" and error.startswith("abandoned: no heartbeat since "), error


@pytest.mark.timeout(300)
def test_a_killed_training_is_ended_as_killed_by_the_next_command(btcml):
    btcml.json("ingest", "synthetic:7", "--from", "2021-01-01", "--to", "2023-03-01")
    # Default network, every window each epoch, up to 100 epochs without improvement: far longer than the test
    # needs on any machine.
    with child(command(btcml, "train", "--symbol", SYMBOL, "--epochs", "100000", "--patience", "100",
                       "--samples-per-epoch", "0"),
               env=environment(HEARTBEAT), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as proc:
        wait_until(lambda: sweep(btcml) or proc.poll() is not None, 120, "the training run")
        outlive_the_threshold(proc)
        [run] = sweep(btcml)
        assert proc.poll() is None, "the training ended during the sweep"
        assert run["status"] == "RUNNING", run
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    wait_until(lambda: sweep(btcml)[0]["status"] != "RUNNING", 60, "the killed training to be abandoned")
    [run] = sweep(btcml)
    assert run["status"] == "KILLED", run
    # Training again works as before, and its own run is not disturbed.
    out = btcml.json("train", *TINY, env=HEARTBEAT)
    assert [r["status"] for r in sweep(btcml)] == ["FINISHED", "KILLED"] and out["run_id"] == sweep(btcml)[0]["run_id"]
