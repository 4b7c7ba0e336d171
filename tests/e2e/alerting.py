"""Real Prometheus and Alertmanager (Debian's packages) for a test: each on its own free port and data directory,
configured from deploy/ with test timings (scrape and evaluation every second, `for:` of a few seconds), always
stopped. Start Alertmanager first: Prometheus is given its address."""
import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
import requests
import yaml

from conftest import REPO
from mlflow_server import free_port

DEPLOY = REPO / "deploy"
RULE_FILES = [DEPLOY / "prometheus" / "rules" / "recording.yml", DEPLOY / "prometheus" / "rules" / "alerting.yml"]


def tool(name: str) -> str:
    """The path of a monitoring tool; under CI a missing one fails the test, elsewhere it skips it visibly."""
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} is not installed (scripts/install-deps.sh installs prometheus and prometheus-alertmanager)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def wait_until(predicate, timeout: float, what: str, interval: float = 0.1):
    """Polls `predicate` until it returns something truthy, which is returned; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class _Service:
    """A child process with a log file, stopped (and reaped) by stop()."""

    def __init__(self, name: str, workdir: Path, cmd: list[str]):
        self.name = name
        self.log_path = workdir / f"{name}.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                                     cwd=workdir)

    def _wait_ready(self, url: str, timeout: float = 30):
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited {self.proc.returncode}: {self.log()}")
            try:
                return requests.get(url + "/-/ready", timeout=2).status_code == 200
            except requests.ConnectionError:
                return False

        wait_until(ready, timeout, f"{self.name} to be ready")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        self._log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class Alertmanager(_Service):
    """deploy/alertmanager/alertmanager.yml with btcml's webhook at `btcml_url`, the token in a credentials file and
    notifications grouped for one second instead of minutes and repeated every `repeat` instead of hours."""

    def __init__(self, workdir: Path, btcml_url: str, token: str, repeat: str = "2s"):
        workdir.mkdir(parents=True, exist_ok=True)
        config = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())
        (workdir / "alert-token").write_text(token)
        for receiver in config["receivers"]:
            for hook in receiver.get("webhook_configs", []):
                hook["url"] = btcml_url + "/api/v1/alerts"
                hook["http_config"]["authorization"]["credentials_file"] = str(workdir / "alert-token")
        timings = {"group_wait": "1s", "group_interval": "1s", "repeat_interval": repeat}
        config["route"].update(timings)
        for route in config["route"].get("routes", []):
            route.update(timings)
        config_path = workdir / "alertmanager.yml"
        config_path.write_text(yaml.safe_dump(config))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # --cluster.listen-address= keeps it off the gossip port 9094 (a second instance would collide there).
        super().__init__("alertmanager", workdir, [
            tool("prometheus-alertmanager"), f"--config.file={config_path}", f"--storage.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address=", "--log.level=debug"])
        try:
            self._wait_ready(self.url)
        except BaseException:
            self.stop()
            raise

    def alerts(self) -> list[dict]:
        return requests.get(self.url + "/api/v2/alerts", timeout=10).json()


class Prometheus(_Service):
    """deploy/prometheus's rules, with every `for:` cut to `for_seconds`, plus `extra_rules` (a list of rule
    groups), scraping `targets` every second and sending alerts to `alertmanager`."""

    def __init__(self, workdir: Path, targets: list[str], alertmanager: Alertmanager, for_seconds: int = 2,
                 extra_rules: list[dict] | None = None):
        workdir.mkdir(parents=True, exist_ok=True)
        rule_paths = []
        for source in RULE_FILES:
            rules = yaml.safe_load(source.read_text())
            for group in rules["groups"]:
                for rule in group["rules"]:
                    if "for" in rule:
                        rule["for"] = f"{for_seconds}s"
            path = workdir / source.name
            path.write_text(yaml.safe_dump(rules))
            rule_paths.append(str(path))
        if extra_rules:
            path = workdir / "test-rules.yml"
            path.write_text(yaml.safe_dump({"groups": extra_rules}))
            rule_paths.append(str(path))
        config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
        config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"}
        config["rule_files"] = rule_paths
        config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = [f"127.0.0.1:{alertmanager.port}"]
        config["scrape_configs"][0]["static_configs"][0]["targets"] = targets
        config_path = workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__("prometheus", workdir, [
            tool("prometheus"), f"--config.file={config_path}", f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}"])
        try:
            self._wait_ready(self.url)
        except BaseException:
            self.stop()
            raise

    def query(self, expr: str) -> list[dict]:
        body = requests.get(self.url + "/api/v1/query", params={"query": expr}, timeout=10).json()
        assert body["status"] == "success", body
        return body["data"]["result"]

    def alerts(self, state: str | None = None) -> list[dict]:
        """Alerts as Prometheus sees them (pending or firing), optionally only those in `state`."""
        alerts = requests.get(self.url + "/api/v1/alerts", timeout=10).json()["data"]["alerts"]
        return [a for a in alerts if state is None or a["state"] == state]

    def targets_up(self) -> dict[str, bool]:
        active = requests.get(self.url + "/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
        return {t["labels"]["instance"]: t["health"] == "up" for t in active}


def always_firing_retrain(symbol: str = "BTCUSD", interval: str = "1h") -> list[dict]:
    """A rule group (Prometheus(extra_rules=...)) whose alert fires on any scraped btcml serve, with the labels of a
    live-quality alert that retrains `symbol` `interval`: a stand-in for a real degradation."""
    return [{"name": "test-trigger", "rules": [{
        "alert": "BtcmlTestRetrain", "expr": "btcml_process_start_time_seconds > 0", "for": "2s",
        "labels": {"action": "retrain", "symbol": symbol, "interval": interval, "severity": "warning"},
        "annotations": {"summary": "test trigger for {{ $labels.instance }}"}}]}]


def store_rows(btcml, sql: str) -> list[dict]:
    """Rows of a read-only query on a test's store (SQLite file or PostgreSQL database), as dicts: what the
    pipeline and alert tables hold, seen from outside btcml."""
    if btcml.db:
        out = subprocess.run(["psql", btcml.db, "-v", "ON_ERROR_STOP=1", "-Atc",
                              f"SELECT row_to_json(t) FROM ({sql}) t"], capture_output=True, text=True, check=True,
                             timeout=60).stdout
        return [json.loads(line) for line in out.splitlines() if line]
    with contextlib.closing(sqlite3.connect(f"file:{btcml.home / 'btcml.db'}?mode=ro", uri=True, timeout=30)) as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute(sql)]


def write_series_config(home: Path, series: list[tuple[str, str]], extra: str = ""):
    """<home>/config.yaml with a `series:` section (symbol, interval), so that their pipelines exist."""
    home.mkdir(parents=True, exist_ok=True)
    lines = ["series:"] + [f"  - {{symbol: {s}, interval: {i}}}" for s, i in series]
    (home / "config.yaml").write_text("\n".join(lines) + "\n" + extra)
