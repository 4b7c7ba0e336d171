"""The closed loop with real Prometheus and Alertmanager: Prometheus scrapes a real `btcml serve`, a rule fires,
Alertmanager calls POST /api/v1/alerts with the alert token, and btcml queues the retrain pipeline of the alert's
series with the alert as the run's reason. Rules come from deploy/prometheus with `for:` cut to seconds; see
alerting.py."""
import pytest

from alerting import Alertmanager, Prometheus, always_firing_retrain, store_rows, wait_until, write_series_config
from mlflow_server import free_port
from serving import Server

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


@pytest.mark.timeout(600)
def test_regime_shift_retrains_and_serves_the_new_champion(btcml_sqlite, tmp_path):
    """The full loop of issue 9. Needs the branches that land with it: the scheduler (runs queued retrains), live
    scoring and drift metrics (btcml_live_*, btcml_feature_psi), the replay source and clock, and per-series
    champions. Outline, each step to fill in once they are merged:

    1. Home with two series in config.yaml (write_series_config(..., extra="scheduler: true\\nreplay_speed: ...")):
       BTCUSD 1h with source replay:<file whose volatility x5 from bar N on> and a second series (ETHUSD 1h,
       synthetic). Train and promote a champion of each (btcml train / models promote --symbol --interval).
    2. Server(btcml, "--alert-token", TOKEN, "--scheduler"), then Alertmanager(...) and Prometheus(..., for_seconds=2)
       with the deploy rules only (no extra_rules). Hammer GET /api/v1/forecast?symbol=BTCUSD&interval=1h in a
       thread for the whole test, counting non-200 answers; record the ETHUSD champion version and forecasts.
    3. As the replay passes bar N: wait_until BtcmlLiveCoverageOutOfBand or BtcmlLivePinballRatioHigh is firing in
       prom.alerts("firing") for BTCUSD (the window the rules read is window="24h": make the replay's live window
       small enough, or add a rules override, so that >= 24 scored forecasts exist within minutes).
    4. wait_until a run of retrain-BTCUSD-1h with trigger_kind "alert" and the alert's name in its reason, then
       until it succeeded (GET /api/v1/pipelines/retrain-BTCUSD-1h/runs), its train task on bars past N.
    5. If the gate promoted: GET /api/v1/models lists the new BTCUSD champion and /api/v1/forecast serves it; the
       hammer saw zero failures. ETHUSD's champion and stored forecasts are unchanged.
    6. Live metrics on /metrics equal values computed here from GET /api/v1/predictions and GET /api/v1/bars.
    """
    pytest.skip("the full loop needs the scheduler, live scoring and per-series champions (issue 9's other "
                "branches); the lead completes it after merging them")
