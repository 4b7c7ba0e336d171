"""btcml_retrain: per series, ingest -> data-quality gate -> train -> evaluate -> promote -> reload.

Runs on a schedule (BTCML_AIRFLOW_RETRAIN_CRON, daily by default), when btcml_ingest stores new bars of a series (the
btcml-bars asset alias: only those series), and on demand (conf `reason`, optional `series`: [{"symbol", "interval"}],
e.g. relayed by `btcml serve` from a Prometheus alert). The series are those with a retrain pipeline in btcml's config
(`btcml pipeline list --json`), one mapped task group each. See docs/airflow.md.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, Param, dag, task, task_group
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from btcml_steps import BARS, DEFAULT_ARGS, TRAIN_TIMEOUT, BtcmlStep, btcml, configured_series

CRON = os.environ.get("BTCML_AIRFLOW_RETRAIN_CRON", "0 3 * * *")


@dag(
    dag_id="btcml_retrain",
    # No start date: the first scheduled run is the next cron time, not one at once when the DAG is deployed.
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable(CRON, timezone="UTC"), assets=BARS),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    params={
        "reason": Param(None, type=["null", "string"], description="Why the retrain is wanted"),
        "series": Param(
            None,
            type=["null", "array"],
            description='Series to retrain, e.g. [{"symbol": "BTCUSD", "interval": "1h"}] (default: all)',
        ),
    },
    tags=["btcml"],
    doc_md=__doc__,
)
def btcml_retrain():
    listed = BtcmlStep(task_id="configured", bash_command=btcml("pipeline list --json"))

    @task
    def select_series(listed: dict, params=None, triggering_asset_events=None) -> list[dict]:
        """The configured series this run retrains: conf.series, else those with new bars, else all."""
        configured = configured_series(listed, "retrain")
        wanted = params.get("series")
        if not wanted and triggering_asset_events:
            wanted = [e.extra for events in triggering_asset_events.values() for e in events if e.extra]
        if not wanted:
            return configured
        keys = {(s.get("symbol"), s.get("interval")) for s in wanted}
        chosen = [s for s in configured if (s["BTCML_SYMBOL"], s["BTCML_INTERVAL"]) in keys]
        missing = keys - {(s["BTCML_SYMBOL"], s["BTCML_INTERVAL"]) for s in chosen}
        if missing:
            # A series without a retrain pipeline cannot be retrained: retrying does not help.
            raise AirflowFailException(
                f"not configured in btcml's series: section: {sorted(missing)}; configured: "
                f"{[(s['BTCML_SYMBOL'], s['BTCML_INTERVAL']) for s in configured]}"
            )
        return chosen

    @task
    def gate(series: dict, trained: dict) -> dict:
        """The promotion gate's verdict (decided when the version was registered), and what evaluate needs."""
        version, promoted = trained["model_version"], trained["promoted"]
        print(f"model version {version}: promoted={promoted}; gate {json.dumps(trained['gate'])}")
        test = trained["splits"]["test"]
        return {
            **series,
            "BTCML_MODEL_VERSION": str(trained["model_version"]),
            "BTCML_PROMOTED": "true" if trained["promoted"] else "false",
            "BTCML_EVAL_FROM": test["from"],
            "BTCML_EVAL_TO": test["to"],
        }

    @task
    def promote(gated: dict) -> dict:
        """Promotes only what the gate passed: the registry made it champion then; otherwise the branch ends here."""
        if gated["BTCML_PROMOTED"] != "true":
            version = gated["BTCML_MODEL_VERSION"]
            raise AirflowSkipException(f"the gate kept the champion; version {version} stays challenger")
        return {"model_version": int(gated["BTCML_MODEL_VERSION"]), "champion": True}

    @task
    def reload(series: dict, promoted: dict) -> dict:
        """Waits until btcml serve (BTCML_SERVE_URL) serves the new champion; it reloads it by itself."""
        url = os.environ.get("BTCML_SERVE_URL")
        if not url:
            raise AirflowSkipException("BTCML_SERVE_URL is not set: no server to wait for")
        name = f"btcml-{series['BTCML_SYMBOL']}-{series['BTCML_INTERVAL']}"
        version = promoted["model_version"]
        while True:  # bounded by the task's execution_timeout
            with urllib.request.urlopen(url.rstrip("/") + "/api/v1/models", timeout=10) as response:
                models = json.load(response)["registered_models"]
            serving = next((m.get("serving") for m in models if m["name"] == name), None)
            if serving is not None and serving >= version:
                return {"registered_model": name, "serving": serving}
            time.sleep(1)

    @task_group
    def retrain_series(series):
        ingest = BtcmlStep(
            task_id="ingest", env=series, bash_command=btcml('pipeline step "$BTCML_TICK_PIPELINE" ingest --json')
        )
        quality = BtcmlStep(
            task_id="quality",
            env=series,
            bash_command=btcml('quality --symbol "$BTCML_SYMBOL" --interval "$BTCML_INTERVAL" --json'),
        )
        train = BtcmlStep(
            task_id="train",
            env=series,
            execution_timeout=TRAIN_TIMEOUT,
            bash_command=btcml('pipeline step "$BTCML_RETRAIN_PIPELINE" train --json'),
        )
        gated = gate(series, train.output)
        evaluate = BtcmlStep(
            task_id="evaluate",
            env=gated,
            execution_timeout=TRAIN_TIMEOUT,
            bash_command=btcml(
                'evaluate --model "$BTCML_MODEL_VERSION" --from "$BTCML_EVAL_FROM" --to "$BTCML_EVAL_TO" --json'
            ),
        )
        promoted = promote(gated)
        ingest >> quality >> train
        evaluate >> promoted
        reload(series, promoted)

    retrain_series.expand(series=select_series(listed.output))


btcml_retrain()
