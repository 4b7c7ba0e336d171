"""The closed loop with real Prometheus and Alertmanager: Prometheus scrapes a real `btcml serve`, a rule fires,
Alertmanager calls POST /api/v1/alerts with the alert token, and btcml queues the retrain pipeline of the alert's
series with the alert as the run's reason. Rules come from deploy/prometheus with `for:` cut to seconds; see
alerting.py."""
import math
import random
from datetime import datetime, timedelta, timezone

import pytest

from alerting import Alertmanager, Prometheus, always_firing_retrain, store_rows, wait_until, write_series_config
from mlflow_server import free_port
from serving import Hammer, Server

TOKEN = "closed-loop-token"


def retrain_runs(btcml, pipeline):
    return store_rows(btcml, f"SELECT id, trigger_kind, reason, status FROM pipeline_runs WHERE pipeline = "
                             f"'{pipeline}' ORDER BY id")


@pytest.mark.timeout(180)
def test_a_firing_retrain_alert_reaches_btcml_through_alertmanager_and_queues_one_run(btcml_sqlite, tmp_path):
    btcml = btcml_sqlite
    write_series_config(btcml.home, [("BTCUSD", "1h"), ("ETHUSD", "1h")])
    dead_port = free_port()  # a second target nobody listens on: BtcmlTargetDown, routed to people, not btcml
    with Server(btcml, "--alert-token", TOKEN) as serve, \
            Alertmanager(tmp_path / "alertmanager", serve.url, TOKEN) as am, \
            Prometheus(tmp_path / "prometheus", [f"127.0.0.1:{serve.port}", f"127.0.0.1:{dead_port}"], am,
                       extra_rules=always_firing_retrain()) as prom:
        wait_until(lambda: prom.targets_up().get(f"127.0.0.1:{serve.port}"), 30, "Prometheus to scrape btcml")
        wait_until(lambda: prom.alerts("firing"), 30, "a rule to fire")

        runs = wait_until(lambda: retrain_runs(btcml, "retrain-BTCUSD-1h"), 60,
                          f"a retrain run queued by Alertmanager's call (alertmanager log: {am.log_path})")
        [run] = runs
        assert run["trigger_kind"] == "alert" and run["status"] == "queued"
        assert run["reason"].startswith("alert BtcmlTestRetrain firing since ")
        assert f"test trigger for 127.0.0.1:{serve.port}" in run["reason"]
        first_call = next(e for e in serve.log_lines() if e.get("url.path") == "/api/v1/alerts")
        assert first_call["http.response.status_code"] == 202

        # The notification carried Prometheus's fingerprint and startsAt, recorded once with its outcome.
        received = store_rows(btcml, "SELECT alertname, status, outcome, run_id, labels_json FROM alert_notifications")
        retrain = [a for a in received if a["alertname"] == "BtcmlTestRetrain"]
        assert retrain[0]["status"] == "firing" and retrain[0]["run_id"] == run["id"]
        assert retrain[0]["outcome"] == f"queued run {run['id']} of retrain-BTCUSD-1h"

        # BtcmlTargetDown fires too but has no action label: Alertmanager sends it to people, never to btcml.
        wait_until(lambda: any(a["labels"]["alertname"] == "BtcmlTargetDown" for a in am.alerts()), 30,
                   "BtcmlTargetDown to reach Alertmanager")
        assert all(a["alertname"] != "BtcmlTargetDown" for a in store_rows(
            btcml, "SELECT alertname FROM alert_notifications"))

        # Alertmanager keeps notifying while the alert fires (group_interval 1 s here); repeats join the queued run
        # or are duplicates: one run, however often it calls.
        wait_until(lambda: len([e for e in serve.log_lines() if e.get("url.path") == "/api/v1/alerts"]) >= 2, 30,
                   "a repeated notification")
        assert len(retrain_runs(btcml, "retrain-BTCUSD-1h")) == 1
        assert retrain_runs(btcml, "retrain-ETHUSD-1h") == []
        assert all(e["http.response.status_code"] in (200, 202) for e in serve.log_lines()
                   if e.get("url.path") == "/api/v1/alerts")


def write_bars(path, start, sigmas, seed):
    """Hourly bars from `start` (a generic CSV layout): a random walk whose hourly log-return volatility is
    sigmas[i] for bar i."""
    rng = random.Random(seed)
    close = 40_000.0
    lines = ["time,open,high,low,close,volume"]
    for i, sigma in enumerate(sigmas):
        open_ = close
        close = open_ * math.exp(rng.gauss(0, sigma))
        wick = abs(rng.gauss(0, sigma)) * open_
        t = start + timedelta(hours=i)
        lines.append(f"{t:%Y-%m-%dT%H:%M:%SZ},{open_:.2f},{max(open_, close) + wick:.2f},"
                     f"{min(open_, close) - wick:.2f},{close:.2f},{rng.uniform(5, 50):.4f}")
    path.write_text("\n".join(lines) + "\n")


def champion(server, symbol):
    models = server.get("/api/v1/models").json()["registered_models"]
    return next(m["aliases"].get("champion") for m in models if m["symbol"] == symbol)


def predictions(server, symbol):
    rows = server.get("/api/v1/predictions", params={"symbol": symbol, "limit": 10000}).json()["predictions"]
    return {(p["model_version"], p["origin_time"], p["horizon"]) for p in rows}


@pytest.mark.timeout(600)
def test_regime_shift_retrains_and_serves_the_new_champion(btcml_sqlite, tmp_path):
    """The whole loop, offline: two replayed series, each with a champion trained on calm bars. BTCUSD's replay
    turns five times as volatile from the moment it starts; its scheduled forecasts are scored as the replay reveals
    their targets, live coverage collapses, the deploy rules fire, Alertmanager calls btcml, the scheduler retrains
    on data that includes the new regime and the gate decides; a promotion is served with no failed request, and
    ETHUSD keeps its champion and its forecasts throughout."""
    b = btcml_sqlite
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    calm_bars = 900
    shift = start + timedelta(hours=calm_bars)  # the replay starts here, in the new regime
    btc, eth = tmp_path / "btc.csv", tmp_path / "eth.csv"
    write_bars(btc, start, [0.004] * calm_bars + [0.02] * 300, seed=1)
    write_bars(eth, start, [0.004] * (calm_bars + 300), seed=2)
    cutoff = (shift - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    tiny = ["--interval", "1h", "--window", "24", "--horizons", "1", "--hidden", "8", "--layers", "1",
            "--epochs", "2", "--samples-per-epoch", "256", "--seed", "5"]
    for symbol, path in (("BTCUSD", btc), ("ETHUSD", eth)):
        b.json("ingest", str(path), "--symbol", symbol, "--interval", "1h", "--to", cutoff)
        assert b.json("train", "--symbol", symbol, *tiny)["promoted"]
    (b.home / "config.yaml").write_text(f"""series:
  - {{symbol: BTCUSD, interval: 1h, source: "replay:{btc}"}}
  - {{symbol: ETHUSD, interval: 1h, source: "replay:{eth}"}}
pipelines:
  retrain_every: never
  epochs: 2
scheduler: true
replay_speed: 1800
replay_start: {shift:%Y-%m-%dT%H:%M:%SZ}
""")
    retrain_runs = lambda: s.get("/api/v1/pipelines/retrain-BTCUSD-1h/runs").json()["runs"]  # noqa: E731
    with Server(b, "--alert-token", TOKEN) as s, \
            Alertmanager(tmp_path / "alertmanager", s.url, TOKEN) as am, \
            Prometheus(tmp_path / "prometheus", [f"127.0.0.1:{s.port}"], am) as prom, \
            Hammer(s, "BTCUSD") as btc_load, Hammer(s, "ETHUSD", threads=1) as eth_load:
        eth_champion, btc_champion = champion(s, "ETHUSD"), champion(s, "BTCUSD")
        # The ticks reveal the new regime bar by bar, forecast each with the champion and score the matured ones.
        wait_until(lambda: prom.query('btcml_live_scored_forecasts{symbol="BTCUSD",window="24h"} >= 24'), 240,
                   "24 scored BTCUSD forecasts in the 24h window")
        eth_seen = predictions(s, "ETHUSD")
        assert eth_seen, "ETHUSD's ticks store scheduled forecasts too"

        firing = wait_until(lambda: [a for a in prom.alerts("firing") if a["labels"].get("action") == "retrain"
                                     and a["labels"]["symbol"] == "BTCUSD"], 120, "a retrain alert for BTCUSD")
        names = {a["labels"]["alertname"] for a in firing}
        assert names & {"BtcmlLiveCoverageOutOfBand", "BtcmlLivePinballRatioHigh", "BtcmlFeatureDrift"}, names

        run = wait_until(lambda: next((r for r in retrain_runs() if r["trigger"] == "alert"), None), 60,
                         f"a retrain queued by Alertmanager (log: {am.log_path})")
        assert run["reason"].startswith("alert Btcml"), run["reason"]
        done = wait_until(lambda: next((r for r in retrain_runs() if r["id"] == run["id"]
                                        and r["status"] in ("succeeded", "failed")), None), 240, "the retrain")
        assert done["status"] == "succeeded", done
        tasks = {t["task"]: t for t in done["tasks"]}
        assert [tasks[name]["status"] for name in ("train", "gate")] == ["succeeded"] * 2, done["tasks"]
        new_version = tasks["train"]["detail"]["model_version"]
        trained_to = b.json("models", "show", str(new_version))["data"]["to"]
        assert trained_to >= shift.strftime("%Y-%m-%dT%H:%M:%SZ"), "the retrain saw the new regime"
        promoted = tasks["gate"]["detail"]["promoted"]
        assert tasks["reload"]["status"] == ("succeeded" if promoted else "skipped"), tasks["reload"]
        if promoted:
            s.wait_for(lambda: champion(s, "BTCUSD") == new_version, 30, "the new champion")
            btc_load.wait_for_more(50)
            assert new_version in btc_load.versions, "the new champion is served"
        else:
            assert champion(s, "BTCUSD") == btc_champion
        eth_load.wait_for_more(20)

        # ETHUSD: same champion, served throughout, and every forecast it had is still stored.
        assert champion(s, "ETHUSD") == eth_champion
        assert eth_load.versions == {eth_champion}
        assert eth_seen <= predictions(s, "ETHUSD")
        assert not [r for r in s.get("/api/v1/pipelines/retrain-ETHUSD-1h/runs").json()["runs"]]
    assert btc_load.failures == [] and eth_load.failures == []
