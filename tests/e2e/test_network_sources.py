"""Network sources through the real `btcml ingest`, against loopback servers that speak Kaggle's, Bitstamp's and
Binance's wire formats (tests/e2e/fake_servers.py)."""
import io
import json
import time
import zipfile

import pytest

import fake_servers as fs

HOUR = 3600
DAY = 86400


def last_closed(step: int) -> int:
    """Open time of the newest candle that has closed by now."""
    return int(time.time()) // step * step - step


def iso(t: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


# IngestWriter::finish (src/data/ingest.cpp) refuses a run that read no rows ("the source holds no data rows"),
# which is right for files but not for an exchange with nothing new since the last run. Strict, so that these
# tests fail loudly, and the marker is removed, once the writer accepts empty API runs.


def series(btcml):
    return btcml.json("series")["series"]


def fail(btcml, *args, env=None):
    """Runs a command that must fail; returns (exit code, the one-line error)."""
    proc = btcml.run(*args, "--json", check=False, env=env)
    assert proc.returncode != 0, proc.stdout
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(errors) == 1, proc.stderr
    return proc.returncode, errors[0]


@pytest.fixture
def bitstamp():
    with fs.FakeBitstamp() as server:
        yield server


@pytest.fixture
def binance():
    with fs.FakeBinance() as server:
        yield server


# ---- exchanges


def test_bitstamp_default_run_takes_the_latest_complete_page(btcml_sqlite, bitstamp):
    s = btcml_sqlite.json("ingest", "bitstamp:btcusd", env={"BTCML_BITSTAMP_URL": bitstamp.url})
    end = last_closed(HOUR)
    assert (s["format"], s["symbol"], s["interval"]) == ("bitstamp-api", "BTCUSD", "1h")
    assert (s["rows_read"], s["rows_inserted"], s["rows_rejected"], s["missing_bars"]) == (1000, 1000, 0, 0)
    assert (s["first_time"], s["last_time"]) == (iso(end - 999 * HOUR), iso(end))
    [request] = bitstamp.requests
    assert request["path"] == "/api/v2/ohlc/btcusd/"
    assert request["query"] == {"step": "3600", "limit": "1000", "start": str(end - 999 * HOUR)}


@pytest.mark.parametrize("server_name", ["bitstamp", "binance"])
def test_the_forming_candle_is_left_out(btcml_sqlite, request, server_name):
    server = request.getfixturevalue(server_name)
    source = "bitstamp:btcusd" if server_name == "bitstamp" else "binance:BTCUSDT"
    end = last_closed(HOUR)
    s = btcml_sqlite.json("ingest", source, "--from", str(end - 9 * HOUR), "--base-url", server.url)
    assert (s["rows_read"], s["rows_inserted"], s["last_time"]) == (10, 10, iso(end))
    assert server.served_max_time == end + HOUR  # the server sent the forming candle


def test_binance_second_run_is_incremental(btcml_sqlite, binance):
    args = ("ingest", "binance:BTCUSDT", "--interval", "1d", "--base-url", binance.url)
    first = btcml_sqlite.json(*args)
    assert (first["format"], first["interval"], first["rows_inserted"]) == ("binance-api", "1d", 1000)
    assert first["last_time"] == iso(last_closed(DAY))
    again = btcml_sqlite.json(*args)
    assert (again["rows_read"], again["rows_inserted"], again["rows_duplicate"]) == (0, 0, 0)
    assert len(binance.requests) == 1  # nothing new had closed: the second run asked for nothing


def test_binance_backfills_from_across_pages(btcml_sqlite, binance):
    end = last_closed(HOUR)
    start = end - 2345 * HOUR
    s = btcml_sqlite.json("ingest", "binance:btcusdt", "--from", str(start - 1800), "--base-url", binance.url)
    assert (s["rows_inserted"], s["first_time"], s["last_time"], s["missing_bars"]) == (2346, iso(start), iso(end), 0)
    starts = [int(r["query"]["startTime"]) // 1000 for r in binance.requests]
    assert starts == [start, start + 1000 * HOUR, start + 2000 * HOUR]
    assert {r["query"]["symbol"] for r in binance.requests} == {"BTCUSDT"}
    bars = btcml_sqlite.run("bars", "--interval", "1h", "--format", "json").stdout
    assert bars.count('"time"') == 2346


def test_bitstamp_backfill_stops_at_to(btcml_sqlite, bitstamp):
    end = last_closed(HOUR) - 500 * HOUR
    s = btcml_sqlite.json("ingest", "bitstamp:btcusd", "--from", str(end - 1499 * HOUR), "--to", str(end),
                          env={"BTCML_BITSTAMP_URL": bitstamp.url})
    assert (s["rows_inserted"], s["first_time"], s["last_time"]) == (1500, iso(end - 1499 * HOUR), iso(end))
    assert len(bitstamp.requests) == 2


@pytest.mark.parametrize("fault", [fs.RATE_LIMITED, fs.SERVER_ERROR])
def test_transient_failures_are_retried(btcml_sqlite, binance, fault):
    binance.faults.append(fault)
    started = time.monotonic()
    s = btcml_sqlite.json("ingest", "binance:BTCUSDT", "--base-url", binance.url)
    assert s["rows_inserted"] == 1000
    assert len(binance.requests) == 2
    if fault == fs.RATE_LIMITED:
        assert time.monotonic() - started >= 1.0  # Retry-After: 1 was honoured


@pytest.mark.parametrize("server_name", ["bitstamp", "binance"])
def test_truncated_json_fails_cleanly_and_leaves_the_store_unchanged(btcml_sqlite, request, server_name):
    server = request.getfixturevalue(server_name)
    source = "bitstamp:btcusd" if server_name == "bitstamp" else "binance:BTCUSDT"
    btcml_sqlite.json("ingest", source, "--base-url", server.url)
    before = series(btcml_sqlite)
    server.faults.extend([None, fs.TRUNCATED])  # the second page of the backfill is cut short
    code, message = fail(btcml_sqlite, "ingest", source, "--from", str(last_closed(HOUR) - 2500 * HOUR),
                         "--base-url", server.url)
    assert code == 3, message
    assert "truncated JSON" in message and server.url in message, message
    assert series(btcml_sqlite) == before


@pytest.mark.parametrize("server_name", ["bitstamp", "binance"])
def test_empty_page_ingests_nothing(btcml_sqlite, request, server_name):
    server = request.getfixturevalue(server_name)
    server.faults.append(fs.EMPTY)
    source = "bitstamp:btcusd" if server_name == "bitstamp" else "binance:BTCUSDT"
    s = btcml_sqlite.json("ingest", source, "--base-url", server.url)
    assert (s["rows_read"], s["rows_inserted"]) == (0, 0)
    assert len(server.requests) == 1


@pytest.mark.parametrize("server_name", ["bitstamp", "binance"])
def test_a_bad_price_is_rejected_with_its_reason_not_dropped(btcml_sqlite, request, server_name):
    server = request.getfixturevalue(server_name)
    server.faults.append(fs.BAD_PRICE)
    source = "bitstamp:btcusd" if server_name == "bitstamp" else "binance:BTCUSDT"
    s = btcml_sqlite.json("ingest", source, "--base-url", server.url)
    assert (s["rows_read"], s["rows_inserted"], s["rows_rejected"]) == (1000, 999, 1)
    assert s["rejected_reasons"] == {"unparsable_number": 1}


@pytest.mark.parametrize("source,needle", [("binance:BTCXXX", "Invalid symbol."),
                                           ("bitstamp:btcxxx", "Invalid currency pair")])
def test_unknown_symbol_is_a_clear_error(btcml_sqlite, bitstamp, binance, source, needle):
    server = bitstamp if source.startswith("bitstamp") else binance
    code, message = fail(btcml_sqlite, "ingest", source, "--base-url", server.url)
    assert code == 2
    assert needle in message and "check the symbol" in message, message


def test_unsupported_interval_fails_before_any_request(btcml_sqlite, bitstamp):
    code, message = fail(btcml_sqlite, "ingest", "bitstamp:btcusd", "--interval", "8h", "--base-url", bitstamp.url)
    assert code == 2 and "Bitstamp has no 8h candles" in message, message
    assert bitstamp.requests == []


# ---- Kaggle

KAGGLE_ROWS = 600
KAGGLE_START = 1325412060  # 2012-01-01T10:01:00Z, as in the real dataset


def kaggle_csv() -> bytes:
    lines = ["Timestamp,Open,High,Low,Close,Volume"]
    for i in range(KAGGLE_ROWS):
        o, h, l, c, v = fs.candle(KAGGLE_START + 60 * i)
        lines.append(f"{KAGGLE_START + 60 * i}.0,{o},{h},{l},{c},{v}")
    return ("\n".join(lines) + "\n").encode()


def kaggle_zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("btcusd_1-min_data.csv", kaggle_csv())
    return out.getvalue()


@pytest.fixture
def kaggle():
    with fs.FakeKaggle("alice", "0123456789abcdef") as server:
        server.datasets["mczielinski/bitcoin-historical-data"] = kaggle_zip()
        server.files["mczielinski/bitcoin-historical-data/btcusd_1-min_data.csv"] = kaggle_csv()
        yield server


def kaggle_env(server, tmp_path, user="alice", key="0123456789abcdef", home=None):
    """No credentials from the machine running the tests: HOME and KAGGLE_CONFIG_DIR point to a scratch folder."""
    return {"BTCML_KAGGLE_URL": server.url, "KAGGLE_USERNAME": user, "KAGGLE_KEY": key,
            "KAGGLE_CONFIG_DIR": "", "HOME": str(tmp_path / "user"), "BTCML_HOME": str(home or tmp_path / "home")}


def test_kaggle_downloads_follows_the_redirect_and_ingests(btcml_sqlite, kaggle, tmp_path):
    s = btcml_sqlite.json("ingest", "kaggle", "--interval", "1m", env=kaggle_env(kaggle, tmp_path))
    assert s["format"] == "kaggle (zip:btcusd_1-min_data.csv)"
    assert (s["interval"], s["rows_inserted"], s["rows_rejected"]) == ("1m", KAGGLE_ROWS, 0)
    assert (s["first_time"], s["last_time"]) == (iso(KAGGLE_START), iso(KAGGLE_START + 60 * (KAGGLE_ROWS - 1)))
    api, storage = kaggle.requests
    assert api["path"] == "/api/v1/datasets/download/mczielinski/bitcoin-historical-data"
    assert api["headers"]["Authorization"].startswith("Basic ")
    assert storage["path"].startswith("/storage/") and "Authorization" not in storage["headers"]
    assert list((tmp_path / "home" / "downloads").iterdir()) == []  # the download is deleted


def test_kaggle_single_file_with_credentials_from_kaggle_json(btcml_sqlite, kaggle, tmp_path):
    config = tmp_path / "kaggle-config"
    config.mkdir()
    (config / "kaggle.json").write_text(json.dumps({"username": "alice", "key": "0123456789abcdef"}))
    env = kaggle_env(kaggle, tmp_path, user="", key="") | {"KAGGLE_CONFIG_DIR": str(config)}
    s = btcml_sqlite.json("ingest", "kaggle:mczielinski/bitcoin-historical-data/btcusd_1-min_data.csv", env=env)
    assert s["rows_inserted"] == KAGGLE_ROWS
    assert kaggle.requests[0]["path"].endswith("/bitcoin-historical-data/btcusd_1-min_data.csv")


def test_kaggle_wrong_credentials(btcml_sqlite, kaggle, tmp_path):
    code, message = fail(btcml_sqlite, "ingest", "kaggle:", env=kaggle_env(kaggle, tmp_path, user="bob", key="nope"))
    assert code == 2
    assert "Kaggle rejected the credentials for user bob (HTTP 401: Unauthenticated)" in message, message
    assert series(btcml_sqlite) == []


def test_kaggle_missing_credentials_says_where_it_looked(btcml_sqlite, kaggle, tmp_path):
    code, message = fail(btcml_sqlite, "ingest", "kaggle", env=kaggle_env(kaggle, tmp_path, user="", key=""))
    assert code == 2
    assert "KAGGLE_USERNAME and KAGGLE_KEY" in message, message
    assert str(tmp_path / "user" / ".kaggle" / "kaggle.json") in message, message
    assert kaggle.requests == []


def test_kaggle_unknown_dataset(btcml_sqlite, kaggle, tmp_path):
    code, message = fail(btcml_sqlite, "ingest", "kaggle:someone/nothing-here", env=kaggle_env(kaggle, tmp_path))
    assert code == 4
    assert "Kaggle has no dataset someone/nothing-here" in message, message
