"""What btcml's DAGs share: the operator that runs one btcml step, its exit codes, the configured series.

It lies in Airflow's plugins folder (deploy/airflow/plugins), which every Airflow process has on its import path.
"""

from __future__ import annotations

import json
import os
import socket
from datetime import timedelta

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import AssetAlias
from airflow.sdk.exceptions import AirflowException, AirflowFailException

# Every ingest that stores new bars adds an asset event to this alias (one asset per series); btcml_retrain is
# scheduled on it.
BARS = AssetAlias("btcml-bars")

# Exit statuses of btcml (src/core/error.cpp) that a retry cannot change: the task fails at once.
NO_RETRY = {2: "usage error", 3: "invalid input", 4: "not found", 5: "conflict", 7: "unauthorized"}
# Unavailable (a database or network peer that failed) and anything else (a crash, a kill) are retried.
RETRY = {1: "internal error", 6: "unavailable"}


def seconds_from_env(name: str, default: int) -> timedelta:
    return timedelta(seconds=int(os.environ.get(name, default)))


# Retries with exponential backoff and a time limit per attempt, for every task; training has its own limit.
DEFAULT_ARGS = {
    "retries": int(os.environ.get("BTCML_AIRFLOW_RETRIES", 3)),
    "retry_delay": seconds_from_env("BTCML_AIRFLOW_RETRY_DELAY", 30),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=10),
    "execution_timeout": seconds_from_env("BTCML_AIRFLOW_TASK_TIMEOUT", 600),
}
TRAIN_TIMEOUT = seconds_from_env("BTCML_AIRFLOW_TRAIN_TIMEOUT", 3600)


class BtcmlStep(BashOperator):
    """Runs one btcml command (the text only names environment variables: values come through `env`).

    Its JSON summary, the last line it prints, is the task's XCom. Exit statuses in NO_RETRY fail the task without
    retrying; any other failure is retried as the task's retries say.
    """

    def __init__(self, **kwargs):
        super().__init__(append_env=True, skip_on_exit_code=None, **kwargs)

    def execute(self, context):
        result = self.subprocess_hook.run_command(
            command=["bash", "-c", self.bash_command],
            env=self.get_env(context),
            output_encoding=self.output_encoding,
            cwd=self.cwd,
        )
        # stderr is merged into the output: on failure its last line is btcml's one-line reason.
        if result.exit_code in NO_RETRY:
            raise AirflowFailException(
                f"btcml exited {result.exit_code} ({NO_RETRY[result.exit_code]}), not retried: {result.output}"
            )
        if result.exit_code != 0:
            kind = RETRY.get(result.exit_code, "killed or crashed")
            raise AirflowException(f"btcml exited {result.exit_code} ({kind}): {result.output}")
        try:
            return json.loads(result.output)
        except ValueError as e:
            raise AirflowFailException(f"btcml's last line is not its JSON summary: {result.output!r}") from e


def btcml(command: str) -> str:
    """A bash command line running btcml (BTCML_BIN, else btcml on PATH) with `command`."""
    return 'exec "${BTCML_BIN:-btcml}" ' + command


def series_env(pipeline: dict) -> dict:
    """The environment of a series' tasks, from its entry in `btcml pipeline list --json`."""
    symbol, interval = pipeline["symbol"], pipeline["interval"]
    return {
        "BTCML_SYMBOL": symbol,
        "BTCML_INTERVAL": interval,
        "BTCML_TICK_PIPELINE": f"tick-{symbol}-{interval}",
        "BTCML_RETRAIN_PIPELINE": f"retrain-{symbol}-{interval}",
    }


def configured_series(listed: dict, kind: str) -> list[dict]:
    """The series with a `kind` pipeline (tick or retrain) in `btcml pipeline list --json`, as task environments."""
    return [series_env(p) for p in listed["pipelines"] if p["kind"] == kind]


def bars_asset_uri(symbol: str, interval: str) -> str:
    return f"btcml://bars/{symbol}/{interval}"


def worker_hostname() -> str:
    """`[core] hostname_callable` for several workers on one machine: BTCML_WORKER_NAME, else the host name."""
    return os.environ.get("BTCML_WORKER_NAME") or socket.getfqdn()
