"""Helpers of the live-monitoring tests: forecasts stored through the API and marked `scheduled`, /metrics parsing."""
import re
import sqlite3
from datetime import datetime, timedelta, timezone

from conftest import _psql
from serving import Server

SYMBOL = "BTCUSD-SYNTH"
TINY = ["--symbol", SYMBOL, "--window", "24", "--hidden", "8", "--layers", "1", "--epochs", "1",
        "--samples-per-epoch", "128", "--seed", "3"]


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def sql(b, statement):
    """SQL behind the binary's back: the scheduler that stores `scheduled` forecasts is another subsystem."""
    if b.db:
        _psql(b.db, statement)
        return
    with sqlite3.connect(b.home / "btcml.db") as db:
        db.execute(statement)


def replay_clock(b):
    """Env for a process clock that starts an hour after the latest stored bar closed (synthetic data is old)."""
    last = parse(b.json("series")["series"][0]["last_time"])
    now = last + timedelta(hours=2)
    return now, {"BTCML_REPLAY_SPEED": "1", "BTCML_REPLAY_START": iso(now)}


def store_forecasts(b, clock):
    """Forecasts of six windows ending 26 to 51 bars before the latest (every target stored) through
    POST /api/v1/predict; every other one is then marked `scheduled`. Returns (all origins, scheduled origins)."""
    with Server(b, env=clock) as s:
        last = parse(b.json("series")["series"][0]["last_time"])
        bars = s.get("/api/v1/bars", params={"symbol": SYMBOL, "from": iso(last - timedelta(hours=80))}).json()["bars"]
        origins = []
        for end in range(30, 56, 5):
            r = s.post("/api/v1/predict", json={"symbol": SYMBOL, "interval": "1h", "bars": bars[end - 25:end]})
            assert r.status_code == 200, r.text
            origins.append(r.json()["as_of"])
        s.wait_for(lambda: len(s.get("/api/v1/predictions").json()["predictions"]) == 3 * len(origins),
                   what="the predictions stored")
    scheduled = origins[1::2]
    sql(b, "UPDATE predictions SET provenance = 'scheduled' WHERE origin_time IN (%s)"
        % ",".join(str(int(parse(o).timestamp())) for o in scheduled))
    return origins, scheduled


def metric_samples(text, name):
    """{sorted label tuple: value} of one metric in the text exposition format."""
    out = {}
    for line in text.splitlines():
        m = re.fullmatch(name + r"\{(.*)\} (\S+)", line)
        if m:
            out[tuple(sorted(re.findall(r'(\w+)="([^"]*)"', m.group(1))))] = float(m.group(2))
    return out
