"""Two `btcml serve` replicas sharing one PostgreSQL store and home. Behind Debian's nginx configured by
deploy/nginx/btcml.conf: a promotion through one replica is served by both within --poll-ms (plus the load), and
one replica killed with SIGKILL under wrk load through nginx costs no failed GET. Both running the scheduler on a
replayed series: one replica holds each pipeline's lease and records every run; killed with SIGKILL mid-retrain, the
other takes both pipelines over once the lease has expired, marks the retrain abandoned and records the later ticks,
and no schedule slot or bar is ticked twice."""
import os
import re
import shutil
import signal
import subprocess
import time
from datetime import datetime, timedelta, timezone

import pytest
import requests

from alerting import wait_until
from conftest import REPO, Btcml
from opensearch import free_port
from serving import Server
from test_closed_loop import write_bars

SYMBOL = "BTCUSD-SYNTH"
TINY = ["--symbol", SYMBOL, "--window", "24", "--hidden", "8", "--layers", "1", "--epochs", "2",
        "--samples-per-epoch", "256"]
KEY = "scale-out-key"
POLL_MS = 200  # what serving.Server starts every replica with
TICK = f"tick-{SYMBOL}-1h"
RETRAIN = f"retrain-{SYMBOL}-1h"
LEASE_S = 4  # pipelines.lease: short, so that the takeover is quick; renewed every 4/3 s
REPLAY_SPEED = 1200  # market seconds per second: a new hourly bar every 3 s, a tick each
START = datetime(2024, 1, 1, tzinfo=timezone.utc)
STORED = 300  # bars ingested before the replay starts


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


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def unix(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def runs(server: Server, pipeline: str) -> list[dict]:
    """The pipeline's runs, oldest first, each with `pid`: the process of the scheduler that ran it."""
    r = server.get(f"/api/v1/pipelines/{pipeline}/runs", params={"limit": 100})
    assert r.status_code == 200, r.text
    out = list(reversed(r.json()["runs"]))
    for run in out:
        run["pid"] = int(run["owner"].rsplit(":", 1)[1]) if run["owner"] else None
    return out


def ticked(server: Server, pid: int) -> list[dict]:
    """The tick runs of scheduler `pid` that stored a forecast."""
    return [r for r in runs(server, TICK) if r["pid"] == pid and r["status"] == "succeeded"
            and r["result"]["forecast"].get("stored", 0) > 0]


def leases_taken(server: Server) -> dict[str, float]:
    """Pipeline name -> when this replica's scheduler took its lease (unix seconds), from its log."""
    return {e["btcml.pipeline.name"]: unix(e["@timestamp"]) for e in server.log_lines()
            if e["message"] == "pipeline lease taken"}


@pytest.mark.timeout(300)
def test_the_scheduler_lease_moves_to_the_other_replica_when_its_holder_is_killed(tmp_path, pg_url):
    b = Btcml(tmp_path / "home", pg_url)
    b.home.mkdir(parents=True)
    bars = b.home / "bars.csv"
    write_bars(bars, START, [0.004] * (STORED + 300), seed=5)
    b.json("ingest", str(bars), "--symbol", SYMBOL, "--interval", "1h", "--to", iso(START + timedelta(hours=STORED - 1)))
    # The retrain reuses the champion's patience: with this one it trains until it is killed.
    b.json("train", *TINY, "--seed", "3", "--patience", "10000")
    (b.home / "config.yaml").write_text(
        f'series:\n  - {{symbol: {SYMBOL}, interval: 1h, source: "replay:{bars}"}}\n'
        f"pipelines:\n  retrain_every: never\n  epochs: 10000\n  lease: {LEASE_S}s\n"
        f"replay_speed: {REPLAY_SPEED}\nreplay_start: {iso(START + timedelta(hours=STORED))}\n")
    args = ["--scheduler", "--api-key", KEY]
    key = {"X-API-Key": KEY}
    with Server(b, *args) as one:
        # One takes both leases at its first poll; the second replica starts right after it, so that their replay
        # clocks (each starts with its process) stay close.
        wait_until(lambda: len(leases_taken(one)) == 2, 30, "replica one to take the leases")
        with Server(b, *args) as two:
            # One holds both pipelines: every tick is recorded by it, none by two, which takes no lease.
            wait_until(lambda: len(ticked(two, one.proc.pid)) >= 3, 60, "three ticks")
            assert {r["pid"] for r in runs(two, TICK)} == {one.proc.pid}
            assert leases_taken(two) == {}
            # A retrain queued through replica two is run by the holder, replica one.
            r = two.post(f"/api/v1/pipelines/{RETRAIN}/runs", json={"reason": "scale-out test"}, headers=key)
            assert r.status_code == 202, r.text
            run_id = r.json()["run"]["id"]
            retrain = wait_until(lambda: [x for x in runs(two, RETRAIN) if x["id"] == run_id and
                                          x["status"] == "running"], 60, "the retrain to start")[0]
            assert retrain["pid"] == one.proc.pid

            one.proc.send_signal(signal.SIGKILL)
            killed_at = time.time()
            one.proc.wait(timeout=30)
            taken = wait_until(lambda: (lambda t: t if len(t) == 2 else None)(leases_taken(two)), LEASE_S + 30,
                               "replica two to take the leases over")
            for pipeline, at in taken.items():
                # Not before the lease expired (its last renewal was at most a third of it and a poll before the
                # kill), and within its expiry plus one poll (and 3 s for a slow machine).
                assert LEASE_S / 3 <= at - killed_at <= LEASE_S + POLL_MS / 1000 + 3, (pipeline, at - killed_at)
            # The retrain one left behind is marked failed, abandoned, by its new holder.
            abandoned = wait_until(lambda: [x for x in runs(two, RETRAIN) if x["id"] == run_id and
                                            x["status"] != "running"], 30, "the retrain to be marked abandoned")[0]
            assert abandoned["status"] == "failed" and "abandoned" in abandoned["error"], abandoned
            assert f":{one.proc.pid})" in abandoned["error"] and unix(abandoned["finished_at"]) >= killed_at
            # `pipeline show` names the scheduler that ran it too.
            shown = b.run("pipeline", "show", str(run_id)).stdout
            assert re.search(rf"\): failed by \S+:{one.proc.pid} - abandoned", shown), shown
            # Later ticks are recorded by the survivor.
            wait_until(lambda: len(ticked(two, two.proc.pid)) >= 2, 60, "two ticks by replica two")
            ticks = runs(two, TICK)
    owners = [r["pid"] for r in ticks]
    assert set(owners) == {one.proc.pid, two.proc.pid}
    first_of_two = owners.index(two.proc.pid)
    assert set(owners[:first_of_two]) == {one.proc.pid} and set(owners[first_of_two:]) == {two.proc.pid}
    # A tick one was running when it died is abandoned too; every other tick succeeded.
    for r in ticks:
        assert r["status"] == "succeeded" or (r["status"] == "failed" and "abandoned" in r["error"]), r
    # No schedule slot ran twice, no bar was forecast twice, and the survivor went on after the dead holder's bars.
    slots = [r["reason"] for r in ticks]
    assert len(set(slots)) == len(slots), slots
    as_of = [(r["pid"], r["result"]["forecast"]["as_of"]) for r in ticks
             if r["status"] == "succeeded" and "as_of" in r["result"]["forecast"]]
    assert len({t for _, t in as_of}) == len(as_of), as_of
    assert max(t for pid, t in as_of if pid == one.proc.pid) < min(t for pid, t in as_of if pid == two.proc.pid)
