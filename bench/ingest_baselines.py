#!/usr/bin/env python3
"""Baselines for the ingest benchmark (see bench/README.md).

  ingest_baselines.py generate KAGGLE_CSV BARS_CSV [--rows N] [--seed S]
      Writes N one-minute bars in the current Kaggle layout (Timestamp,Open,High,Low,Close,Volume, float unix
      seconds like 1325412060.0, prices with 2 decimals, volumes with 8), and the same rows as btcml stores them
      (the columns of its `bars` table) for `psql \\copy`.
  ingest_baselines.py pandas KAGGLE_CSV [--repeat R]
      Times pandas.read_csv on the file with each engine available; prints one JSON object.
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
    args = parser.parse_args()
    if args.command == "generate":
        generate(args.kaggle_csv, args.bars_csv, args.rows, args.seed)
    else:
        json.dump(time_pandas(args.kaggle_csv, args.repeat), sys.stdout)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
