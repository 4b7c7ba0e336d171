"""Operations faults: logs that lie about the time or bury the real error, and a command line that does not say
which word it did not understand."""
import json
import os
import re
import subprocess
import time
from datetime import datetime, timezone

import pytest

from conftest import Btcml

# Zones far from UTC on both sides, one with a half-hour offset: a local time printed with a `Z` is hours off. POSIX
# rules rather than names, so that they hold without tzdata (an unknown name would silently mean UTC).
ZONES = ["EST5EDT,M3.2.0,M11.1.0", "IST-5:30", "LINT-14"]
SYNTHETIC_DAY = ["ingest", "synthetic", "--from", "2024-01-01", "--to", "2024-01-02"]


def commands_in_help(btcml: Btcml, *command) -> list[str]:
    """The subcommands `btcml [COMMAND] --help` shows: what an unknown-command message must list."""
    help_text = btcml.run(*command, "--help").stdout
    section = help_text.split("Subcommands:\n", 1)[1]
    return [line.split()[0] for line in section.splitlines() if line.startswith("  ") and line.strip()]


def assert_utc_now(stamp: str, before: float, after: float):
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stamp), stamp
    when = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()
    # The line was written while the command ran; the slack only covers the stamp's truncation to milliseconds.
    assert before - 0.01 <= when <= after + 0.01, f"{stamp} is not UTC now ({before}..{after})"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("zone", ZONES)
def test_json_log_timestamp_is_utc_with_milliseconds(btcml_sqlite: Btcml, zone):
    before = time.time()
    proc = btcml_sqlite.run("--log-format", "json", *SYNTHETIC_DAY, env={"TZ": zone})
    after = time.time()
    events = [json.loads(line) for line in proc.stderr.splitlines()]
    assert [e["message"] for e in events] == ["ingest finished"]
    assert_utc_now(events[0]["@timestamp"], before, after)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("zone", ZONES)
def test_text_log_timestamp_is_utc_with_milliseconds(btcml_sqlite: Btcml, zone):
    before = time.time()
    proc = btcml_sqlite.run(*SYNTHETIC_DAY, env={"TZ": zone})
    after = time.time()
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and " info  ingest finished " in lines[0], proc.stderr
    assert_utc_now(lines[0].split(" ", 1)[0], before, after)


@pytest.fixture
def small_filesystem(tmp_path):
    """A 400 KiB tmpfs: room for an empty store, not for a year of bars. Needs root (CI runs as root)."""
    mount = tmp_path / "small"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(mount)], capture_output=True,
                          text=True, timeout=30)
    if proc.returncode != 0:
        message = f"cannot mount a tmpfs (root is needed): {proc.stderr.strip()}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    yield mount
    subprocess.run(["umount", "--lazy", str(mount)], check=True, timeout=30)


@pytest.mark.timeout(120)
def test_a_full_disk_is_reported_once_without_rollback_noise(small_filesystem):
    # SQLite ends the transaction itself when the disk fills mid-insert; the ROLLBACK that follows used to log
    # "rollback failed: ... no transaction is active" before the real error.
    home = Btcml(small_filesystem / "home", None)
    proc = home.run("ingest", "synthetic", "--from", "2015-01-01", check=False, timeout=100)
    assert proc.returncode == 6, proc.stderr
    assert proc.stderr.splitlines() == [proc.stderr.strip()], f"one line expected: {proc.stderr}"
    assert proc.stderr.startswith("btcml: error: ") and "database or disk is full" in proc.stderr, proc.stderr
    assert "rollback" not in proc.stderr.lower()


@pytest.mark.timeout(120)
def test_a_failed_ingest_logs_one_line_on_either_backend(btcml: Btcml, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("when,what\nyesterday,something\ntoday,other\n")
    proc = btcml.run("--log-level", "info", "ingest", bad, check=False)
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.splitlines() == [proc.stderr.strip()], f"one line expected: {proc.stderr}"
    assert proc.stderr.startswith(f"btcml: error: {bad}: unrecognised layout"), proc.stderr


@pytest.mark.timeout(60)
@pytest.mark.parametrize("args,word,where", [
    (["frobnicate"], "frobnicate", ""),
    (["--log-level", "debug", "reprot", "--json"], "reprot", ""),
    (["models", "frobnicate"], "frobnicate", "models "),
])
def test_an_unknown_command_is_named_and_the_commands_listed(btcml_sqlite: Btcml, args, word, where):
    proc = btcml_sqlite.run(*args, check=False)
    assert proc.returncode == 2, proc.stderr
    assert f"unknown {where}command '{word}'" in proc.stderr, proc.stderr
    expected = commands_in_help(btcml_sqlite, *([where.strip()] if where else []))
    assert "ingest" in expected or "promote" in expected
    listed = re.search(r"commands: ([a-z][a-z-]*(?:, [a-z][a-z-]*)*)", proc.stderr).group(1).split(", ")
    assert listed == expected, proc.stderr
    assert "A subcommand is required" not in proc.stderr
    assert len(proc.stderr.splitlines()) == 1


@pytest.mark.timeout(60)
def test_no_command_lists_the_commands(btcml_sqlite: Btcml):
    proc = btcml_sqlite.run(check=False)
    assert proc.returncode == 2, proc.stderr
    commands = commands_in_help(btcml_sqlite)
    assert "serve" in commands
    assert f"a command is required; commands: {', '.join(commands)}" in proc.stderr, proc.stderr
