"""Live scoring through the real binary: stored forecasts scored once their target bar is stored, the live metrics,
drift and freshness on /metrics checked against values computed here from /api/v1/predictions and the model card;
the replay source and clock."""
import json
import math
import subprocess
from datetime import datetime, timedelta, timezone

import pytest

from monitoring import SYMBOL, TINY, iso, metric_samples, parse, replay_clock, sql, store_forecasts
from serving import Server

QUANTILES = (0.1, 0.5, 0.9)


def pinball(y, qs):
    return sum(max(t * (y - q), (t - 1) * (y - q)) for q, t in zip(qs, QUANTILES)) / 3


@pytest.mark.timeout(300)
def test_live_metrics_on_metrics_match_the_stored_forecasts(btcml):
    b = btcml
    b.json("ingest", "synthetic:7")
    b.json("train", *TINY)
    card = json.loads((b.home / "models" / "1" / "model.json").read_text())
    assert len(card["feature_profile"]["features"]) == 8
    naive_band = dict(zip(card["baselines"]["horizons"], card["baselines"]["naive_band"]))

    now, clock = replay_clock(b)
    origins, scheduled = store_forecasts(b, clock)

    first = b.json("monitor", "score", env=clock)
    assert [(x["symbol"], x["scored"]) for x in first["series"]] == [(SYMBOL, 3 * len(origins))]
    assert len(first["series"][0]["feature_psi"]) == 8
    # Each process starts its own replay clock: a second later, so that the second pass is a row of its own.
    later = dict(clock, BTCML_REPLAY_START=iso(now + timedelta(seconds=1)))
    assert b.json("monitor", "score", env=later)["series"][0]["scored"] == 0, "each forecast is scored once"

    # The expected metrics, from the stored forecasts and their realised closes.
    with Server(b, env=clock) as s:
        preds = [p for p in s.get("/api/v1/predictions").json()["predictions"] if p["origin_time"] in scheduled]
        s.wait_for(lambda: "btcml_live_mae{" in s.get("/metrics").text, what="the live metrics exported")
        text = s.get("/metrics").text
    now_s = now.timestamp()
    expected = {}
    for window, seconds in (("24h", 86400), ("7d", 7 * 86400), ("30d", 30 * 86400)):
        for h in (1, 6, 24):
            group = [p for p in preds if p["horizon"] == h
                     and now_s - seconds < parse(p["target_time"]).timestamp() + 3600 <= now_s + 60]
            if not group:
                continue
            rows = []
            for p in group:
                origin = p["price"] / math.exp(p["log_return"])
                y = math.log(p["realised"] / origin)
                qs = (math.log(p["lower"] / origin), p["log_return"], math.log(p["upper"] / origin))
                low, high = naive_band[h]  # the training data's h-step log-return quantiles
                rows.append((abs(y - p["log_return"]), abs(y), pinball(y, qs), pinball(y, (low, 0, high)),
                             p["lower"] <= p["realised"] <= p["upper"]))
            n = len(rows)
            labels = tuple(sorted({"symbol": SYMBOL, "interval": "1h", "version": "1", "champion": "true",
                                   "horizon": str(h), "window": window}.items()))
            mae, naive = sum(r[0] for r in rows) / n, sum(r[1] for r in rows) / n
            pin, base = sum(r[2] for r in rows) / n, sum(r[3] for r in rows) / n
            expected[labels] = {"btcml_live_scored_forecasts": n, "btcml_live_mae": mae, "btcml_live_naive_mae": naive,
                                "btcml_live_mae_ratio": mae / naive, "btcml_live_pinball": pin,
                                "btcml_live_baseline_pinball": base, "btcml_live_pinball_ratio": pin / base,
                                "btcml_live_coverage_80": sum(r[4] for r in rows) / n}
    assert expected, "some scheduled forecasts fall in the windows"
    check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    for name in expected[next(iter(expected))]:
        got = metric_samples(text, name)
        assert set(got) == set(expected), name  # client forecasts never count
        for labels, values in expected.items():
            assert got[labels] == pytest.approx(values[name], rel=1e-9, abs=1e-12), (name, labels)

    psi = metric_samples(text, "btcml_feature_psi")
    assert len(psi) == 8 and all(v >= 0 for v in psi.values())
    age = metric_samples(text, "btcml_data_age_seconds")
    series = (("interval", "1h"), ("symbol", SYMBOL))
    assert 3600 <= age[series] < 3600 + 120, "the latest bar closed an hour before the replay clock started"
    assert metric_samples(text, "btcml_data_stale")[series] == 0

    history = b.json("monitor", "history", "--symbol", SYMBOL, "--interval", "1h")["live_metrics"]
    assert len(history) == 2 * len(expected), "each pass appends its rows"

    # Once another version is promoted, version 1's rows stay (its forecasts are still in the windows) but are no
    # longer the champion's.
    b.json("train", *TINY[:-1], "4", "--force-promote")
    with Server(b, env=clock) as s:
        s.wait_for(lambda: 'champion="false"' in s.get("/metrics").text, what="the champion label updated")
        replaced = metric_samples(s.get("/metrics").text, "btcml_live_mae")
    assert {dict(labels)["champion"] for labels in replaced} == {"false"}
    assert {dict(labels)["version"] for labels in replaced} == {"1"}


def test_wall_clock_makes_old_data_stale(btcml_sqlite):
    b = btcml_sqlite
    b.json("ingest", "synthetic:7")
    b.json("train", *TINY)
    with Server(b) as s:
        s.wait_for(lambda: "btcml_data_stale{" in s.get("/metrics").text, what="freshness exported")
        assert metric_samples(s.get("/metrics").text, "btcml_data_stale") == {
            (("interval", "1h"), ("symbol", SYMBOL)): 1}


def test_replay_source_reveals_bars_as_the_replay_clock_passes_their_close(btcml, tmp_path):
    start = datetime(2024, 3, 1, tzinfo=timezone.utc)
    rows = ["time,open,high,low,close,volume"]
    for i in range(48):
        t = start + timedelta(hours=i)
        rows.append(f"{iso(t)},{100 + i},{102 + i},{99 + i},{101 + i},5")
    path = tmp_path / "replay.csv"
    path.write_text("\n".join(rows) + "\n")

    def ingest(clock_start, speed="1"):
        return b.json("--replay-speed", speed, "--replay-start", clock_start, "ingest", f"replay:{path}",
                      "--symbol", "RPL", "--interval", "1h")

    b = btcml
    first = ingest(iso(start + timedelta(hours=10, minutes=30)))
    # Bars open at 00:00 … 09:00 have closed by 10:30; the rest is skipped, not rejected.
    assert first["rows_inserted"] == 10 and first["rows_rejected"] == 0, first
    assert first["source"] == f"replay:{path}"
    second = ingest(iso(start + timedelta(hours=20)))
    assert second["rows_inserted"] == 10 and second["rows_duplicate"] == 10 and second["rows_rejected"] == 0
    # A fast clock: an hour of market time per wall second; within a few seconds more bars close.
    fast = ingest(iso(start + timedelta(hours=30)), speed="3600")
    assert fast["rows_inserted"] >= 10
    series = [x for x in b.json("series")["series"] if x["symbol"] == "RPL"][0]
    assert series["bars"] == 20 + fast["rows_inserted"]

    missing = b.run("--replay-speed", "1", "ingest", f"replay:{path}", "--interval", "1h", check=False)
    assert missing.returncode != 0 and "--replay-start" in missing.stderr
    no_interval = b.run("ingest", f"replay:{path}", check=False)
    assert no_interval.returncode != 0 and "interval" in no_interval.stderr
    bad_speed = b.run("--replay-speed", "-3", "--replay-start", "2024-01-01", "series", check=False)
    assert bad_speed.returncode != 0 and "--replay-speed" in bad_speed.stderr


@pytest.mark.timeout(300)
def test_a_replayed_series_scores_its_forecast_once_the_target_bars_are_revealed(btcml, tmp_path):
    b = btcml
    source = type(b)(tmp_path / "source-home", None)
    source.json("ingest", "synthetic:7")
    path = tmp_path / "bars.csv"
    path.write_text(source.run("bars", "--symbol", SYMBOL, "--interval", "1h").stdout)

    t1 = datetime(2023, 6, 1, tzinfo=timezone.utc)

    def at(t):
        return {"BTCML_REPLAY_SPEED": "1", "BTCML_REPLAY_START": iso(t)}

    def reveal(t):
        return b.json("ingest", f"replay:{path}", "--symbol", SYMBOL, "--interval", "1h", env=at(t))

    assert reveal(t1)["last_time"] == "2023-05-31T23:00:00Z"
    b.json("train", *TINY)
    with Server(b, env=at(t1)) as s:
        forecast = s.get("/api/v1/forecast").json()
        assert forecast["as_of"] == "2023-05-31T23:00:00Z"
        s.wait_for(lambda: len(s.get("/api/v1/predictions").json()["predictions"]) == 3, what="the forecast stored")
    sql(b, "UPDATE predictions SET provenance = 'scheduled'")

    pending = b.json("monitor", "score", env=at(t1))["series"][0]
    assert pending["scored"] == 0 and pending["live_metrics"] == [], "no target bar is stored yet"
    assert reveal(t1 + timedelta(hours=6, minutes=30))["rows_inserted"] == 6
    partial = b.json("monitor", "score", env=at(t1 + timedelta(hours=6, minutes=30)))["series"][0]
    assert partial["scored"] == 2, "horizons 1 and 6 have matured, 24 has not"
    assert reveal(t1 + timedelta(hours=30))["rows_inserted"] == 24
    done = b.json("monitor", "score", env=at(t1 + timedelta(hours=30)))["series"][0]
    assert done["scored"] == 1
    # At 2023-06-02T06:00 the target bars of horizons 1 and 6 closed more than 24 h ago (01:00 and 06:00 the day
    # before); all three are within 7 d.
    windows = {w: sorted(m["horizon"] for m in done["live_metrics"] if m["window"] == w) for w in ("24h", "7d")}
    assert windows == {"24h": [24], "7d": [1, 6, 24]}
    assert all(m["scored"] == 1 for m in done["live_metrics"])


def test_scoring_a_home_without_models_says_there_is_nothing_to_score(btcml_sqlite):
    b = btcml_sqlite
    b.json("ingest", "synthetic:2")
    text = b.run("monitor", "score")
    assert "nothing to score" in text.stdout
    assert b.json("monitor", "score")["series"] == []
