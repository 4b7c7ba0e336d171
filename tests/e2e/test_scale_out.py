"""Two `btcml serve` replicas sharing one PostgreSQL store and home behind Debian's nginx configured by
deploy/nginx/btcml.conf: a promotion through one replica is served by both within --poll-ms (plus the load), and
one replica killed with SIGKILL under wrk load through nginx costs no failed GET."""
import os
import re
import shutil
import signal
import subprocess
import time

import pytest
import requests

from conftest import REPO, Btcml
from opensearch import free_port
from serving import Server

SYMBOL = "BTCUSD-SYNTH"
TINY = ["--symbol", SYMBOL, "--window", "24", "--hidden", "8", "--layers", "1", "--epochs", "2",
        "--samples-per-epoch", "256"]
KEY = "scale-out-key"
POLL_MS = 200  # what serving.Server starts every replica with


def tool(name: str) -> str:
    path = shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is missing (scripts/install-deps.sh installs it)")
        pytest.skip(f"{name} is missing")
    return path


def serving_version(server: Server) -> int | None:
    r = server.get("/api/v1/forecast")
    return r.json()["model_version"] if r.status_code == 200 else None


def forecasts_answered(server: Server) -> int:
    text = server.get("/metrics").text
    return sum(int(float(n)) for n in re.findall(
        r'^btcml_http_requests_total\{route="/api/v1/forecast",method="GET",status="200"\} (\S+)$', text, re.M))


def start_nginx(tmp_path, ports: list[int]) -> tuple[subprocess.Popen, int]:
    port = free_port()
    site = (REPO / "deploy" / "nginx" / "btcml.conf").read_text()
    for default, actual in zip(["127.0.0.1:8080", "127.0.0.1:8081"], ports):
        site = site.replace(default, f"127.0.0.1:{actual}")
    site = site.replace("listen 127.0.0.1:8000;", f"listen 127.0.0.1:{port};")
    prefix = tmp_path / "nginx"
    (prefix / "tmp").mkdir(parents=True)
    (prefix / "btcml.conf").write_text(site)
    (prefix / "nginx.conf").write_text(f"""daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/tmp;
    proxy_temp_path {prefix}/tmp;
    fastcgi_temp_path {prefix}/tmp;
    uwsgi_temp_path {prefix}/tmp;
    scgi_temp_path {prefix}/tmp;
    include {prefix}/btcml.conf;
}}
""")
    proc = subprocess.Popen([tool("nginx"), "-c", str(prefix / "nginx.conf"), "-p", str(prefix), "-e",
                             str(prefix / "error.log")], stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200:
                return proc, port
        except requests.ConnectionError:
            pass
        assert proc.poll() is None, (prefix / "error.log").read_text()
        assert time.monotonic() < deadline, "nginx did not answer"
        time.sleep(0.1)


@pytest.mark.timeout(600)
def test_two_replicas_behind_nginx_share_promotions_and_survive_a_killed_replica(tmp_path, pg_url):
    wrk = tool("wrk")
    b = Btcml(tmp_path / "home", pg_url)
    b.json("ingest", "synthetic:7")
    b.home.mkdir(parents=True, exist_ok=True)
    (b.home / "config.yaml").write_text(f"series:\n  - symbol: {SYMBOL}\n    interval: 1h\n")
    b.json("train", *TINY, "--seed", "3")
    b.json("train", *TINY, "--seed", "4")
    args = ["--api-key", KEY]
    with Server(b, *args) as one, Server(b, *args) as two:
        current = serving_version(one)
        assert current is not None and serving_version(two) == current
        other = 1 if current == 2 else 2
        # Promoted through replica one: replica two finds it in the shared registry by its own poll.
        promoted_at = time.monotonic()
        assert one.post(f"/api/v1/models/{other}/promote", headers={"X-API-Key": KEY}).status_code == 200
        for server in (one, two):
            server.wait_for(lambda s=server: serving_version(s) == other, timeout=30, what="the promoted model")
        # One poll plus loading a small model; generous for slow machines, still far below a restart.
        assert time.monotonic() - promoted_at < POLL_MS / 1000 + 5

        nginx, port = start_nginx(tmp_path, [one.port, two.port])
        try:
            load = subprocess.Popen([wrk, "-t2", "-c8", "-d8s", f"http://127.0.0.1:{port}/api/v1/forecast"],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    stdin=subprocess.DEVNULL)
            # Replica two is killed once the load reaches it, in the middle of the run.
            two.wait_for(lambda: forecasts_answered(two) >= 50, timeout=30, what="load on replica two")
            two.proc.send_signal(signal.SIGKILL)
            out, _ = load.communicate(timeout=60)
            assert load.returncode == 0, out
            assert int(re.search(r"(\d+) requests in", out).group(1)) > 100, out
            assert "Non-2xx" not in out and "Socket errors" not in out, out
            answer = requests.get(f"http://127.0.0.1:{port}/api/v1/forecast", timeout=10)
            assert answer.status_code == 200 and answer.json()["model_version"] == other
        finally:
            nginx.terminate()
            nginx.wait(timeout=30)
