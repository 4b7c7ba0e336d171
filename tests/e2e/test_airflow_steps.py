"""The btcml commands Airflow's tasks run: `btcml quality` (the data-quality gate) and `btcml pipeline step` (one
task of a pipeline, as the built-in scheduler runs it), with their JSON summaries and exit statuses (3: invalid input,
never retried; 2: usage), on both stores."""
from pathlib import Path

from test_pipelines import write_config

SYMBOL = "BTCUSD-SYNTH"


def bars_csv(path: Path, rows: int, bad_every: int = 0) -> Path:
    lines = ["time,open,high,low,close,volume"]
    for i in range(rows):
        price = -5 if bad_every and i % bad_every == 0 else 100 + i % 7
        lines.append(f"{1699999200 + 3600 * i},{price},{110 + i % 7},90,{100 + i % 5},1")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_quality_passes_clean_data_and_fails_too_many_rejects(btcml, tmp_path):
    btcml.json("ingest", bars_csv(tmp_path / "good.csv", 100), "--symbol", "GOOD", "--interval", "1h")
    out = btcml.json("quality", "--symbol", "GOOD", "--interval", "1h")
    assert out["passed"] is True and out["rows_read"] == 100 and out["rows_rejected"] == 0
    assert out["last_time"] == "2023-11-19T01:00:00Z"
    btcml.json("ingest", bars_csv(tmp_path / "bad.csv", 100, bad_every=10), "--symbol", "BAD", "--interval", "1h")
    proc = btcml.run("quality", "--symbol", "BAD", "--interval", "1h", "--json", check=False)
    assert proc.returncode == 3 and proc.stdout == ""
    assert "rejected 10 of 100 rows (10.0%), more than the 5.0% allowed" in proc.stderr
    assert btcml.json("quality", "--symbol", "BAD", "--interval", "1h", "--max-rejected", "0.1")["passed"]
    # The limit may also come from the environment (as Airflow's workers set it).
    proc = btcml.run("quality", "--symbol", "GOOD", "--interval", "1h", check=False,
                     env={"BTCML_QUALITY_MAX_REJECTED": "2"})
    assert proc.returncode == 2 and "not a fraction from 0 to 1" in proc.stderr


def test_quality_fails_a_stale_source_and_a_series_without_bars(btcml, tmp_path):
    btcml.json("ingest", bars_csv(tmp_path / "good.csv", 100), "--symbol", "GOOD", "--interval", "1h")
    proc = btcml.run("quality", "--symbol", "GOOD", "--interval", "1h", "--max-age", "6h", check=False)
    assert proc.returncode == 3
    assert "the source of GOOD 1h is stale: its newest bar (2023-11-19T01:00:00Z)" in proc.stderr
    proc = btcml.run("quality", "--symbol", "NONE", "--interval", "1h", check=False)
    assert proc.returncode == 3 and "no bars of NONE 1h are stored" in proc.stderr


def test_pipeline_step_runs_one_task_and_names_the_ones_there_are(btcml_sqlite):
    b = btcml_sqlite
    write_config(b, source="synthetic:7")
    ingested = b.json("pipeline", "step", f"tick-{SYMBOL}-1h", "ingest")
    assert ingested["rows_inserted"] > 0
    assert b.json("pipeline", "step", f"tick-{SYMBOL}-1h", "ingest")["rows_inserted"] == 0
    assert "no champion" in b.json("pipeline", "step", f"tick-{SYMBOL}-1h", "forecast")["skipped"]
    proc = b.run("pipeline", "step", f"retrain-{SYMBOL}-1h", "score", check=False)
    assert proc.returncode == 2 and "has no task 'score' to run alone" in proc.stderr
    proc = b.run("pipeline", "step", "retrain-NOPE-1h", "train", check=False)
    assert proc.returncode == 4 and "no pipeline 'retrain-NOPE-1h' is configured" in proc.stderr
