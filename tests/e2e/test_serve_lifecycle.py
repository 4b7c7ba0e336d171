"""btcml serve under change: hot reload of the champion under concurrent load, a champion that fails to load,
graceful SIGTERM with requests in flight, and a schemathesis fuzz run against /openapi.json."""
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from conftest import Btcml
from serving import Server
from test_serve import KEY, home, trained_home, window  # noqa: F401 (fixtures)


def set_champion(home: Btcml, version: int):
    """What another process (the CLI, a registry) does: replace models/champion atomically."""
    tmp = home.home / "models" / f".champion-test-{os.getpid()}"
    tmp.write_text(f"{version}\n")
    tmp.rename(home.home / "models" / "champion")


class Load:
    """Threads that each keep one keep-alive connection busy with forecasts and predictions until stopped."""

    def __init__(self, server, body, threads=4):
        self.server, self.body = server, body
        self.stop = threading.Event()
        self.failures, self.versions, self.count = [], set(), 0
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run) for _ in range(threads)]

    def run(self):
        session = requests.Session()
        while not self.stop.is_set():
            for method, path, kw in (("GET", "/api/v1/forecast", {}), ("POST", "/api/v1/predict", {"json": self.body})):
                try:
                    r = session.request(method, self.server.url + path, timeout=30, **kw)
                    ok = r.status_code == 200
                    version = r.json().get("model_version") if ok else None
                except requests.RequestException as e:
                    ok, version, r = False, None, e
                with self.lock:
                    self.count += 1
                    if ok:
                        self.versions.add(version)
                    else:
                        self.failures.append(getattr(r, "text", str(r)))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join()


def test_hot_reload_under_load_fails_no_request(home):
    with Server(home, "--api-key", KEY) as s:
        body = window(s)
        with Load(s, body) as load:
            for i in range(6):
                time.sleep(0.3)
                if i % 2 == 0:
                    home.json("models", "promote", "1")  # another process: the CLI
                    s.wait_for(lambda: s.get("/readyz").json()["model_version"] == 1, what="reload to 1")
                else:
                    assert s.post("/api/v1/models/2/promote", headers={"X-API-Key": KEY}).status_code == 200
                    s.wait_for(lambda: s.get("/readyz").json()["model_version"] == 2, what="reload to 2")
            time.sleep(0.3)
        assert load.failures == []
        assert load.versions == {1, 2} and load.count > 50
        swaps = [line for line in s.log_lines() if line["message"] == "serving model"]
        assert len(swaps) == 7  # the first load and six swaps


def test_a_champion_that_fails_to_load_keeps_the_old_model(home):
    with Server(home) as s:
        broken = home.home / "models" / "3"
        shutil.copytree(home.home / "models" / "2", broken)
        (broken / "weights.bin").write_bytes(b"BTCMLWTS-truncated")
        set_champion(home, 3)
        s.wait_for(lambda: "btcml_model_load_failures_total 1" in s.get("/metrics").text, what="failure metric")
        assert s.get("/api/v1/forecast").json()["model_version"] == 2
        assert s.get("/readyz").status_code == 200
        failed = [line for line in s.log_lines() if line["log.level"] == "error"]
        assert failed and failed[0]["model.version"] == 3 and failed[0]["model.serving_version"] == 2
        set_champion(home, 1)
        s.wait_for(lambda: s.get("/api/v1/forecast").json()["model_version"] == 1, what="recovery")


def test_sigterm_finishes_requests_in_flight_and_exits_0(home):
    with Server(home) as s:
        results = []

        def slow_request():
            # 10,000 bars as CSV: long enough to be in flight when the signal lands.
            try:
                r = requests.get(s.url + "/api/v1/bars", params={"limit": 10000},
                                 headers={"Accept": "text/csv"}, timeout=30)
                results.append((r.status_code, len(r.text.splitlines()), time.monotonic()))
            except requests.ConnectionError as e:
                results.append(("refused", str(e), time.monotonic()))

        threads = [threading.Thread(target=slow_request) for _ in range(16)]
        for t in threads:
            t.start()
        time.sleep(0.05)
        signalled = time.monotonic()
        assert s.terminate() == 0
        for t in threads:
            t.join()
        done = [r for r in results if r[0] == 200]
        assert done, results
        assert all(r[0] in (200, "refused") for r in results), results
        assert all(r[1] == 10001 for r in done), "every answered request is whole"
        messages = [line["message"] for line in s.log_lines()]
        assert "stopping: no new connections; finishing in-flight requests" in messages and messages[-1] == "stopped"
        del signalled
        with pytest.raises(requests.ConnectionError):
            requests.get(s.url + "/healthz", timeout=5)


def test_schemathesis_finds_no_server_errors_or_schema_violations(home, tmp_path):
    st = Path(sys.executable).with_name("st")
    if not st.exists():
        pytest.fail("schemathesis is not installed: run scripts/install-deps.sh")
    with Server(home, "--api-key", KEY) as s:
        proc = subprocess.run(
            [str(st), "run", f"{s.url}/openapi.json", "--experimental=openapi-3.1",
             "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
                         "response_schema_conformance",
             "--hypothesis-max-examples", "25", "--hypothesis-deadline", "none", "--hypothesis-seed", "1",
             "--hypothesis-suppress-health-check", "all",
             "-H", f"X-API-Key: {KEY}", "--max-response-time", "5000", "--request-timeout", "10000",
             "--no-color", "--exclude-path", "/docs/{file}"],
            capture_output=True, text=True, timeout=170, cwd=tmp_path)
        assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
        assert s.get("/healthz").status_code == 200
