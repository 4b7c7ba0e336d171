"""Faults against live monitoring: the store going away under the /metrics exporter, model cards that are missing
or hand-edited, and forecasts scored by two processes at once."""
import json
import os
import shutil
import subprocess

import pytest

from conftest import BIN, Btcml
from monitoring import SYMBOL, TINY, metric_samples, replay_clock, sql, store_forecasts
from serving import Server
from test_serve_faults import PrivatePostgres


@pytest.fixture
def private_pg():
    pg = PrivatePostgres()
    yield pg
    pg.close()


def log_messages(server):
    return [line["message"] for line in server.log_lines()]


@pytest.mark.timeout(300)
def test_metrics_keep_the_last_snapshot_while_postgresql_is_down(private_pg, tmp_path):
    b = Btcml(tmp_path / "home", private_pg.url)
    b.json("ingest", "synthetic:7")
    b.json("train", *TINY)
    _, clock = replay_clock(b)
    store_forecasts(b, clock)
    b.json("monitor", "score", env=clock)
    with Server(b, env=clock) as s:
        s.wait_for(lambda: "btcml_live_mae{" in s.get("/metrics").text, what="the live metrics exported")
        before = metric_samples(s.get("/metrics").text, "btcml_live_mae")

        private_pg.stop()
        s.wait_for(lambda: "reading the live metrics failed" in log_messages(s), what="the outage noticed")
        r = s.get("/metrics")
        assert r.status_code == 200
        assert metric_samples(r.text, "btcml_live_mae") == before, "the last snapshot stays exported"
        assert metric_samples(r.text, "btcml_data_stale"), "freshness still rendered from the snapshot"

        private_pg.start()
        s.wait_for(lambda: "reading the live metrics works again" in log_messages(s), timeout=30,
                   what="the exporter reconnected")
        assert log_messages(s).count("reading the live metrics failed") == 1, "an outage is logged once"
        assert metric_samples(s.get("/metrics").text, "btcml_live_mae") == before


@pytest.mark.timeout(300)
def test_a_missing_or_hand_edited_card_costs_only_the_baseline_and_the_drift(btcml_sqlite):
    b = btcml_sqlite
    b.json("ingest", "synthetic:7")
    b.json("train", *TINY)
    _, clock = replay_clock(b)
    store_forecasts(b, clock)
    card_path = b.home / "models" / "1" / "model.json"
    card = json.loads(card_path.read_text())
    card["feature_profile"]["features"][0]["shares"] = "not a list"
    card_path.write_text(json.dumps(card))
    proc = b.run("--log-format", "json", "monitor", "score", "--json", env=clock)
    out = json.loads(proc.stdout)["series"][0]
    assert out["scored"] == 18 and out["feature_psi"] == {}, "scored; no drift from a malformed profile"
    assert "the champion's feature profile is malformed" in proc.stderr
    assert all(m["baseline_pinball"] is not None for m in out["live_metrics"])

    # Without the version's folder the forecasts are still scored, without a baseline or drift.
    sql(b, "DELETE FROM prediction_scores")
    shutil.rmtree(b.home / "models" / "1")
    out = b.json("monitor", "score", env=clock)["series"][0]
    assert out["scored"] == 18 and out["feature_psi"] == {}
    assert out["live_metrics"] and all(m["baseline_pinball"] is None for m in out["live_metrics"])


@pytest.mark.timeout(300)
def test_two_processes_scoring_at_once_score_each_forecast_once(btcml):
    b = btcml
    b.json("ingest", "synthetic:7")
    b.json("train", *TINY)
    _, clock = replay_clock(b)
    store_forecasts(b, clock)
    cmd = [str(BIN), "--home", str(b.home), *(["--db", b.db] if b.db else []), "monitor", "score", "--json"]
    env = {**os.environ, **clock}
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(4)]
    results = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in results]
    assert sum(json.loads(out)["series"][0]["scored"] for out, _ in results) == 18
    bad = b.run("monitor", "score", "--symbol", SYMBOL, check=False)
    assert bad.returncode == 2 and "--symbol and --interval go together" in bad.stderr
