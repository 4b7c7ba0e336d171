"""The production stack on one machine (deploy/stack.sh) and the plan's end-to-end scenario on it: `stack.sh up` in a
temporary STACK_HOME on free ports, then ingest → train → tracked in MLflow → served through nginx by both replicas →
the scheduler's forecasts on a replayed regime shift are scored → a retrain alert fires in Prometheus → Alertmanager
→ btcml relays it to Airflow → the btcml_retrain DAG run retrains → the champion both replicas serve moves → the
logs are found in OpenSearch; `status` reports every part, and `down` always runs, even on failure. STACK_FAST=1
gives the stack test timings (scrape and rule evaluation every second, `for:` of 2 s). Under CI=true a missing tool
fails the test (stack.sh names it)."""
import json
import os
import random
import socket
import subprocess
import tempfile
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests

from airflow_cluster import AIRFLOW, need
from alerting import wait_until
from conftest import BIN, REPO
from opensearch import LIB as OPENSEARCH_LIB
from serving import Hammer
from test_closed_loop import write_bars

STACK = REPO / "deploy" / "stack.sh"
COMPONENTS = ["postgres", "mlflow", "opensearch", "alertmanager", "prometheus", "airflow-api", "airflow-dag-processor",
              "airflow-scheduler", "airflow-triggerer", "btcml-scheduler", "btcml-serve-1", "btcml-serve-2",
              "nginx"]
SYMBOL = "BTCUSD"
MODEL = f"btcml-{SYMBOL}-1h"
TINY = ["--interval", "1h", "--window", "24", "--horizons", "1", "--hidden", "8", "--layers", "1", "--epochs", "2",
        "--samples-per-epoch", "256", "--seed", "5"]


def free_port_base(span: int = 19) -> int:
    """A base port whose `span` successors nobody listens on (stack.sh lays its ports out from it)."""
    for _ in range(200):
        base = random.randrange(20000, 60000 - span)
        try:
            sockets = []
            for port in range(base, base + span):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise AssertionError("no free range of ports")


class Stack:
    """deploy/stack.sh with this test's STACK_HOME and ports."""

    def __init__(self, home: Path, base: int):
        self.home = home
        self.base = base
        self.env = {**os.environ, "STACK_HOME": str(home), "STACK_PORT_BASE": str(base), "STACK_FAST": "1",
                    "STACK_BTCML_BIN": str(BIN), "STACK_START_TIMEOUT": "300", "STACK_AIRFLOW_RETRY_DELAY": "2"}
        for key in ("BTCML_DB", "BTCML_HOME", "BTCML_CONFIG", "BTCML_TRACKING_URI"):
            self.env.pop(key, None)
        self.nginx = f"http://127.0.0.1:{base}"
        self.replicas = [f"http://127.0.0.1:{base + 1}", f"http://127.0.0.1:{base + 2}"]
        self.mlflow = f"http://127.0.0.1:{base + 11}"
        self.prometheus = f"http://127.0.0.1:{base + 12}"
        self.alertmanager = f"http://127.0.0.1:{base + 13}"
        self.opensearch = f"http://127.0.0.1:{base + 14}"
        self.airflow = f"http://127.0.0.1:{base + 16}"

    def run(self, *args, timeout=120, check=True, **kw) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(STACK), *map(str, args)], capture_output=True, text=True, env=self.env,
                              timeout=timeout, stdin=subprocess.DEVNULL, **kw)
        if check and proc.returncode != 0:
            raise AssertionError(f"stack.sh {' '.join(map(str, args))} exited {proc.returncode}:\n"
                                 f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
        return proc

    def btcml(self, *args) -> dict:
        """A btcml command on the stack's store, as the stack's user (`stack.sh btcml`); its JSON output."""
        out = self.run("btcml", *args, "--json", timeout=600).stdout
        return json.loads(out.strip().splitlines()[-1])

    def secret(self, name: str) -> str:
        return (self.home / "secrets" / name).read_text().strip()

    def airflow_api(self, method: str, path: str, **kw) -> requests.Response:
        token = requests.post(f"{self.airflow}/auth/token", timeout=30,
                              json={"username": "admin", "password": self.secret("airflow-admin-password")})
        assert token.status_code == 201, token.text
        return requests.request(method, f"{self.airflow}/api/v2{path}", timeout=30,
                                headers={"Authorization": "Bearer " + token.json()["access_token"]}, **kw)

    def prometheus_query(self, expr: str) -> list:
        body = requests.get(self.prometheus + "/api/v1/query", params={"query": expr}, timeout=10).json()
        assert body["status"] == "success", body
        return body["data"]["result"]

    def search_logs(self, query: dict) -> list[dict]:
        r = requests.post(f"{self.opensearch}/btcml-logs/_search", timeout=30,
                          json={"query": query, "size": 200, "sort": [{"@timestamp": "asc"}]})
        if r.status_code in (404, 503):  # no document shipped yet
            return []
        r.raise_for_status()
        return [hit["_source"] for hit in r.json()["hits"]["hits"]]

    def logs(self) -> str:
        """Every component's last lines, for a failure message."""
        return "\n".join(self.run("logs", c, check=False).stdout[-1500:] for c in COMPONENTS)


class Endpoint:
    """One base URL, with what serving.Hammer needs of a server."""

    def __init__(self, url: str):
        self.url = url

    def wait_for(self, predicate, timeout=60, what="condition"):
        wait_until(predicate, timeout, what, interval=0.2)


def serving(url: str) -> int | None:
    """The version of MODEL that the btcml serve at `url` answers with."""
    models = requests.get(url + "/api/v1/models", timeout=10).json()["registered_models"]
    return next((m.get("serving") for m in models if m["name"] == MODEL), None)


@contextmanager
def stack_in_new_home(after_down=None):
    """A Stack in a new STACK_HOME; always brought down and removed afterwards (after_down(stack) runs between)."""
    # Not under pytest's tmp folder (mode 700): the stack's users (btcml, postgres) must reach STACK_HOME.
    home = Path(tempfile.mkdtemp(prefix="btcml-stack-", dir="/tmp"))
    home.chmod(0o755)
    stack = Stack(home, free_port_base())
    try:
        yield stack
    finally:
        down = stack.run("down", timeout=300, check=False)
        try:
            if after_down:
                after_down(stack, down)
        finally:
            subprocess.run(["rm", "-rf", str(home)], check=False)


def check_everything_stopped(stack, down):
    print(down.stderr)
    after = stack.run("status", check=False)
    assert after.returncode == 1 and "healthy" not in after.stdout, after.stdout


@pytest.fixture(scope="module")
def stack():
    for tool in ("prometheus", "prometheus-alertmanager", "nginx"):
        need(subprocess.run(["which", tool], capture_output=True).returncode == 0,
             f"{tool} is missing: run scripts/install-deps.sh")
    need(AIRFLOW.exists(), f"{AIRFLOW} is missing: run scripts/install-airflow.sh")
    need((OPENSEARCH_LIB / ".pom").exists(), "OpenSearch is missing: run scripts/install-opensearch.sh")
    with stack_in_new_home(check_everything_stopped) as stack:
        yield stack


@pytest.mark.timeout(900)
def test_the_stack_runs_the_whole_loop_from_ingest_to_a_retrain_by_airflow(stack):
    # A champion trained on calm bars; the replay (1800 market seconds per second: a bar every 2 s) starts where
    # the bars turn five times as volatile.
    data = stack.home / "data"
    data.mkdir()
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    shift = start + timedelta(hours=900)
    bars = data / "btc.csv"
    write_bars(bars, start, [0.004] * 900 + [0.02] * 300, seed=1)
    config = data / "btcml.yaml"
    config.write_text(f"""series:
  - {{symbol: {SYMBOL}, interval: 1h, source: "replay:{bars}"}}
pipelines:
  retrain_every: never
  epochs: 2
replay_speed: 1800
replay_start: {shift:%Y-%m-%dT%H:%M:%SZ}
""")
    stack.env["STACK_BTCML_CONFIG"] = str(config)
    up = stack.run("up", timeout=600)
    for component in COMPONENTS:
        assert f"stack: {component}: healthy in" in up.stderr, up.stderr
    # Idempotent: a second `up` leaves every running component alone.
    again = stack.run("up", timeout=120)
    assert all(f"stack: {c}: already running" in again.stderr for c in COMPONENTS), again.stderr

    try:
        run_the_scenario(stack, shift)
    except BaseException:
        print(stack.logs())
        raise


def run_the_scenario(stack: Stack, shift: datetime):
    # The scheduler's first tick ingests the history the replay clock has reached; then a champion is trained.
    history_end = f"{shift - timedelta(hours=1):%Y-%m-%dT%H:%M:%SZ}"
    wait_until(lambda: [s for s in stack.btcml("series")["series"] if s["last_time"] >= history_end], 120,
               "the scheduler's first ingest")
    trained = stack.btcml("train", "--symbol", SYMBOL, *TINY)
    assert trained["promoted"] is True, trained
    first = trained["model_version"]

    # Tracked in MLflow (PostgreSQL backend, artifacts through the server's proxy).
    tracking = trained["tracking"]
    assert tracking["backend"] == "mlflow" and tracking["synced"] is True, tracking
    champion = requests.get(f"{stack.mlflow}/api/2.0/mlflow/registered-models/alias", timeout=30,
                            params={"name": MODEL, "alias": "champion"}).json()["model_version"]
    assert champion["run_id"] == tracking["remote_run_id"] and champion["tags"]
    run = requests.get(f"{stack.mlflow}/api/2.0/mlflow/runs/get", params={"run_id": champion["run_id"]},
                       timeout=30).json()["run"]
    assert run["info"]["status"] == "FINISHED"
    artifacts = requests.get(f"{stack.mlflow}/api/2.0/mlflow/artifacts/list", timeout=30,
                             params={"run_id": champion["run_id"], "path": "btcml"}).json()
    assert {f["path"] for f in artifacts["files"]} == {"btcml/model.json", "btcml/weights.bin"}

    # Both replicas serve it (they share the store), and so does nginx in front of them.
    for url in stack.replicas + [stack.nginx]:
        wait_until(lambda url=url: serving(url) == first, 60, f"{url} to serve version {first}")
    forecast = requests.get(stack.nginx + "/api/v1/forecast", params={"symbol": SYMBOL, "interval": "1h"}, timeout=30)
    assert forecast.status_code == 200 and forecast.json()["model_version"] == first, forecast.text

    status = stack.run("status")
    rows = {line.split()[0]: line.split()[1:] for line in status.stdout.splitlines()[1:]}
    assert sorted(rows) == sorted(COMPONENTS) and all(r[0] == "healthy" for r in rows.values()), status.stdout
    assert all(rows[c][-1] == "ready" for c in ("btcml-serve-1", "btcml-serve-2", "nginx")), status.stdout
    parts = json.loads(stack.run("status", "--json").stdout)["components"]
    assert [(p["name"], p["health"]) for p in parts] == [(c, "healthy") for c in COMPONENTS]
    assert all(isinstance(p["pid"], int) for p in parts)

    with Hammer(Endpoint(stack.nginx), SYMBOL, threads=1) as load:
        # The scheduler forecasts every revealed bar with the champion and scores the matured ones; Prometheus
        # scrapes both replicas.
        wait_until(lambda: stack.prometheus_query(
            f'max(btcml_live_scored_forecasts{{symbol="{SYMBOL}",window="24h"}}) >= 24'), 300,
                   "24 scored forecasts in Prometheus")
        firing = wait_until(lambda: [a for a in requests.get(stack.prometheus + "/api/v1/alerts", timeout=10)
                                     .json()["data"]["alerts"] if a["state"] == "firing"
                                     and a["labels"].get("action") == "retrain"], 180, "a retrain alert firing")
        assert {a["labels"]["symbol"] for a in firing} == {SYMBOL}
        wait_until(lambda: [a for a in requests.get(stack.alertmanager + "/api/v2/alerts", timeout=10).json()
                            if a["labels"].get("action") == "retrain"], 60, "the alert in Alertmanager")

        # Alertmanager → nginx → a replica → Airflow: one btcml_retrain run, named after the alert.
        def alert_runs():
            r = stack.airflow_api("GET", "/dags/btcml_retrain/dagRuns")
            assert r.status_code == 200, r.text
            return [d for d in r.json()["dag_runs"] if d["dag_run_id"].startswith(f"alert__{SYMBOL}-1h__")]

        # Once the new version serves, the old version's alert resolves and the new one's may fire: another run.
        dag_run = min(wait_until(alert_runs, 120, "an Airflow DAG run triggered by the alert"),
                      key=lambda d: d["dag_run_id"])  # named after the alert's start: the first
        assert dag_run["conf"]["reason"].startswith("alert Btcml"), dag_run["conf"]
        done = wait_until(lambda: next((d for d in alert_runs() if d["dag_run_id"] == dag_run["dag_run_id"]
                                        and d["state"] in ("success", "failed")), None), 420,
                          "the retrain DAG run to finish")
        instances = stack.airflow_api("GET", f"/dags/btcml_retrain/dagRuns/{dag_run['dag_run_id']}/taskInstances")
        states = {t["task_id"]: t["state"] for t in instances.json()["task_instances"]}
        assert done["state"] == "success", states
        assert states["retrain_series.train"] == "success", states
        # btcml_ingest stays paused: the built-in scheduler runs the ticks.
        assert stack.airflow_api("GET", "/dags/btcml_ingest").json()["is_paused"] is True

        models = stack.btcml("models", "list")["models"]
        versions = sorted(v["version"] for m in models if m["name"] == MODEL for v in m["versions"])
        new = versions[-1]
        assert new > first, versions
        # The retrain was tracked in MLflow too.
        found = requests.get(f"{stack.mlflow}/api/2.0/mlflow/model-versions/search", timeout=30,
                             params={"filter": f"name='{MODEL}'"}).json()["model_versions"]
        assert len(found) == len(versions)
        if states["retrain_series.promote"] != "success":
            # The gate kept the champion (a regime shift does not guarantee a better model): promote the new version
            # through nginx, as an operator would, so that the rest of the loop still shows.
            assert states["retrain_series.promote"] == "skipped", states
            r = requests.post(f"{stack.nginx}/api/v1/models/{new}/promote", timeout=30,
                              headers={"X-API-Key": stack.secret("api-key")})
            assert r.status_code == 200, r.text
        # The new champion is served by both replicas (each polls the registry) and answers through nginx.
        for url in stack.replicas:
            wait_until(lambda url=url: serving(url) == new, 60, f"{url} to serve version {new}")
        load.wait_for_more(20)
        assert new in load.versions
    assert load.failures == []

    # The logs of the loop are in OpenSearch: the alert's relay (one request's trace.id) and a scheduler run.
    relayed = wait_until(lambda: [e for e in stack.search_logs({"match_phrase": {"message": "alert received"}})
                                  if "Airflow DAG run" in json.dumps(e)], 60, "the relayed alert in OpenSearch")
    same_request = stack.search_logs({"term": {"trace.id": relayed[0]["trace.id"]}})
    access = [e for e in same_request if e.get("url.path") == "/api/v1/alerts"]
    assert access and access[0]["http.response.status_code"] == 202, same_request
    finished = wait_until(lambda: [e for e in stack.search_logs({"term": {"event.action": "pipeline-run-finished"}})
                                   if e.get("btcml.pipeline.name") == f"tick-{SYMBOL}-1h"], 60,
                          "a tick run in OpenSearch")
    run_events = stack.search_logs({"term": {"trace.id": finished[-1]["trace.id"]}})
    assert run_events[0]["event.reason"] == finished[-1]["event.reason"], run_events
    assert {e["service.name"] for e in run_events} == {"btcml"}

    # `logs` shows a component's log; an unknown component is named.
    assert '"pipeline run finished"' in stack.run("logs", "btcml-scheduler").stdout
    bad = stack.run("logs", "no-such-part", check=False)
    assert bad.returncode == 1 and "no component 'no-such-part'" in bad.stderr


@pytest.fixture
def idle_stack():
    """A Stack whose STACK_HOME is new and empty (nothing started), removed afterwards, after a `down`."""
    with stack_in_new_home() as stack:
        yield stack


@pytest.mark.timeout(120)
def test_status_logs_and_env_of_a_stack_that_never_ran(idle_stack):
    status = idle_stack.run("status", check=False)
    assert status.returncode == 1
    rows = [line.split() for line in status.stdout.splitlines()[1:]]
    assert [r[0] for r in rows] == COMPONENTS and all(r[1] == "down" for r in rows), status.stdout
    parts = json.loads(idle_stack.run("status", "--json", check=False).stdout)["components"]
    assert {p["health"] for p in parts} == {"down"} and {p["pid"] for p in parts} == {None}
    logs = idle_stack.run("logs", "nginx", check=False)
    assert logs.returncode == 1 and "nginx has no log yet" in logs.stderr
    assert "usage: stack.sh logs COMPONENT" in idle_stack.run("logs", check=False).stderr
    env = idle_stack.run("env", check=False)
    assert env.returncode == 1 and f"no stack in {idle_stack.home} yet: run stack.sh up" in env.stderr
    usage = idle_stack.run("restart", check=False)
    assert usage.returncode == 2 and "usage:" in usage.stderr


@pytest.mark.timeout(120)
def test_up_refuses_to_start_without_a_btcml_binary(idle_stack):
    idle_stack.env["STACK_BTCML_BIN"] = str(idle_stack.home / "no-such-btcml")
    up = idle_stack.run("up", check=False)
    assert up.returncode == 1 and "no btcml binary" in up.stderr and "STACK_BTCML_BIN" in up.stderr, up.stderr
    assert not (idle_stack.home / "run").exists(), "nothing was started"


@pytest.mark.timeout(300)
def test_a_component_that_cannot_start_stops_up_with_its_name_and_log(idle_stack):
    """PostgreSQL's port is taken: `up` stops at the first component, names it and shows the end of its log."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", idle_stack.base + 10))
        taken.listen()
        up = idle_stack.run("up", check=False, timeout=240)
    assert up.returncode == 1, up.stderr
    assert "stack: postgres did not start; its log" in up.stderr, up.stderr
    assert "could not bind" in up.stderr or "Address already in use" in up.stderr, up.stderr
    assert "mlflow" not in up.stderr, "nothing after PostgreSQL was started"
