"""The monitoring configuration in deploy/: Prometheus's config and rules pass promtool's checks and the unit tests
in rules_test.yml (every rule fires where it should and stays quiet where it should not); Alertmanager's config
passes amtool's check and routes action="retrain" alerts, and only those, to btcml's webhook."""
import subprocess
from pathlib import Path

import pytest

from alerting import DEPLOY, RULE_FILES, tool

HERE = Path(__file__).resolve().parent


def run(*cmd, cwd=None):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=120, cwd=cwd)
    assert proc.returncode == 0, f"{cmd} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_prometheus_config_and_rules_pass_promtool_check():
    promtool = tool("promtool")
    out = run(promtool, "check", "config", DEPLOY / "prometheus" / "prometheus.yml")
    assert "2 rule files found" in out
    run(promtool, "check", "rules", *RULE_FILES)


def test_every_rule_has_a_unit_test_and_the_tests_pass():
    promtool = tool("promtool")
    tests = (HERE / "rules_test.yml").read_text()
    for path in RULE_FILES:
        for line in path.read_text().splitlines():
            for key in ("- alert: ", "- record: "):
                if line.strip().startswith(key):
                    name = line.strip()[len(key):]
                    assert name in tests, f"{name} ({path.name}) has no test in rules_test.yml"
    out = run(promtool, "test", "rules", "rules_test.yml", cwd=HERE)
    assert "SUCCESS" in out


def test_alertmanager_config_passes_amtool_and_routes_retrain_alerts_to_btcml():
    amtool = tool("amtool")
    config = DEPLOY / "alertmanager" / "alertmanager.yml"
    run(amtool, "check-config", config)

    def receiver(*labels):
        return run(amtool, "config", "routes", "test", f"--config.file={config}", *labels).strip()

    assert receiver("alertname=BtcmlLivePinballRatioHigh", "action=retrain", "symbol=BTCUSD",
                    "interval=1h") == "btcml-retrain"
    assert receiver("alertname=BtcmlDataStale", "symbol=BTCUSD", "interval=1h") == "people"
    assert receiver("alertname=BtcmlTargetDown") == "people"
