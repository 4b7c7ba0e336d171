#!/usr/bin/env python3
"""Baselines for the ingest benchmark (see bench/README.md).

  ingest_baselines.py generate KAGGLE_CSV BARS_CSV [--rows N] [--seed S]
      Writes N one-minute bars in the current Kaggle layout (Timestamp,Open,High,Low,Close,Volume, float unix
      seconds like 1325412060.0, prices with 2 decimals, volumes with 8), and the same rows as btcml stores them
      (the columns of its `bars` table) for `psql \\copy`.
  ingest_baselines.py readers KAGGLE_CSV [--threads T] [--repeat R]
      Times pandas.read_csv (C and pyarrow engines), pyarrow.csv, polars and DuckDB reading the whole file with T
      threads (pandas' C engine always has one); prints one JSON object. Needs bench/requirements-ingest.txt.
  ingest_baselines.py report --parse P1 [P2 …] --readers R1 [R2 …] [--runs RUNS_JSONL]
      Combines the measurements of run_ingest_bench.sh (bench_ingest and `readers` per thread count, the load
      timings) into one JSON object on stdout and a table on stderr, with btcml against the fastest reader.
"""
import argparse
import importlib.util
import json
import os
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


# The readers compared with btcml's parser, each reading the whole file into memory, every column parsed:
# pandas.read_csv with its C engine (one thread, whatever --threads says) and with engine="pyarrow", pyarrow.csv,
# polars.read_csv, and DuckDB's read_csv into an in-memory table (its own storage; nothing converted to Python).
READERS = ["pandas_c", "pandas_pyarrow", "pyarrow", "polars", "duckdb"]
MODULES = ["pandas", "pyarrow", "polars", "duckdb"]


def time_readers(path: str, threads: int, repeat: int) -> dict:
    # polars sizes its thread pool once, from this variable, when it is first imported.
    os.environ["POLARS_MAX_THREADS"] = str(threads)
    missing = [m for m in MODULES if importlib.util.find_spec(m) is None]
    if missing:
        sys.exit(f"ingest_baselines.py: {', '.join(missing)} missing in {sys.executable}; "
                 "install bench/requirements-ingest.txt (bench/run_ingest_bench.sh does)")
    import duckdb
    import polars as pl
    import pyarrow as pa
    import pyarrow.csv as pacsv

    pa.set_cpu_count(threads)
    pa.set_io_thread_count(threads)
    if pl.thread_pool_size() != threads:
        sys.exit(f"ingest_baselines.py: polars runs {pl.thread_pool_size()} threads, not {threads}")
    con = duckdb.connect(config={"threads": threads})
    quoted = path.replace("'", "''")

    def duckdb_read() -> int:
        con.execute(f"CREATE OR REPLACE TEMP TABLE bars AS SELECT * FROM read_csv('{quoted}')")
        return con.execute("SELECT count(*) FROM bars").fetchone()[0]

    read = {
        "pandas_c": lambda: len(pd.read_csv(path, engine="c")),
        "pandas_pyarrow": lambda: len(pd.read_csv(path, engine="pyarrow")),
        "pyarrow": lambda: pacsv.read_csv(path, read_options=pacsv.ReadOptions(use_threads=threads > 1)).num_rows,
        "polars": lambda: pl.read_csv(path).height,
        "duckdb": duckdb_read,
    }
    out = {"threads": threads, "versions": {m: importlib.import_module(m).__version__ for m in MODULES},
           "readers": {}}
    for name in READERS:
        seconds = []
        rows = 0
        for _ in range(repeat):
            started = time.perf_counter()
            rows = read[name]()
            seconds.append(time.perf_counter() - started)
        best = min(seconds)
        out["readers"][name] = {"rows": rows, "seconds": seconds, "best_seconds": best,
                                "median_seconds": statistics.median(seconds), "rows_per_s": rows / best}
    con.close()
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


def report(parse_paths: list, readers_paths: list, runs_path: str | None) -> dict:
    parsing = []
    for parse_path, readers_path in zip(parse_paths, readers_paths):
        with open(parse_path) as f:
            parse = json.load(f)
        with open(readers_path) as f:
            readers = json.load(f)
        if parse["threads"] != readers["threads"] or parse["rows"] != readers["readers"]["pandas_c"]["rows"]:
            sys.exit(f"ingest_baselines.py: {parse_path} and {readers_path} differ in threads or rows")
        fastest = min(readers["readers"], key=lambda name: readers["readers"][name]["best_seconds"])
        best = readers["readers"][fastest]
        parsing.append({"threads": parse["threads"], "btcml_parse": parse, **readers, "fastest": fastest,
                        "vs_fastest": parse["rows_per_s"] / best["rows_per_s"],
                        "vs_fastest_median": best["median_seconds"] / parse["median_seconds"], "target": 2.0})
    out = {"rows": parsing[0]["btcml_parse"]["rows"], "parsing": parsing}
    if runs_path:
        with open(runs_path) as f:
            runs = [json.loads(line) for line in f if line.strip()]
        out.update(btcml_ingest_sqlite=summarise(runs, "btcml_sqlite"),
                   btcml_ingest_postgres=summarise(runs, "btcml_postgres"), psql_copy=summarise(runs, "psql_copy"))
        out["postgres_vs_psql_copy"] = out["btcml_ingest_postgres"]["rows_per_s"] / out["psql_copy"]["rows_per_s"]
        out["postgres_vs_psql_copy_target"] = 0.8
    return out


def print_table(result: dict) -> None:
    err = sys.stderr

    def line(name: str, r: dict) -> None:
        rss = f"{r['peak_rss_kb'] / 1024:.0f} MiB" if "peak_rss_kb" in r else ""
        print(f"{name:<40} {r['best_seconds']:>8.3f} {r['median_seconds']:>9.3f} {r['rows_per_s']:>12,.0f} {rss:>10}",
              file=err)

    print(f"{'measurement':<40} {'best s':>8} {'median s':>9} {'rows/s':>12} {'peak RSS':>10}", file=err)
    for p in result["parsing"]:
        t = p["threads"]
        line(f"btcml parse (CsvFile), {t} thread(s)", p["btcml_parse"])
        for name, r in p["readers"].items():
            line(f"{name} ({p['versions'].get(name.split('_')[0], '')}), {1 if name == 'pandas_c' else t} thread(s)", r)
    for key, name in [("btcml_ingest_sqlite", "btcml ingest -> SQLite"),
                      ("btcml_ingest_postgres", "btcml ingest -> PostgreSQL"), ("psql_copy", "psql \\copy -> PostgreSQL")]:
        if key in result:
            line(name, result[key])
    for p in result["parsing"]:
        print(f"{p['threads']} thread(s): btcml parse vs the fastest reader ({p['fastest']}): {p['vs_fastest']:.2f}x "
              f"best vs best, {p['vs_fastest_median']:.2f}x median vs median (target >= 2x)", file=err)
    if "postgres_vs_psql_copy" in result:
        print(f"PostgreSQL load vs psql \\copy: {result['postgres_vs_psql_copy']:.2f}x (target >= 0.8x)", file=err)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate")
    gen.add_argument("kaggle_csv")
    gen.add_argument("bars_csv")
    gen.add_argument("--rows", type=int, default=2_000_000)
    gen.add_argument("--seed", type=int, default=42)
    rd = sub.add_parser("readers")
    rd.add_argument("kaggle_csv")
    rd.add_argument("--threads", type=int, default=1)
    rd.add_argument("--repeat", type=int, default=3)
    rep = sub.add_parser("report")
    rep.add_argument("--parse", nargs="+", required=True, help="bench_ingest outputs, one per thread count")
    rep.add_argument("--readers", nargs="+", required=True, help="`readers` outputs, in the same order")
    rep.add_argument("--runs", help="the load timings of run_ingest_bench.sh (JSON lines)")
    args = parser.parse_args()
    if args.command == "generate":
        generate(args.kaggle_csv, args.bars_csv, args.rows, args.seed)
    elif args.command == "readers":
        json.dump(time_readers(args.kaggle_csv, args.threads, args.repeat), sys.stdout)
        print()
    else:
        if len(args.parse) != len(args.readers):
            parser.error("--parse and --readers need one file per thread count each")
        result = report(args.parse, args.readers, args.runs)
        json.dump(result, sys.stdout)
        print()
        print_table(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
