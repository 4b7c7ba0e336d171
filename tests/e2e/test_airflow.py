"""btcml's DAGs in real Apache Airflow (3.x, PostgreSQL metadata database): they import without errors;
`airflow dags test btcml_retrain` runs every task of every configured series and registers a new model version for
each, while a series whose data fails the quality gate fails at once (no retry) without holding the others back. A
real CeleryExecutor deployment (Redis, API server with SimpleAuthManager, scheduler, DAG processor, two Celery
workers) gets btcml serve's relayed alert (once, however often the alert arrives), and btcml_retrain spreads the
series' tasks over both workers with the same models as the built-in scheduler trains. See docs/airflow.md."""
import datetime
import json
import time

import pytest

from airflow_cluster import Store, task_instances, wait_for_dag_run, write_bars
from airflow_cluster import airflow, cluster, pg_base  # noqa: F401 (fixtures)
from conftest import Btcml
from serving import Server


def test_the_dags_import_without_errors(airflow):
    assert airflow.json("dags", "list-import-errors", "--local") == []
    dags = {d["dag_id"] for d in airflow.json("dags", "list", "--local")}
    assert {"btcml_ingest", "btcml_retrain"} <= dags


@pytest.mark.timeout(900)
def test_dags_test_retrains_every_configured_series(airflow, tmp_path, pg_base):
    # CCC's file has a negative price in every third row: a third of its rows are rejected.
    store = Store(tmp_path / "store", pg_base, {"AAA": 1, "BBB": 2, "CCC": 3}, bad={"CCC": 3})
    try:
        before = {s: store.versions(s) for s in ("AAA", "BBB", "CCC")}
        proc = airflow.run("dags", "test", "btcml_retrain", "--conf", json.dumps({"reason": "ci: dags test"}),
                           env=store.env, timeout=840, check=False)
        runs = airflow.query("SELECT run_id FROM dag_run WHERE dag_id = 'btcml_retrain' ORDER BY id DESC LIMIT 1")
        assert runs, proc.stdout[-3000:] + proc.stderr[-3000:]
        rows = airflow.query("SELECT task_id, map_index, state, try_number FROM task_instance "
                             f"WHERE dag_id = 'btcml_retrain' AND run_id = '{runs[0][0]}'")
        by_series: dict[int, dict[str, dict]] = {}
        for task_id, map_index, state, tries in rows:
            if task_id.startswith("retrain_series."):
                by_series.setdefault(int(map_index), {})[task_id.split(".", 1)[1]] = {"state": state,
                                                                                       "try_number": int(tries)}
        assert sorted(by_series) == [0, 1, 2], rows  # AAA, BBB, CCC in configuration order
        for index, symbol in ((0, "AAA"), (1, "BBB")):
            tasks = by_series[index]
            for name in ("ingest", "quality", "train", "gate", "evaluate"):
                assert tasks[name]["state"] == "success", (symbol, name, tasks[name], proc.stdout[-3000:])
            assert tasks["promote"]["state"] in ("success", "skipped")
            assert tasks["reload"]["state"] == "skipped"  # no BTCML_SERVE_URL: no server to wait for
            after = store.versions(symbol)
            assert len(after) == len(before[symbol]) + 1 and after[-1] > max(before[symbol]), (symbol, after)
        bad = by_series[2]
        assert bad["ingest"]["state"] == "success"
        # Invalid input (exit 3): failed on its first try, never retried; nothing trained for CCC.
        assert bad["quality"] == {"state": "failed", "try_number": 1}
        assert bad["train"]["state"] == "upstream_failed"
        assert store.versions("CCC") == before["CCC"] == []
    finally:
        store.drop()


ALERT_TOKEN = "alert-token-for-tests"


def notification(symbol: str, starts_at: str):
    return {
        "version": "4", "groupKey": '{}/{action="retrain"}:{interval="1h", symbol="%s"}' % symbol,
        "truncatedAlerts": 0, "status": "firing", "receiver": "btcml-retrain", "groupLabels": {},
        "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://127.0.0.1:9093",
        "alerts": [{"status": "firing", "labels": {"alertname": "BtcmlForecastErrorHigh", "action": "retrain",
                                                   "symbol": symbol, "interval": "1h"},
                    "annotations": {"summary": "live MAE above the baseline"}, "startsAt": starts_at,
                    "endsAt": "0001-01-01T00:00:00Z", "fingerprint": "f00d" + symbol.lower()}],
    }


def relaying_server(cluster, tmp_path, name: str) -> Server:
    """A btcml serve with its own store whose config names series ZZZ and Airflow's API server."""
    home = tmp_path / name
    home.mkdir()
    (home / "config.yaml").write_text(
        f"series:\n  - symbol: ZZZ\n    interval: 1h\nairflow_url: {cluster.airflow.api_url}\n")
    return Server(Btcml(home, None), env={"BTCML_ALERT_TOKEN": ALERT_TOKEN, "BTCML_AIRFLOW_USERNAME": "btcml",
                                          "BTCML_AIRFLOW_PASSWORD": cluster.airflow.password})


@pytest.mark.timeout(600)
def test_an_alert_triggers_btcml_retrain_once(cluster, tmp_path):
    af = cluster.airflow
    body = notification("ZZZ", "2026-11-30T01:02:03.456Z")
    headers = {"Authorization": "Bearer " + ALERT_TOKEN}
    first = relaying_server(cluster, tmp_path, "a")
    second = relaying_server(cluster, tmp_path, "b")  # a replica: Alertmanager notifies both
    try:
        r = first.post("/api/v1/alerts", json=body, headers=headers)
        assert r.status_code == 202, r.text
        alert = r.json()["alerts"][0]
        run_id = alert["airflow_dag_run_id"]
        assert alert["created"] is True and alert["outcome"].startswith("triggered Airflow DAG run"), alert
        assert run_id.startswith("alert__ZZZ-1h__2026-11-30T01:02:03.456Z__"), run_id
        run = af.api("GET", f"/dags/btcml_retrain/dagRuns/{run_id}").json()
        assert run["logical_date"] is None and run["run_type"] == "manual", run
        assert run["conf"]["series"] == [{"symbol": "ZZZ", "interval": "1h"}]
        assert "alert BtcmlForecastErrorHigh firing since 2026-11-30T01:02:03.456Z" in run["conf"]["reason"]
        # The same notification again: this server already has it; the replica's trigger is Airflow's 409.
        again = first.post("/api/v1/alerts", json=body, headers=headers)
        assert again.status_code == 200 and again.json()["alerts"][0]["outcome"].startswith("duplicate")
        replica = second.post("/api/v1/alerts", json=body, headers=headers)
        assert replica.status_code == 202, replica.text
        assert replica.json()["alerts"][0]["created"] is False
        assert replica.json()["alerts"][0]["airflow_dag_run_id"] == run_id
        runs = af.api("GET", "/dags/btcml_retrain/dagRuns", params={"run_type": "manual", "limit": 100}).json()
        assert [r["dag_run_id"] for r in runs["dag_runs"] if r["dag_run_id"].startswith("alert__")] == [run_id]
        # ZZZ is not configured where the workers run: the run fails at once, naming it, and trains nothing.
        finished = wait_for_dag_run(af, "btcml_retrain", run_id, timeout=300)
        assert finished["state"] == "failed"
    finally:
        first.stop()
        second.stop()


@pytest.mark.timeout(900)
def test_celery_workers_share_the_series_and_match_the_builtin_scheduler(cluster, tmp_path):
    af, store = cluster.airflow, cluster.store
    before = {s: store.versions(s) for s in ("AAA", "BBB")}
    run_id = "scale-out-" + datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S")
    r = af.api("POST", "/dags/btcml_retrain/dagRuns",
               json={"dag_run_id": run_id, "logical_date": None, "conf": {"reason": "ci: scale-out"}})
    assert r.status_code == 200, r.text
    run = wait_for_dag_run(af, "btcml_retrain", run_id, timeout=780)
    tis = task_instances(af, "btcml_retrain", run_id)
    per_series = [t for t in tis if t["task_id"].startswith("retrain_series.")]
    others = af.api("GET", "/dags/btcml_retrain/dagRuns", params={"limit": 100}).json()["dag_runs"]
    assert run["state"] == "success", ([(t["task_id"], t["map_index"], t["state"]) for t in tis],
                                       [(r["dag_run_id"], r["run_type"], r["state"]) for r in others])
    # Both workers ran per-series tasks (each names itself through [core] hostname_callable); skipped ones ran nowhere.
    ran = [t for t in per_series if t["state"] == "success"]
    assert {t["hostname"] for t in ran} == {"worker1", "worker2"}, [(t["task_id"], t["hostname"]) for t in ran]
    trained = {}
    for index, symbol in enumerate(("AAA", "BBB")):
        r = af.api("GET", f"/dags/btcml_retrain/dagRuns/{run_id}/taskInstances/retrain_series.train/xcomEntries/"
                          "return_value", params={"map_index": index, "deserialize": True})
        assert r.status_code == 200, r.text
        summary = r.json()["value"]  # train's JSON summary, the last line it printed
        assert summary["registry"]["name"] == f"btcml-{symbol}-1h"
        assert summary["model_version"] in store.versions(symbol) and summary["model_version"] not in before[symbol]
        trained[symbol] = store.btcml.json("models", "show", summary["model_version"])
    # The built-in scheduler, on a SQLite store with the same bars and champions, trains the same models.
    builtin = Store(tmp_path / "builtin", None, {"AAA": 1, "BBB": 2})
    for symbol in ("AAA", "BBB"):
        out = builtin.btcml.json("--config", builtin.config, "pipeline", "run", f"retrain-{symbol}-1h",
                                 "--reason", "ci: compare", "--wait", env={"OMP_NUM_THREADS": "1"})
        assert out["run"]["status"] == "succeeded", out
        version = out["run"]["result"]["train"]["model_version"]
        mine = builtin.btcml.json("models", "show", version)
        assert mine["metrics"] == trained[symbol]["metrics"], symbol
        assert mine["hyperparameters"] == trained[symbol]["hyperparameters"]
        assert mine["data"] == trained[symbol]["data"]


def xcom(af, run_id: str, task_id: str, map_index: int, dag_id: str = "btcml_retrain"):
    r = af.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value",
               params={"map_index": map_index, "deserialize": True})
    assert r.status_code == 200, r.text
    return r.json()["value"]


@pytest.mark.timeout(900)
def test_new_bars_from_btcml_ingest_retrain_that_series_alone(cluster):
    af, store = cluster.airflow, cluster.store
    before = {"AAA": store.versions("AAA")}
    # btcml_ingest's own schedule started a run with the cluster: the new bars must be this test's run's to ingest.
    for scheduled in af.api("GET", "/dags/btcml_ingest/dagRuns", params={"limit": 100}).json()["dag_runs"]:
        wait_for_dag_run(af, "btcml_ingest", scheduled["dag_run_id"], timeout=300)
    runs = af.api("GET", "/dags/btcml_retrain/dagRuns", params={"limit": 100}).json()["dag_runs"]
    known = {r["dag_run_id"] for r in runs}
    write_bars(store.root / "AAA.csv", store.seeds["AAA"], bars=1224)  # 24 new hourly bars at AAA's source
    run_id = "new-bars-" + datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S")
    r = af.api("POST", "/dags/btcml_ingest/dagRuns", json={"dag_run_id": run_id, "logical_date": None})
    assert r.status_code == 200, r.text
    assert wait_for_dag_run(af, "btcml_ingest", run_id, timeout=300)["state"] == "success"
    assert xcom(af, run_id, "tick_series.announce", 0, "btcml_ingest") == 24
    assert xcom(af, run_id, "tick_series.announce", 1, "btcml_ingest") == 0
    # The asset event of AAA's new bars schedules btcml_retrain, for AAA alone.
    deadline = time.monotonic() + 120
    while True:
        runs = af.api("GET", "/dags/btcml_retrain/dagRuns", params={"limit": 100}).json()["dag_runs"]
        triggered = [r for r in runs if r["dag_run_id"] not in known and r["run_type"] == "asset_triggered"]
        if triggered:
            break
        assert time.monotonic() < deadline, [(r["dag_run_id"], r["run_type"]) for r in runs]
        time.sleep(1)
    retrain_id = triggered[0]["dag_run_id"]
    assert wait_for_dag_run(af, "btcml_retrain", retrain_id, timeout=600)["state"] == "success"
    tis = task_instances(af, "btcml_retrain", retrain_id)
    assert {t["map_index"] for t in tis if t["task_id"] == "retrain_series.train"} == {0}
    trained = xcom(af, retrain_id, "retrain_series.train", 0)
    assert trained["registry"]["name"] == "btcml-AAA-1h" and trained["splits"]["test"]["to"] > "2025-12-21"
    assert trained["model_version"] in store.versions("AAA") and trained["model_version"] not in before["AAA"]
