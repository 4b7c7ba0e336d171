"""Ingest through the real binary: every real file layout, bad rows, hostile files, both backends."""
import gzip
import json
import os
import zipfile

import pytest

from conftest import shared_file

# file, format, interval, rows, first, last, missing bars (from ../shared/data/btc/SOURCES.md)
REAL_FILES = [
    ("binance_btcusdt_1h_2017-08-17_2023-12-20.csv", "generic", "1h", 55597,
     "2017-08-17T04:00:00Z", "2023-12-20T16:00:00Z", 0),
    ("kraken_xbtusd_60_2013-10-06_2023-01-07.csv", "kraken", "1h", 70253,
     "2013-10-06T21:00:00Z", "2023-01-07T09:00:00Z", 10856),
    ("cryptodatadownload_bitstamp_btcusd_1h_2018-05-15_2022-08-20.csv", "cryptodatadownload", "1h", 37387,
     "2018-05-15T06:00:00Z", "2022-08-20T00:00:00Z", 0),
    ("yahoo_btc-usd_1d_2014-09-17_2023-12-31.csv", "yahoo", "1d", 3393,
     "2014-09-17T00:00:00Z", "2023-12-31T00:00:00Z", 0),
    ("kaggle_btcusd_1-min_data_2012-01-01_2012-01-08.csv", "kaggle", "1m", 9999,
     "2012-01-01T10:01:00Z", "2012-01-08T08:39:00Z", 0),
    ("binanceus_btcusd_1m_2023-03-01_2023-03-21.csv", "generic", "1m", 30240,
     "2023-03-01T00:00:00Z", "2023-03-21T23:59:00Z", 0),
]


@pytest.mark.parametrize("name,fmt,interval,rows,first,last,missing", REAL_FILES, ids=[f[0].split("_")[0] for f in REAL_FILES])
def test_real_file_ingests_exactly_and_idempotently(btcml, name, fmt, interval, rows, first, last, missing):
    path = shared_file(name)
    s = btcml.json("ingest", path)
    assert s["format"] == fmt
    assert s["interval"] == interval
    assert s["rows_read"] == rows
    assert s["rows_inserted"] + s["rows_rejected"] == rows
    assert s["rows_rejected"] == 0, s["rejected_reasons"]
    assert s["rows_duplicate"] == 0
    assert (s["first_time"], s["last_time"]) == (first, last)
    assert s["missing_bars"] == missing
    again = btcml.json("ingest", path)
    assert again["rows_inserted"] == 0
    assert again["rows_duplicate"] == rows
    series = btcml.json("series")["series"]
    assert [(x["interval"], x["bars"], x["first_time"], x["last_time"]) for x in series] == [(interval, rows, first, last)]


def test_sqlite_and_postgresql_store_identical_bars(tmp_path, pg_url):
    from conftest import Btcml
    lite = Btcml(tmp_path / "a", None)
    pg = Btcml(tmp_path / "b", pg_url)
    path = shared_file("cryptodatadownload_bitstamp_btcusd_1h_2018-05-15_2022-08-20.csv")
    assert lite.json("ingest", path)["rows_inserted"] == pg.json("ingest", path)["rows_inserted"] == 37387
    a = lite.run("bars", "--interval", "1h").stdout
    b = pg.run("bars", "--interval", "1h").stdout
    assert a == b
    assert a.count("\n") == 37388


BAD_ROWS = [
    # (row, reason)
    ("2024-01-01T05:00:00Z,1,2,0.5", "bad_field_count"),
    ("not-a-time,100,110,90,105,1", "unparsable_time"),
    ("2024-01-01T06:00:00Z,abc,110,90,105,1", "unparsable_number"),
    ("2024-01-01T07:00:00Z,NaN,NaN,NaN,NaN,NaN", "missing_price"),
    ("2024-01-01T08:00:00Z,,110,90,105,1", "missing_price"),
    ("2024-01-01T09:00:00Z,0,110,90,105,1", "non_positive_price"),
    ("2024-01-01T10:00:00Z,-5,110,90,105,1", "non_positive_price"),
    ("2024-01-01T11:00:00Z,100,101,90,105,1", "high_below_open_close"),
    ("2024-01-01T12:00:00Z,100,110,101,105,1", "low_above_open_close"),
    ("2024-01-01T13:00:00Z,100,110,90,105,-1", "negative_volume"),
    ("2024-01-01T01:00:00Z,100,110,90,105,1", "duplicate_time"),
    ("2024-01-01T14:30:00Z,100,110,90,105,1", "misaligned_time"),
    ("2099-01-01T00:00:00Z,100,110,90,105,1", "future_time"),
]


def test_every_bad_row_is_rejected_with_its_reason_and_good_rows_kept(btcml, tmp_path):
    good = [f"2024-01-01T{h:02d}:00:00Z,100,110,90,105,{h}" for h in range(0, 5)]
    good += [f"2024-01-01T{h:02d}:00:00Z,100,110,90,105,{h}" for h in range(15, 20)]
    lines = ["time,open,high,low,close,volume"] + good[:5] + [row for row, _ in BAD_ROWS] + good[5:]
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(lines) + "\n")
    s = btcml.json("ingest", path, "--interval", "1h")
    assert s["rows_read"] == len(good) + len(BAD_ROWS)
    assert s["rows_inserted"] == len(good)
    assert s["rows_rejected"] == len(BAD_ROWS)
    expected = {}
    for _, reason in BAD_ROWS:
        expected[reason] = expected.get(reason, 0) + 1
    assert s["rejected_reasons"] == expected
    # 05:00 to 14:00 are absent (the bad rows), so 10 bars are missing between 00:00 and 19:00.
    assert s["missing_bars"] == 10
    stored = btcml.run("bars", "--interval", "1h").stdout.splitlines()[1:]
    assert [line.split(",")[0] for line in stored] == [g.split(",")[0] for g in good]


def test_rejected_rows_are_stored_with_line_numbers(btcml_sqlite, tmp_path):
    import sqlite3
    path = tmp_path / "bad.csv"
    path.write_text("time,open,high,low,close\n2024-01-01T00:00:00Z,1,1,1,1\n2024-01-01T01:00:00Z,1,0.5,1,1\n"
                    "2024-01-01T02:00:00Z,1,1,1,1\n")
    s = btcml_sqlite.json("ingest", path)
    db = sqlite3.connect(btcml_sqlite.home / "btcml.db")
    rows = db.execute("SELECT line_number, raw, reason FROM rejected_rows WHERE run_id = ?", (s["run_id"],)).fetchall()
    assert rows == [(3, "2024-01-01T01:00:00Z,1,0.5,1,1", "high_below_open_close")]
    run = db.execute("SELECT status, rows_inserted, rows_rejected FROM ingest_runs WHERE id = ?", (s["run_id"],)).fetchone()
    assert run == ("succeeded", 2, 1)


def test_old_kaggle_layout_nan_minutes_are_rejected(btcml, tmp_path):
    path = tmp_path / "bitstampUSD_1-min_data_2012-01-01_to_2021-03-31.csv"
    rows = ["Timestamp,Open,High,Low,Close,Volume_(BTC),Volume_(Currency),Weighted_Price",
            "1325317920,4.39,4.39,4.39,4.39,0.45558087,2.0000000193,4.39"]
    rows += [f"{1325317920 + 60 * i},NaN,NaN,NaN,NaN,NaN,NaN,NaN" for i in range(1, 50)]
    rows += ["1325320920,4.39,4.39,4.39,4.39,48,210.72,4.39"]
    path.write_text("\n".join(rows) + "\n")
    s = btcml.json("ingest", path)
    assert s["format"] == "kaggle-legacy"
    assert s["interval"] == "1m"
    assert s["rows_inserted"] == 2
    assert s["rejected_reasons"] == {"missing_price": 49}
    assert s["missing_bars"] == 49


def test_gzip_and_zip_inputs(btcml, tmp_path):
    src = shared_file("kaggle_btcusd_1-min_data_2012-01-01_2012-01-08.csv")
    gz = tmp_path / "kaggle.csv.gz"
    gz.write_bytes(gzip.compress(src.read_bytes()))
    zp = tmp_path / "archive.zip"
    with zipfile.ZipFile(zp, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("README.txt.md", "not data")
        z.writestr("btcusd_1-min_data.csv", src.read_bytes())
    s = btcml.json("ingest", gz)
    assert s["format"] == "kaggle (gzip)" and s["rows_inserted"] == 9999
    s = btcml.json("ingest", zp)
    assert s["format"] == "kaggle (zip:btcusd_1-min_data.csv)"
    assert s["rows_inserted"] == 0 and s["rows_duplicate"] == 9999


def test_resample_minutes_to_hours_marks_incomplete_buckets(btcml, tmp_path):
    src = shared_file("binanceus_btcusd_1m_2023-03-01_2023-03-21.csv")
    s = btcml.json("ingest", src, "--resample", "1h")
    assert s["interval"] == "1h" and s["resampled_from"] == "1m"
    assert s["rows_inserted"] == 21 * 24
    assert s["incomplete_buckets"] == 0
    bars = btcml.json("bars", "--interval", "1h", "--limit", "1")["bars"]
    assert bars[0]["time"] == "2023-03-01T00:00:00Z"
    # Kaggle's first minute is 10:01, so its first hour lacks a minute.
    k = btcml.json("ingest", shared_file("kaggle_btcusd_1-min_data_2012-01-01_2012-01-08.csv"), "--resample", "1h",
                   "--symbol", "KAGGLE")
    assert k["incomplete_buckets"] >= 1
    first = btcml.json("bars", "--symbol", "KAGGLE", "--interval", "1h", "--limit", "1")["bars"][0]
    assert first["time"] == "2012-01-01T10:00:00Z" and first["complete"] is False


def test_resample_matches_hand_aggregation(btcml_sqlite, tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("time,open,high,low,close,volume\n"
                    "2024-01-01T00:00:00Z,10,12,9,11,1\n2024-01-01T00:30:00Z,11,15,10,14,2\n"
                    "2024-01-01T01:00:00Z,14,14,13,13,3\n")
    s = btcml_sqlite.json("ingest", path, "--resample", "1h")
    assert s["incomplete_buckets"] == 1
    bars = btcml_sqlite.json("bars", "--interval", "1h")["bars"]
    assert [(b["open"], b["high"], b["low"], b["close"], b["volume"], b["complete"]) for b in bars] == [
        (10, 15, 9, 14, 3, True), (14, 14, 13, 13, 3, False)]


def test_overlapping_files_merge(btcml_sqlite, tmp_path):
    a = tmp_path / "a.csv"
    b = tmp_path / "b.csv"
    a.write_text("time,open,high,low,close\n" + "".join(f"2024-01-01T{h:02d}:00:00Z,1,1,1,1\n" for h in range(0, 12)))
    b.write_text("time,open,high,low,close\n" + "".join(f"2024-01-01T{h:02d}:00:00Z,2,2,2,2\n" for h in range(6, 18)))
    assert btcml_sqlite.json("ingest", a)["rows_inserted"] == 12
    s = btcml_sqlite.json("ingest", b)
    assert (s["rows_inserted"], s["rows_duplicate"]) == (6, 6)
    assert btcml_sqlite.json("series")["series"][0]["bars"] == 18


def test_columns_and_format_overrides(btcml_sqlite, tmp_path):
    path = tmp_path / "odd.csv"
    path.write_text("when;x,o,hi,lo,last,qty\n2024-01-01 00:00,1,2,0.5,1.5,3\n2024-01-01 01:00,1,2,0.5,1.5,3\n")
    r = btcml_sqlite.run("ingest", path, check=False)
    assert r.returncode != 0 and "--columns" in r.stderr
    s = btcml_sqlite.json("ingest", path, "--columns", "time=1,open=o,high=hi,low=lo,close=last,volume=qty")
    assert s["rows_inserted"] == 2


def test_from_to_filter(btcml_sqlite):
    s = btcml_sqlite.json("ingest", shared_file("yahoo_btc-usd_1d_2014-09-17_2023-12-31.csv"),
                          "--from", "2020-01-01", "--to", "2020-12-31")
    assert (s["rows_inserted"], s["first_time"], s["last_time"]) == (366, "2020-01-01T00:00:00Z", "2020-12-31T00:00:00Z")


@pytest.mark.parametrize("content,message", [
    (b"", "empty"),
    (bytes(range(256)) * 64, "binary"),
    (b"\x7fELF\x02\x01\x01\x00" + os.urandom(4096), "binary"),
    (b"PK\x03\x04garbage that is not a zip", "not a valid zip"),
    (b"\x1f\x8b\x08\x00garbage", "gzip"),
    (b"x" * (17 << 20), "longer than"),
    (b"a,b,c\n1,2,3\n", "--columns"),
], ids=["empty", "all-bytes", "elf", "bad-zip", "bad-gzip", "17MB-line", "unknown-header"])
def test_hostile_files_fail_cleanly_and_store_nothing(btcml, tmp_path, content, message):
    path = tmp_path / "hostile.csv"
    path.write_bytes(content)
    r = btcml.run("ingest", path, check=False)
    assert r.returncode != 0
    assert message in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert btcml.json("series")["series"] == []


def test_missing_file_and_bad_flags(btcml_sqlite, tmp_path):
    r = btcml_sqlite.run("ingest", tmp_path / "nope.csv", check=False)
    assert r.returncode == 4 and "no such file" in r.stderr
    r = btcml_sqlite.run("ingest", "synthetic", "--interval", "7x", check=False)
    assert r.returncode == 2 and "--interval" in r.stderr
    r = btcml_sqlite.run("ingest", "synthetic", "--from", "yesterday", check=False)
    assert r.returncode == 2 and "--from" in r.stderr


def test_failed_run_is_recorded_and_leaves_store_unchanged(btcml_sqlite, tmp_path):
    import sqlite3
    good = tmp_path / "good.csv"
    good.write_text("time,open,high,low,close\n2024-01-01T00:00:00Z,1,1,1,1\n2024-01-01T01:00:00Z,1,1,1,1\n")
    btcml_sqlite.json("ingest", good)
    # A corrupt gzip member after valid data: the run fails midway, after rows were read.
    body = "time,open,high,low,close\n" + "".join(f"2024-02-01T{h:02d}:00:00Z,1,1,1,1\n" for h in range(24))
    data = gzip.compress(body.encode() * 2000)
    bad = tmp_path / "broken.csv.gz"
    bad.write_bytes(data[: len(data) // 2])
    r = btcml_sqlite.run("ingest", bad, "--interval", "1h", check=False)
    assert r.returncode != 0
    db = sqlite3.connect(btcml_sqlite.home / "btcml.db")
    assert db.execute("SELECT COUNT(*) FROM bars").fetchone()[0] == 2
    status, error = db.execute("SELECT status, error FROM ingest_runs ORDER BY id DESC LIMIT 1").fetchone()
    assert status == "failed" and error


def test_synthetic_is_deterministic_and_labelled(btcml_sqlite, tmp_path):
    s = btcml_sqlite.json("ingest", "synthetic:7", "--from", "2023-01-01", "--to", "2023-03-01")
    assert s["synthetic"] is True and s["symbol"] == "BTCUSD-SYNTH" and s["format"] == "synthetic"
    assert s["rows_inserted"] == 59 * 24 + 1 and s["rows_rejected"] == 0
    csv1 = btcml_sqlite.run("bars", "--symbol", "BTCUSD-SYNTH").stdout
    assert csv1.splitlines()[1].endswith(",synthetic:7")
    from conftest import Btcml
    other = Btcml(tmp_path / "other", None)
    other.json("ingest", "synthetic:7", "--from", "2023-01-01", "--to", "2023-03-01")
    assert other.run("bars", "--symbol", "BTCUSD-SYNTH").stdout == csv1
    text = btcml_sqlite.run("ingest", "synthetic:8", "--symbol", "S8", "--from", "2023-01-01", "--to", "2023-01-02").stdout
    assert "SYNTHETIC" in text


def test_json_logs_are_ecs_lines(btcml_sqlite):
    r = btcml_sqlite.run("--log-format", "json", "ingest", "synthetic", "--from", "2023-01-01", "--to", "2023-01-02", "--json")
    logs = [json.loads(line) for line in r.stderr.splitlines() if line.strip()]
    assert logs and all({"@timestamp", "log.level", "message"} <= set(x) for x in logs)
    assert any(x["message"] == "ingest finished" and x["btcml.ingest.rows_inserted"] == 25 for x in logs)
