"""deploy/systemd/: the units parse cleanly with systemd-analyze verify (every key known, every value valid, the
command executable), pointed at the built binary since none is installed under /usr/local/bin here."""
import os
import shutil
import subprocess

import pytest

from conftest import BIN, REPO

UNITS = REPO / "deploy" / "systemd"


def verify(paths) -> subprocess.CompletedProcess:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        if os.environ.get("CI"):
            pytest.fail("systemd-analyze is missing (Debian's systemd package)")
        pytest.skip("systemd-analyze is missing")
    return subprocess.run([tool, "verify", "--man=no", *map(str, paths)], capture_output=True, text=True, timeout=60)


@pytest.mark.timeout(120)
def test_the_units_verify_without_a_warning(tmp_path):
    units = []
    for unit, name in [("btcml-serve@.service", "btcml-serve@8080.service"),
                       ("btcml-scheduler.service", "btcml-scheduler.service")]:
        text = (UNITS / unit).read_text()
        assert "ExecStart=/usr/local/bin/btcml " in text and "User=btcml" in text
        (tmp_path / name).write_text(text.replace("/usr/local/bin/btcml", str(BIN)))
        units.append(tmp_path / name)
    proc = verify(units)
    assert proc.returncode == 0 and proc.stderr == "" and proc.stdout == "", proc.stderr + proc.stdout


@pytest.mark.timeout(120)
def test_verify_would_catch_a_broken_unit(tmp_path):
    bad = tmp_path / "bad.service"
    bad.write_text(f"[Service]\nExecStart={BIN} serve\nRestart=sometimes\n")
    assert "restart specifier" in verify([bad]).stderr
