#!/usr/bin/env python3
"""Baselines for the ingest benchmark (see bench/README.md).

  ingest_baselines.py generate KAGGLE_CSV BARS_CSV [--rows N] [--seed S]
      Writes N one-minute bars in the current Kaggle layout (Timestamp,Open,High,Low,Close,Volume, float unix
      seconds like 1325412060.0, prices with 2 decimals, volumes with 8), and the same rows as btcml stores them
      (the columns of its `bars` table) for `psql \\copy`.
  ingest_baselines.py pandas KAGGLE_CSV [--repeat R]
      Times pandas.read_csv on the file with each engine available; prints one JSON object.
  ingest_baselines.py report PARSE_JSON PANDAS_JSON RUNS_JSONL
      Combines the measurements of run_ingest_bench.sh into one JSON object on stdout and a table on stderr.
"""
import argparse
import importlib.util
import json
import statistics
import sys
import time

import numpy as np
import pandas as pd

FIRST_TIME = 1325412060  # the first row of the Kaggle file, 2012-01-01T10:01:00Z
SYMBOL = "BTCUSD"
INTERVAL_S = 60


def generate(kaggle_path: str, bars_path: str, rows: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    # A geometric random walk with fat-ish tails, so that prices wander like BTC's over a few years.
    log_returns = rng.standard_t(df=4, size=rows) * 0.0008
    close = np.round(30000.0 * np.exp(np.cumsum(log_returns)), 2)
    open_ = np.round(np.concatenate(([30000.0], close[:-1])), 2)
    body_high = np.maximum(open_, close)
    body_low = np.minimum(open_, close)
    high = np.round(body_high * (1 + np.abs(rng.normal(0, 0.0004, rows))), 2)
    low = np.round(body_low * (1 - np.abs(rng.normal(0, 0.0004, rows))), 2)
    high = np.maximum(high, body_high)  # rounding must not break high >= max(open, close)
    low = np.minimum(low, body_low)
    volume = np.round(rng.lognormal(mean=0.5, sigma=1.2, size=rows), 8)
    times = FIRST_TIME + INTERVAL_S * np.arange(rows, dtype=np.int64)

    columns = [open_, high, low, close]
    with open(kaggle_path, "w") as kaggle, open(bars_path, "w") as bars:
        kaggle.write("Timestamp,Open,High,Low,Close,Volume\n")
        bars.write("symbol,interval_s,open_time,open,high,low,close,volume,complete,source\n")
        step = 100_000
        for start in range(0, rows, step):
            end = min(rows, start + step)
            prices = [[f"{v:.2f}" for v in c[start:end]] for c in columns]
            vols = [f"{v:.8f}" for v in volume[start:end]]
            ts = times[start:end].tolist()
            kaggle.writelines(
                f"{t}.0,{o},{h},{l},{c},{v}\n" for t, o, h, l, c, v in zip(ts, *prices, vols))
            bars.writelines(
                f"{SYMBOL},{INTERVAL_S},{t},{o},{h},{l},{c},{v},t,{kaggle_path}\n"
                for t, o, h, l, c, v in zip(ts, *prices, vols))


def time_pandas(path: str, repeat: int) -> dict:
    engines = ["c"] + (["pyarrow"] if importlib.util.find_spec("pyarrow") else [])
    out = {"pandas_version": pd.__version__, "engines": {}}
    for engine in engines:
        seconds = []
        rows = 0
        for _ in range(repeat):
            started = time.perf_counter()
            frame = pd.read_csv(path, engine=engine)
            seconds.append(time.perf_counter() - started)
            rows = len(frame)
            del frame
        best = min(seconds)
        out["engines"][engine] = {"rows": rows, "seconds": seconds, "best_seconds": best,
                                  "median_seconds": statistics.median(seconds), "rows_per_s": rows / best}
    return out


def summarise(runs: list, kind: str) -> dict:
    mine = [r for r in runs if r["kind"] == kind]
    seconds = [r["seconds"] for r in mine]
    best = min(seconds)
    out = {"rows": mine[0]["rows"], "seconds": seconds, "best_seconds": best,
           "median_seconds": statistics.median(seconds), "rows_per_s": mine[0]["rows"] / best}
    if all("peak_rss_kb" in r for r in mine):
        out["peak_rss_kb"] = max(r["peak_rss_kb"] for r in mine)
    return out


def report(parse_path: str, pandas_path: str, runs_path: str) -> dict:
    with open(parse_path) as f:
        parse = json.load(f)
    with open(pandas_path) as f:
        pandas_result = json.load(f)
    with open(runs_path) as f:
        runs = [json.loads(line) for line in f if line.strip()]
    pandas_c = pandas_result["engines"]["c"]
    sqlite = summarise(runs, "btcml_sqlite")
    postgres = summarise(runs, "btcml_postgres")
    psql = summarise(runs, "psql_copy")
    out = {
        "rows": parse["rows"],
        "btcml_parse": parse,
        "pandas_read_csv": pandas_result,
        "btcml_ingest_sqlite": sqlite,
        "btcml_ingest_postgres": postgres,
        "psql_copy": psql,
        "ratios": {
            "parse_vs_pandas_c": parse["rows_per_s"] / pandas_c["rows_per_s"],
            "parse_vs_pandas_c_target": 10.0,
            "postgres_vs_psql_copy": postgres["rows_per_s"] / psql["rows_per_s"],
            "postgres_vs_psql_copy_target": 0.8,
        },
    }
    if "pyarrow" in pandas_result["engines"]:
        out["ratios"]["parse_vs_pandas_pyarrow"] = parse["rows_per_s"] / pandas_result["engines"]["pyarrow"]["rows_per_s"]
    return out


def print_table(result: dict) -> None:
    rows = [("btcml parse (CsvFile, no store)", result["btcml_parse"])]
    rows += [(f"pandas read_csv engine={name}", r) for name, r in result["pandas_read_csv"]["engines"].items()]
    rows += [("btcml ingest -> SQLite", result["btcml_ingest_sqlite"]),
             ("btcml ingest -> PostgreSQL", result["btcml_ingest_postgres"]),
             ("psql \\copy -> PostgreSQL", result["psql_copy"])]
    err = sys.stderr
    print(f"{'measurement':<36} {'best s':>8} {'median s':>9} {'rows/s':>12} {'peak RSS':>10}", file=err)
    for name, r in rows:
        rss = f"{r['peak_rss_kb'] / 1024:.0f} MiB" if "peak_rss_kb" in r else ""
        print(f"{name:<36} {r['best_seconds']:>8.3f} {r['median_seconds']:>9.3f} {r['rows_per_s']:>12,.0f} {rss:>10}",
              file=err)
    ratios = result["ratios"]
    print(f"parse vs pandas (c): {ratios['parse_vs_pandas_c']:.2f}x (target >= 10x); "
          f"PostgreSQL load vs psql \\copy: {ratios['postgres_vs_psql_copy']:.2f}x (target >= 0.8x)", file=err)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate")
    gen.add_argument("kaggle_csv")
    gen.add_argument("bars_csv")
    gen.add_argument("--rows", type=int, default=2_000_000)
    gen.add_argument("--seed", type=int, default=42)
    pan = sub.add_parser("pandas")
    pan.add_argument("kaggle_csv")
    pan.add_argument("--repeat", type=int, default=3)
    rep = sub.add_parser("report")
    rep.add_argument("parse_json")
    rep.add_argument("pandas_json")
    rep.add_argument("runs_jsonl")
    args = parser.parse_args()
    if args.command == "generate":
        generate(args.kaggle_csv, args.bars_csv, args.rows, args.seed)
    elif args.command == "pandas":
        json.dump(time_pandas(args.kaggle_csv, args.repeat), sys.stdout)
        print()
    else:
        result = report(args.parse_json, args.pandas_json, args.runs_jsonl)
        json.dump(result, sys.stdout)
        print()
        print_table(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
