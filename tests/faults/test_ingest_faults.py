"""Ingest under faults and hostile input: failures while the CSV reader threads run, PostgreSQL stopped and a full
disk mid-ingest, FIFOs and pipes, rows with too many fields, misleading time columns, non-finite numbers, the valid
time range, zips with several CSV files, overflowing intervals and a span of slots too wide for one bitmap."""
import gzip
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import pytest

from conftest import BIN, REPO, Btcml, shared_file

HOUR = 3600
T0 = 1_700_000_000 - 1_700_000_000 % HOUR  # 2023-11-14T22:00:00Z
HEADER = "time,open,high,low,close,volume\n"
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def rows(n, start=T0, step=HOUR):
    return "".join(f"{start + i * step},100,110,90,105,1\n" for i in range(n))


def write(path, text):
    path.write_text(text)
    return path


def need_tool(path_or_name):
    """A tool the test needs: under CI a missing one fails, elsewhere it skips."""
    found = Path(path_or_name).exists() if os.sep in str(path_or_name) else shutil.which(path_or_name)
    if not found:
        if os.environ.get("CI"):
            pytest.fail(f"{path_or_name} is required under CI=true")
        pytest.skip(f"{path_or_name} is not installed")


def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def ingest_runs(home):
    db = sqlite3.connect(home / "btcml.db")
    try:
        return db.execute("SELECT status, error FROM ingest_runs ORDER BY id").fetchall()
    finally:
        db.close()


# Item 1: an error raised while the reader threads wait for ring slots that the consumer never releases. The file is
# several times the reader's ring (4 threads x 4 batches x 128 KB), so that the threads are blocked when it fails.
@pytest.mark.timeout(900)
def test_ingest_failing_while_reader_threads_run_never_hangs(tmp_path):
    n = 100_000  # about 3.5 MB
    same_time = write(tmp_path / "same_time.csv", HEADER + f"{T0},100,110,90,105,1\n" * n)
    hourly = write(tmp_path / "hourly.csv", HEADER + rows(n))
    # The interval cannot be inferred (every time equal), or the resample does not fit it: both fail after the
    # first 1,000 rows, with the threads running.
    cases = [([same_time], "fewer than two rows with distinct times"),
             ([hourly, "--resample", "90m"], "must be a multiple of the source interval")]
    b = Btcml(tmp_path / "home", None)
    hangs = 0
    runs = 200
    for i in range(runs):
        args, message = cases[i % 2]
        try:
            r = b.run("ingest", *args, check=False, timeout=60)
        except subprocess.TimeoutExpired:
            hangs += 1
            continue
        assert r.returncode in (2, 3), r.stderr
        assert message in r.stderr
    assert hangs == 0, f"{hangs} of {runs} failing ingests hung"
    recorded = ingest_runs(b.home)
    assert len(recorded) == runs
    assert all(status == "failed" and error for status, error in recorded), recorded[:3]


class PrivatePostgres:
    """A PostgreSQL server of the test's own (scripts/pg-test-server.sh in a private directory), so that stopping it
    cannot disturb the shared test server."""

    def __init__(self):
        need_tool(PG_BIN / "pg_ctl")
        need_tool("psql")
        self.dir = Path(tempfile.mkdtemp(prefix="btcml-faults-pg-", dir="/tmp"))
        self.env = dict(os.environ, BTCML_PG_DIR=str(self.dir))

    def script(self, command):
        return subprocess.run([str(REPO / "scripts" / "pg-test-server.sh"), command], env=self.env, check=True,
                              capture_output=True, text=True, timeout=120).stdout.strip()

    def start(self):
        self.script("start")
        self.url = self.script("url")

    def stop_postmaster(self):
        cmd = [str(PG_BIN / "pg_ctl"), "stop", "-D", str(self.dir / "data"), "-m", "fast", "-w"]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--"] + cmd
        subprocess.run(cmd, check=True, capture_output=True, timeout=120, cwd="/")

    def query(self, sql):
        return subprocess.run(["psql", self.url, "-tAc", sql], check=True, capture_output=True, text=True,
                              timeout=60).stdout.strip()

    def remove(self):
        subprocess.run([str(REPO / "scripts" / "pg-test-server.sh"), "stop"], env=self.env, capture_output=True,
                       timeout=120)
        shutil.rmtree(self.dir, ignore_errors=True)


class FifoWriter(threading.Thread):
    """Writes `parts` into a FIFO one after the other, each once `gates[i]` is set; records how far it got."""

    def __init__(self, path, parts, gates):
        super().__init__(daemon=True)
        self.path, self.parts, self.gates = path, parts, gates
        self.written = threading.Event()  # the first part is written: the reader has taken all but a pipe's worth
        self.error = None

    def run(self):
        try:
            with open(self.path, "wb") as f:
                for i, part in enumerate(self.parts):
                    if not self.gates[i].wait(120):
                        return
                    f.write(part)
                    f.flush()
                    if i == 0:
                        self.written.set()
        except (BrokenPipeError, OSError) as e:  # the reader failed and closed its end: expected for faults
            self.error = e


@pytest.mark.timeout(600)
def test_postgresql_stopped_mid_ingest_ends_the_run_promptly(tmp_path):
    pg = PrivatePostgres()
    try:
        pg.start()
        fifo = tmp_path / "bars.fifo"
        os.mkfifo(fifo)
        # 30,000 rows (one batch of bars is written at 20,000), then the server stops, then 60,000 more.
        first, rest = HEADER + rows(30_000), rows(60_000, start=T0 + 30_000 * HOUR)
        go_first, go_rest = threading.Event(), threading.Event()
        go_first.set()
        writer = FifoWriter(fifo, [first.encode(), rest.encode()], [go_first, go_rest])
        writer.start()
        cmd = [str(BIN), "--home", str(tmp_path / "home"), "--db", pg.url, "ingest", str(fifo), "--interval", "1h"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                stdin=subprocess.DEVNULL)
        try:
            assert writer.written.wait(120), "the ingest did not read its input"
            wait_for(lambda: pg.query("SELECT count(*) FROM ingest_runs WHERE status = 'running'") == "1", 60,
                     "the ingest run to be recorded as running")
            pg.stop_postmaster()
            stopped = time.monotonic()
            go_rest.set()
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert time.monotonic() - stopped < 60
        assert proc.returncode == 6, err  # Unavailable
        assert pg.url.split("@")[1].split("/")[0] in err or "postgres" in err.lower(), err
        assert "connection" in err.lower() or "terminat" in err.lower() or "server" in err.lower(), err
        # Nothing of the failed run is stored once the server is back.
        pg.start()
        assert pg.query("SELECT count(*) FROM bars") == "0"
    finally:
        pg.remove()


@pytest.mark.timeout(600)
def test_sqlite_on_a_full_disk_fails_cleanly_and_keeps_stored_bars(tmp_path):
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("mounting a tmpfs needs root (CI runs as root)")
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True, timeout=60)
    try:
        b = Btcml(mount / "home", None)
        before = b.json("ingest", write(tmp_path / "before.csv", HEADER + rows(100)))
        assert before["rows_inserted"] == 100
        # Far more than 2 MB of bars, read by the threads (several chunks).
        big = write(tmp_path / "big.csv", HEADER + rows(200_000, start=T0 + 100 * HOUR))
        start = time.monotonic()
        r = b.run("ingest", big, check=False, timeout=300)
        assert time.monotonic() - start < 300
        assert r.returncode == 6, r.stderr  # Unavailable
        assert "disk is full" in r.stderr, r.stderr
        db = sqlite3.connect(b.home / "btcml.db")
        try:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            assert db.execute("SELECT count(*) FROM bars").fetchone() == (100,)
        finally:
            db.close()
        assert b.json("series")["series"][0]["bars"] == 100
        statuses = ingest_runs(b.home)
        assert statuses[0][0] == "succeeded"
        assert statuses[1][0] == "failed" and "disk is full" in statuses[1][1], statuses
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False, timeout=60)


# Item 4: one stream, sniffed and read; `-` is standard input.
def stored_bars(b):
    """The stored bars without their source column (the path or `-`), as one string: compared whole, so that a
    failure does not make pytest diff 10,000 lines."""
    lines = b.run("bars", "--interval", "1m").stdout.splitlines()
    return "\n".join(line.rsplit(",", 1)[0] for line in lines)


def same_bars(a, b):
    equal = a == b
    assert equal, f"the stored bars differ ({len(a)} and {len(b)} characters)"


@pytest.fixture
def reference(tmp_path):
    """A shared file of several chunks, and the bars stored by ingesting it by path."""
    src = shared_file("kaggle_btcusd_1-min_data_2012-01-01_2012-01-08.csv")
    b = Btcml(tmp_path / "direct", None)
    s = b.json("ingest", src)
    return src, s, stored_bars(b)


def test_fifo_input_is_read_whole(tmp_path, reference):
    src, direct, bars = reference
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)
    go = threading.Event()
    go.set()
    writer = FifoWriter(fifo, [src.read_bytes()], [go])
    writer.start()
    b = Btcml(tmp_path / "fifo", None)
    s = b.json("ingest", fifo, timeout=120)
    writer.join(60)
    assert (s["rows_read"], s["rows_inserted"], s["format"]) == (direct["rows_read"], direct["rows_inserted"], "kaggle")
    same_bars(stored_bars(b), bars)


@pytest.mark.parametrize("how", ["dash", "dev-stdin", "gzip-dash"])
def test_pipe_to_standard_input_is_read_whole(tmp_path, reference, how):
    src, direct, bars = reference
    data = gzip.compress(src.read_bytes()) if how == "gzip-dash" else src.read_bytes()
    b = Btcml(tmp_path / how, None)
    cmd = [str(BIN), "--home", str(b.home), "ingest", "/dev/stdin" if how == "dev-stdin" else "-", "--json"]
    # A real pipe (cat | btcml), not a file redirected to stdin.
    cat = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    proc = subprocess.Popen(cmd, stdin=cat.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cat.stdout.close()
    def feed():
        try:
            cat.stdin.write(data)
            cat.stdin.close()
        except BrokenPipeError:  # the ingest failed early: its exit status tells
            pass

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    out, err = proc.communicate(timeout=120)
    cat.wait(60)
    assert proc.returncode == 0, err
    s = json.loads(out)
    assert (s["rows_read"], s["rows_inserted"]) == (direct["rows_read"], direct["rows_inserted"])
    assert s["format"] == ("kaggle (gzip)" if how == "gzip-dash" else "kaggle")
    same_bars(stored_bars(b), bars)


def test_standard_input_redirected_from_a_file_is_read_from_its_offset(tmp_path, reference):
    """`{ read -r header; btcml ingest -; } < file`: the data starts where the shell left the file's offset."""
    src, direct, bars = reference
    fd = os.open(src, os.O_RDONLY)
    try:
        while os.read(fd, 1) != b"\n":  # the header line, as the shell's `read` consumes it
            pass
        b = Btcml(tmp_path / "offset", None)
        proc = subprocess.run([str(BIN), "--home", str(b.home), "ingest", "-", "--json"], stdin=fd,
                              capture_output=True, text=True, timeout=120)
    finally:
        os.close(fd)
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout)
    assert (s["format"], s["rows_inserted"]) == ("generic", direct["rows_inserted"])
    same_bars(stored_bars(b), bars)


def test_empty_pipe_says_empty(tmp_path):
    b = Btcml(tmp_path / "home", None)
    proc = subprocess.run([str(BIN), "--home", str(b.home), "ingest", "-"], input="", capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 3 and "standard input: the file is empty" in proc.stderr, proc.stderr


# Item 5: more fields than the header (decimal commas) or than a headerless layout's count.
def test_rows_with_too_many_fields_are_bad_field_count(btcml_sqlite, tmp_path):
    good = [f"{T0 + i * HOUR},100,110,90,105,1" for i in range(4)]
    bad = [f"{T0 + 4 * HOUR},1,5,1,5,1,5,1,5,1",  # decimal commas under a 6-column header
           f"{T0 + 5 * HOUR}," + ",".join(["100"] * 10_000),
           f"{T0 + 6 * HOUR},100,110,90,105,1,"]  # one empty field too many
    path = write(tmp_path / "commas.csv", HEADER + "\n".join(good + bad + [f"{T0 + 7 * HOUR},100,110,90,105,1"]) + "\n")
    s = btcml_sqlite.json("ingest", path)
    assert s["rows_inserted"] == 5
    assert s["rejected_reasons"] == {"bad_field_count": 3}
    # Headerless Kraken rows have exactly 7 fields; trailing columns that a header declares are fine.
    kraken = write(tmp_path / "kraken.csv", "".join(f"{T0 + i * HOUR},1,1,1,1,1,1\n" for i in range(3)) +
                   f"{T0 + 3 * HOUR},1,1,1,1,1,1,1\n")
    s = btcml_sqlite.json("ingest", kraken, "--symbol", "K")
    assert (s["format"], s["rows_inserted"], s["rejected_reasons"]) == ("kraken", 3, {"bad_field_count": 1})
    extra = write(tmp_path / "extra.csv", "time,open,high,low,close,volume,trades,note\n" +
                  "".join(f"{T0 + i * HOUR},1,1,1,1,1,7,x\n" for i in range(3)))
    assert btcml_sqlite.json("ingest", extra, "--symbol", "E")["rows_inserted"] == 3


# Item 6: the time column is chosen by what it holds.
def test_epoch_column_is_preferred_to_a_date_only_column(btcml_sqlite, tmp_path):
    lines = ["date,time,epoch,open,high,low,close,volume"]
    for i in range(48):
        t = T0 + i * HOUR
        day = time.strftime("%Y-%m-%d", time.gmtime(t))
        tod = time.strftime("%H:%M:%S", time.gmtime(t))
        lines.append(f"{day},{tod},{t},100,110,90,105,1")
    path = write(tmp_path / "three_times.csv", "\n".join(lines) + "\n")
    s = btcml_sqlite.json("ingest", path)
    assert (s["interval"], s["rows_inserted"], s["rows_rejected"]) == ("1h", 48, 0)
    # Date and time of day only: combined.
    lines2 = [",".join(line.split(",")[:2] + line.split(",")[3:]) for line in lines]
    path2 = write(tmp_path / "date_and_time.csv", "\n".join(lines2) + "\n")
    s = btcml_sqlite.json("ingest", path2, "--symbol", "B")
    assert (s["interval"], s["rows_inserted"], s["first_time"]) == ("1h", 48, "2023-11-14T22:00:00Z")


def test_failed_time_detection_names_the_column(btcml_sqlite, tmp_path):
    path = write(tmp_path / "days.csv", "date,open,high,low,close\n" + "2024-01-01,1,1,1,1\n" * 5)
    r = btcml_sqlite.run("ingest", path, check=False)
    assert r.returncode == 3
    assert "column 1 'date' (dates without a time of day)" in r.stderr, r.stderr
    bad = write(tmp_path / "bad_times.csv", "time,open,high,low,close\n" + "soon,1,1,1,1\n" * 5)
    r = btcml_sqlite.run("ingest", bad, check=False)
    assert r.returncode == 3
    assert "none of the first 5 rows has a time that parses in column 1 'time'" in r.stderr, r.stderr
    assert "fewer than two" not in r.stderr


# Item 7: numbers that are not finite, one valid time range, zips with several CSV files.
def test_non_finite_numbers_and_times_outside_the_range_are_named(btcml_sqlite, tmp_path):
    good = [f"2024-01-01T{h:02d}:00:00Z,100,110,90,105,1" for h in range(4)]
    bad = ["2024-01-01T04:00:00Z,1e309,1e309,90,1e309,1", "2024-01-01T05:00:00Z,100,inf,90,105,1",
           "2024-01-01T06:00:00Z,100,110,90,105,-Infinity", "0001-01-01T00:00:00Z,100,110,90,105,1",
           "1969-12-31T23:00:00Z,100,110,90,105,1", "2100-01-01T00:00:00Z,100,110,90,105,1"]
    path = write(tmp_path / "odd.csv", HEADER + "\n".join(good + bad) + "\n")
    s = btcml_sqlite.json("ingest", path)
    assert s["rows_inserted"] == 4
    assert s["rejected_reasons"] == {"non_finite_number": 3, "unparsable_time": 3}
    r = btcml_sqlite.run("ingest", path, "--from", "1969-12-31", check=False)
    assert r.returncode == 2 and "from 1970-01-01 to 2099-12-31" in r.stderr


def test_zip_with_several_csv_files_is_refused_naming_them(btcml_sqlite, tmp_path):
    zp = tmp_path / "several.zip"
    with zipfile.ZipFile(zp, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("b.csv", HEADER + rows(24))
        z.writestr("README.md", "not data")
        z.writestr("a.csv", HEADER + rows(24, start=T0 + 24 * HOUR))
    r = btcml_sqlite.run("ingest", zp, check=False)
    assert r.returncode == 3
    assert "holds 2 CSV files (a.csv, b.csv)" in r.stderr, r.stderr
    assert btcml_sqlite.json("series")["series"] == []
    # The same through a pipe, where the archive can only be streamed.
    proc = subprocess.run([str(BIN), "--home", str(btcml_sqlite.home), "ingest", "-"], input=zp.read_bytes(),
                          capture_output=True, timeout=60)
    assert proc.returncode == 3 and b"holds 2 CSV files (a.csv, b.csv)" in proc.stderr, proc.stderr


# Item 12: an interval that overflows; a span too wide for one bitmap.
@pytest.mark.parametrize("interval", ["99999999999999999999h", "5124095576030432h", "30500568904944w", "0s", "-1h"])
def test_overflowing_interval_is_a_usage_error(btcml_sqlite, tmp_path, interval):
    path = write(tmp_path / "h.csv", HEADER + rows(3))
    r = btcml_sqlite.run("ingest", path, "--interval", interval, check=False)
    assert r.returncode == 2 and "is not an interval" in r.stderr, r.stderr


@pytest.mark.timeout(120)
def test_overflowing_interval_query_is_a_400(btcml_sqlite):
    from serving import Server
    server = Server(btcml_sqlite)
    try:
        for interval in ["99999999999999999999h", "5124095576030432h", "30500568904944w"]:
            r = server.get("/api/v1/bars", params={"symbol": "BTCUSD", "interval": interval})
            assert r.status_code == 400, (interval, r.status_code, r.text)
            assert "interval" in r.text
    finally:
        server.terminate()


def limit_address_space(megabytes):
    def apply():
        limit = megabytes << 20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return apply


def test_old_first_bar_with_one_second_interval_stays_small(tmp_path):
    # 1970 and today, one second apart in slots: 1.7 billion slots, 200 MB as one bitmap (doubling: 400 MB).
    lines = [f"{i},100,110,90,105,1" for i in range(0, 3)] + [f"{T0 + i},100,110,90,105,1" for i in range(1000)]
    path = write(tmp_path / "old.csv", HEADER + "\n".join(lines) + "\n")
    home = tmp_path / "home"
    cmd = [str(BIN), "--home", str(home), "ingest", str(path), "--interval", "1s", "--json"]
    # The limit: what a small ingest needs here, plus 100 MB (well under the bitmap it used to allocate).
    baseline = write(tmp_path / "small.csv", HEADER + rows(3))
    base = 0
    for mb in range(64, 4096, 32):
        probe = subprocess.run([str(BIN), "--home", str(tmp_path / "probe"), "ingest", str(baseline)],
                               capture_output=True, timeout=60, preexec_fn=limit_address_space(mb))
        if probe.returncode == 0:
            base = mb
            break
    assert base, "btcml did not run under any address-space limit up to 4 GB"
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, preexec_fn=limit_address_space(base + 100))
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert (s["rows_inserted"], s["first_time"]) == (1003, "1970-01-01T00:00:00Z")
