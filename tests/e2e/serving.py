"""Starts `btcml serve` on a free port for a test and always stops it."""
import json
import os
import signal
import subprocess
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
