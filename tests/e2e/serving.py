"""Starts `btcml serve` on a free port for a test and always stops it."""
import json
import os
import signal
import subprocess
import threading
import time

import requests

from conftest import BIN, Btcml


class Server:
    """A running `btcml serve`; `url` is its base address, `log_lines()` its JSON log so far."""

    def __init__(self, btcml: Btcml, *args, env=None):
        self.log_path = btcml.home.parent / f"serve-{time.monotonic_ns()}.log"
        cmd = [str(BIN), "--home", str(btcml.home), "--log-format", "json"]
        if btcml.db:
            cmd += ["--db", btcml.db]
        cmd += ["serve", "--port", "0", "--threads", "2", "--poll-ms", "200", *[str(a) for a in args]]
        full_env = dict(os.environ)
        full_env.pop("BTCML_DB", None)
        full_env.pop("BTCML_API_KEY", None)
        full_env.update(env or {})
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._log, stdin=subprocess.DEVNULL,
                                     text=True, env=full_env)
        line = self.proc.stdout.readline()
        if not line.startswith("btcml serving on "):
            self.stop()
            raise AssertionError(f"serve did not start: {line!r} {self.log_path.read_text()}")
        self.url = line.split()[3]
        self.port = int(self.url.rsplit(":", 1)[1])
        deadline = time.monotonic() + 20
        while requests.get(self.url + "/healthz", timeout=5).status_code != 200:
            assert time.monotonic() < deadline, "healthz never answered"
            time.sleep(0.05)

    def get(self, path, **kw):
        return requests.get(self.url + path, timeout=30, **kw)

    def post(self, path, **kw):
        return requests.post(self.url + path, timeout=30, **kw)

    def log_lines(self):
        if not self._log.closed:
            self._log.flush()
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line.startswith("{")]

    def wait_for(self, predicate, timeout=10, what="condition"):
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.05)

    def terminate(self, timeout=30):
        """SIGTERM, then the exit status."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self._log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class Hammer:
    """Threads that each keep one keep-alive connection busy until stopped: GET /api/v1/forecast (of `symbol` 1h
    when given) and, with `predict_body`, POST /api/v1/predict too. Counts requests, the versions that answered and
    the failures."""

    def __init__(self, server, symbol=None, threads=2, predict_body=None):
        self.server, self.symbol = server, symbol or "the default series"
        params = {"symbol": symbol, "interval": "1h"} if symbol else {}
        self.calls = [("GET", "/api/v1/forecast", {"params": params})]
        if predict_body is not None:
            self.calls.append(("POST", "/api/v1/predict", {"json": predict_body}))
        self.stop = threading.Event()
        self.failures, self.versions, self.count = [], set(), 0
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run) for _ in range(threads)]

    def run(self):
        session = requests.Session()
        while not self.stop.is_set():
            for method, path, kw in self.calls:
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

    def wait_for_more(self, more=20):
        """Until `more` further requests were answered: a count rather than a time, so on any CPU speed."""
        with self.lock:
            target = self.count + more
        self.server.wait_for(lambda: self.count >= target, what=f"{more} more requests for {self.symbol}")

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join()
