"""btcml_ingest: every bar interval, per configured series, ingest -> forecast -> score (btcml's tick pipeline).

An ingest that stores new bars adds an asset event for its series (btcml://bars/SYMBOL/INTERVAL, through the
btcml-bars alias), which schedules btcml_retrain for that series. The interval is BTCML_AIRFLOW_TICK_EVERY seconds
(default 3600). See docs/airflow.md.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

from airflow.sdk import Asset, DeltaTriggerTimetable, dag, task, task_group
from btcml_steps import BARS, DEFAULT_ARGS, BtcmlStep, bars_asset_uri, btcml, configured_series

EVERY = timedelta(seconds=int(os.environ.get("BTCML_AIRFLOW_TICK_EVERY", 3600)))


@dag(
    dag_id="btcml_ingest",
    schedule=DeltaTriggerTimetable(EVERY),
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["btcml"],
    doc_md=__doc__,
)
def btcml_ingest():
    listed = BtcmlStep(task_id="configured", bash_command=btcml("pipeline list --json"))

    @task
    def select_series(listed: dict) -> list[dict]:
        return configured_series(listed, "tick")

    @task(outlets=[BARS])
    def announce(series: dict, ingested: dict, *, outlet_events=None) -> int:
        """Adds the series' asset event when the ingest stored new bars."""
        inserted = ingested.get("rows_inserted", 0)
        if inserted > 0:
            symbol, interval = series["BTCML_SYMBOL"], series["BTCML_INTERVAL"]
            outlet_events[BARS].add(
                Asset(bars_asset_uri(symbol, interval)),
                extra={"symbol": symbol, "interval": interval, "rows_inserted": inserted},
            )
        return inserted

    @task_group
    def tick_series(series):
        ingest = BtcmlStep(
            task_id="ingest", env=series, bash_command=btcml('pipeline step "$BTCML_TICK_PIPELINE" ingest --json')
        )
        forecast = BtcmlStep(
            task_id="forecast", env=series, bash_command=btcml('pipeline step "$BTCML_TICK_PIPELINE" forecast --json')
        )
        score = BtcmlStep(
            task_id="score", env=series, bash_command=btcml('pipeline step "$BTCML_TICK_PIPELINE" score --json')
        )
        ingest >> forecast >> score
        announce(series, ingest.output)

    tick_series.expand(series=select_series(listed.output))


btcml_ingest()
