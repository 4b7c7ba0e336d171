"""Faults at the HTTP layer of `btcml serve`: a store that blocks, slow or silent clients, malformed framing, key
guessing, running out of file descriptors, a dead log reader. Every test drives the real binary over real sockets."""
import concurrent.futures
import http.client
import os
import re
import resource
import signal
import socket
import sqlite3
import statistics
import subprocess
import time

import pytest
import requests

from conftest import BIN, Btcml, copy_home
from serving import Server

SYMBOL = "BTCUSD-SYNTH"
KEY = "fault-key"


@pytest.fixture(scope="module")
def trained_home(tmp_path_factory):
    """Synthetic bars and two tiny models, version 1 the champion; tests copy it."""
    b = Btcml(tmp_path_factory.mktemp("trained") / "home", None)
    b.json("ingest", "synthetic:7")
    tiny = ["--symbol", SYMBOL, "--window", "24", "--hidden", "8", "--layers", "1", "--epochs", "1",
            "--samples-per-epoch", "128"]
    b.json("train", *tiny, "--seed", "3")
    b.json("train", *tiny, "--seed", "4")
    b.run("models", "promote", "1", check=False)  # whatever the promotion gate said: version 2 is left to promote
    return b.home


@pytest.fixture
def home(trained_home, tmp_path):
    return copy_home(trained_home, tmp_path)


def metric(server, name, session=None):
    """One unlabelled sample of /metrics."""
    text = (session or requests).get(server.url + "/metrics", timeout=10).text
    match = re.search(rf"^{name} (\S+)$", text, re.M)
    assert match, f"{name} is not in /metrics"
    return float(match.group(1))


def requests_counted(server, status, route="unmatched"):
    pattern = rf'^btcml_http_requests_total\{{route="{re.escape(route)}",method="[^"]*",status="{status}"\}} (\d+)$'
    return sum(int(m.group(1)) for m in re.finditer(pattern, server.get("/metrics").text, re.M))


def bars_body(i):
    t = f"2001-01-01T{i:02d}:00:00Z"  # long before the synthetic series: inserted, not a duplicate
    return {"symbol": SYMBOL, "interval": "1h",
            "bars": [{"time": t, "open": 100, "high": 101, "low": 99, "close": 100.5, "volume": 1}]}


def raw_exchange(port, data: bytes, timeout=10, source="127.0.0.1"):
    """Sends raw bytes and reads until the server closes; returns (status, whole reply)."""
    with socket.socket() as s:
        s.bind((source, 0))
        s.settimeout(timeout)
        s.connect(("127.0.0.1", port))
        s.sendall(data)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    status = int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/1.1 ") else None
    return status, reply


# ---- item 8: blocking work stays off the I/O threads -----------------------------------------------------------

@pytest.mark.timeout(120)
def test_health_and_metrics_answer_while_store_writes_wait_for_a_lock(home):
    with Server(home, "--api-key", KEY) as server:  # 2 I/O threads, 8 workers
        db = sqlite3.connect(home.home / "btcml.db", isolation_level=None, timeout=0)
        db.execute("BEGIN IMMEDIATE")  # the write lock, as a CLI ingest holds it for its whole run
        headers = {"X-API-Key": KEY}
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            writes = [pool.submit(requests.post, server.url + "/api/v1/bars", json=bars_body(i), headers=headers,
                                  timeout=60) for i in range(5)]
            writes.append(pool.submit(requests.post, server.url + "/api/v1/models/2/promote", headers=headers,
                                      timeout=60))
            # All six are parked on the workers, waiting for the lock (more than the 2 I/O threads).
            server.wait_for(lambda: metric(server, "btcml_http_worker_queue_requests") >= 6, timeout=20,
                            what="the writes to wait on the store")
            latencies = []
            for _ in range(10):
                for path in ("/healthz", "/metrics"):
                    started = time.monotonic()
                    assert requests.get(server.url + path, timeout=5).status_code == 200
                    latencies.append(time.monotonic() - started)
            assert not any(w.done() for w in writes), "the lock was not contended while health was measured"
            assert statistics.median(latencies) < 0.1 and max(latencies) < 0.5, latencies
            db.execute("ROLLBACK")
            db.close()
            statuses = [w.result().status_code for w in writes]
        assert statuses == [201] * 5 + [200], statuses


@pytest.mark.timeout(120)
def test_a_full_worker_queue_answers_503_with_retry_after(home):
    with Server(home, "--api-key", KEY, "--workers", "1", "--queue-limit", "1") as server:
        db = sqlite3.connect(home.home / "btcml.db", isolation_level=None, timeout=0)
        db.execute("BEGIN IMMEDIATE")
        headers = {"X-API-Key": KEY}
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            held = [pool.submit(requests.post, server.url + "/api/v1/bars", json=bars_body(i), headers=headers,
                                timeout=60) for i in range(2)]
            server.wait_for(lambda: metric(server, "btcml_http_worker_queue_requests") >= 2, timeout=20,
                            what="one running and one queued write")
            r = requests.get(server.url + "/api/v1/runs", timeout=10)
            assert r.status_code == 503 and r.headers["Retry-After"] == "1", r.text
            assert "busy" in r.json()["detail"]
            assert metric(server, "btcml_http_worker_queue_rejected_total") == 1
            assert requests.get(server.url + "/healthz", timeout=5).status_code == 200
            db.execute("ROLLBACK")
            db.close()
            assert [h.result().status_code for h in held] == [201, 201]
        assert requests.get(server.url + "/api/v1/runs", timeout=10).status_code == 200


@pytest.mark.timeout(120)
def test_sigterm_drains_a_request_waiting_on_a_worker(home):
    with Server(home, "--api-key", KEY) as server:
        db = sqlite3.connect(home.home / "btcml.db", isolation_level=None, timeout=0)
        db.execute("BEGIN IMMEDIATE")
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            write = pool.submit(requests.post, server.url + "/api/v1/bars", json=bars_body(0),
                                headers={"X-API-Key": KEY}, timeout=60)
            server.wait_for(lambda: metric(server, "btcml_http_worker_queue_requests") == 1, timeout=20,
                            what="the write to wait on the store")
            server.proc.send_signal(signal.SIGTERM)
            server.wait_for(lambda: any(line.get("message", "").startswith("stopping") for line in server.log_lines()),
                            timeout=10, what="the server to begin stopping")
            assert server.proc.poll() is None and not write.done(), "the server left before its pooled request"
            db.execute("ROLLBACK")
            db.close()
            assert write.result().status_code == 201
        assert server.proc.wait(timeout=30) == 0


# ---- item 11: timeouts and accept failures ---------------------------------------------------------------------

@pytest.mark.timeout(60)
@pytest.mark.parametrize("trickle", [False, True], ids=["silent", "one-byte-at-a-time"])
def test_a_slow_header_is_cut_off_by_the_request_timeout(home, trickle):
    with Server(home, "--request-timeout", "1") as server, socket.create_connection(("127.0.0.1", server.port)) as s:
        started = time.monotonic()
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        s.settimeout(0.2)
        reply = b""
        while time.monotonic() - started < 15 and not reply.endswith(b"}"):
            if trickle:
                try:
                    s.send(b"X")  # never completes a header line; the idle timeout (60 s) must not apply
                except OSError:
                    pass
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:  # our trickle reached a closed socket: the reply came before
                break
            if not chunk:
                break
            reply += chunk
        elapsed = time.monotonic() - started
        assert reply.startswith(b"HTTP/1.1 408"), reply
        assert elapsed < 8, f"cut off after {elapsed:.1f} s, not after the 1 s request timeout"


@pytest.mark.timeout(60)
def test_a_client_that_never_reads_is_dropped_after_the_write_timeout(home):
    with Server(home, "--request-timeout", "30", "--write-timeout", "1") as server:
        metrics = requests.Session()
        stuck = socket.socket()
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.connect(("127.0.0.1", server.port))
        # Far more response than the socket buffers hold; the client then reads nothing.
        stuck.sendall(b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n" * 400)
        try:
            server.wait_for(lambda: metric(server, "btcml_http_requests_in_flight", metrics) >= 2, timeout=10,
                            what="the response to block")
            started = time.monotonic()
            server.wait_for(lambda: metric(server, "btcml_http_requests_in_flight", metrics) == 1, timeout=15,
                            what="the stuck connection to be dropped")
            assert time.monotonic() - started < 10
        finally:
            stuck.close()


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.timeout(90)
def test_running_out_of_file_descriptors_backs_off_and_recovers(home):
    with Server(home) as server:
        pid = server.proc.pid
        keeper = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        keeper.request("GET", "/healthz")
        assert keeper.getresponse().read() == b'{"status":"ok"}'
        open_now = len(os.listdir(f"/proc/{pid}/fd"))
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (open_now + 6, open_now + 6))
        clients = []
        try:
            for _ in range(40):  # the kernel queues them; the server runs out of descriptors accepting them
                clients.append(socket.create_connection(("127.0.0.1", server.port), timeout=5))

            server.wait_for(lambda: len(os.listdir(f"/proc/{pid}/fd")) >= open_now + 6, timeout=20,
                            what="the server to use up its descriptors")
            before, started = cpu_seconds(pid), time.monotonic()
            while time.monotonic() - started < 2:  # open connections are still served meanwhile
                t = time.monotonic()
                keeper.request("GET", "/healthz")
                assert keeper.getresponse().read() == b'{"status":"ok"}'
                assert time.monotonic() - t < 0.5
                time.sleep(0.05)
            used = cpu_seconds(pid) - before
            assert used < 0.5, f"the server burnt {used:.2f} s of CPU in 2 s while accept failed"
            warnings = [line for line in server.log_lines() if line.get("message") == "accept failed; retrying "
                        "with back-off (up to 1 s) while open connections are served"]
            assert len(warnings) == 1, warnings
            keeper.request("GET", "/metrics")
            text = keeper.getresponse().read().decode()
            assert float(re.search(r"^btcml_http_accept_errors_total (\S+)$", text, re.M).group(1)) >= 1
        finally:
            for c in clients:
                c.close()
        server.wait_for(lambda: requests.get(server.url + "/healthz", timeout=5).status_code == 200, timeout=20,
                        what="new connections to be accepted again")
        assert any(line.get("message") == "accepting connections again" for line in server.log_lines())
        keeper.close()


# ---- item 13: HTTP conformance and key guessing -----------------------------------------------------------------

@pytest.mark.timeout(60)
@pytest.mark.parametrize("codings", [["gzip, chunked"], ["chunked, gzip"], ["identity"], ["x-unknown"],
                                     ["chunked, chunked"], ["chunked", "chunked"]])
def test_transfer_codings_other_than_chunked_alone_are_400_and_close(home, codings):
    with Server(home, "--api-key", KEY) as server:
        head = b"POST /api/v1/bars HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        head += b"".join(b"Transfer-Encoding: " + c.encode() + b"\r\n" for c in codings)
        status, reply = raw_exchange(server.port, head + b"\r\n2\r\n{}\r\n0\r\n\r\n")
        assert status == 400 and b"Transfer-Encoding" in reply and b"Connection: close" in reply, reply
        # The same request with chunked alone (any case) gets as far as the key check.
        status, _ = raw_exchange(server.port, head.split(b"Transfer-Encoding")[0] +
                                 b"Transfer-Encoding: Chunked\r\nConnection: close\r\n\r\n2\r\n{}\r\n0\r\n\r\n")
        assert status == 401


@pytest.mark.timeout(60)
def test_host_header_is_required_once_on_http_1_1(home):
    with Server(home) as server:
        status, reply = raw_exchange(server.port, b"GET /healthz HTTP/1.1\r\n\r\n")
        assert status == 400 and b"Host" in reply, reply
        status, reply = raw_exchange(server.port, b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
        assert status == 400 and b"Host" in reply, reply
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:  # HTTP/1.0 has no Host
            s.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
            reply = b""
            while chunk := s.recv(65536):
                reply += chunk
        assert reply.startswith(b"HTTP/1.0 200"), reply


@pytest.mark.timeout(60)
@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_the_bearer_scheme_is_case_insensitive(home, scheme):
    with Server(home, "--api-key", KEY) as server:
        r = server.post("/api/v1/bars", json={}, headers={"Authorization": f"{scheme} {KEY}"})
        assert r.status_code == 422, r.text  # past the key check: the empty body is what is wrong
        assert server.post("/api/v1/bars", json={}, headers={"Authorization": f"{scheme}{KEY}"}).status_code == 401


@pytest.mark.timeout(60)
def test_a_client_that_disconnects_mid_request_is_not_an_answered_400(home):
    with Server(home) as server:
        for partial in (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Half: ",
                        b"POST /api/v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"sym"):
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
                s.sendall(partial)
                s.shutdown(socket.SHUT_WR)  # gone, as far as the server can tell; we still see how it ends
                assert s.recv(65536) == b"", "a client that left was answered"
        assert requests_counted(server, 400) == 0
        assert not [line for line in server.log_lines() if line.get("http.response.status_code") == 400]


@pytest.mark.timeout(60)
def test_wrong_api_keys_are_rate_limited_per_client_address(home):
    with Server(home, "--api-key", KEY, "--auth-failures-per-minute", "3") as server:
        def post(key, source="127.0.0.1"):
            return raw_exchange(server.port, b"POST /api/v1/bars HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                b"Content-Type: application/json\r\nX-API-Key: " + key.encode() +
                                b"\r\nContent-Length: 2\r\n\r\n{}", source=source)

        assert [post(f"guess-{i}")[0] for i in range(3)] == [401, 401, 401]
        status, reply = post("guess-4")
        assert status == 429, reply
        retry_after = int(re.search(rb"\r\nRetry-After: (\d+)\r\n", reply).group(1))
        assert 0 < retry_after <= 20  # one attempt every 60 / 3 s
        assert post(KEY)[0] == 429  # the right key too: guessing must stall, not probe
        assert post("guess-5", source="127.0.0.2")[0] == 401  # another address has its own budget
        assert post(KEY, source="127.0.0.2")[0] == 422
        assert metric(server, "btcml_http_auth_failures_total") == 4
        assert metric(server, "btcml_http_auth_rate_limited_total") == 2
        assert server.get("/healthz").status_code == 200  # open routes are not limited


# ---- item 14: a dead log reader ----------------------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_a_closed_log_pipe_does_not_kill_the_server(home):
    proc = subprocess.Popen([str(BIN), "--home", str(home.home), "--log-format", "json", "serve", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        proc.stderr.close()  # the log reader is gone before the first line is written
        line = proc.stdout.readline()
        assert line.startswith("btcml serving on "), (line, proc.poll())
        url = line.split()[3]
        for _ in range(5):  # each request writes an access log line into the dead pipe
            assert requests.get(url + "/healthz", timeout=10).status_code == 200
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait(timeout=30)
