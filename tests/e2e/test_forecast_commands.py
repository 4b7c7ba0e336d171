"""train, evaluate and predict through the real binary: the JSON contract, artifacts and every bad input."""
import json
import math
import os
import re
import sqlite3
import time
from pathlib import Path

import pytest

from conftest import Btcml, shared_file

SYMBOL = "BTCUSD-SYNTH"  # the synthetic source's symbol
TINY = ["--symbol", SYMBOL, "--window", "24", "--hidden", "8", "--layers", "1", "--epochs", "2",
        "--samples-per-epoch", "256", "--seed", "3"]
METRIC_KEYS = {"mae", "rmse", "mape", "mase", "u2", "direction_accuracy", "direction_ci_low", "direction_ci_high",
               "dm_pvalue", "coverage_80", "interval_width", "pinball", "lag_correlation", "tracks_previous"}


@pytest.fixture
def home(tmp_path):
    b = Btcml(tmp_path / "home", None)
    b.json("ingest", "synthetic:7")
    return b


@pytest.fixture
def trained(home):
    return home, home.json("train", *TINY)


def check_metrics(metrics, horizons=(1, 6, 24)):
    assert set(metrics) == {f"h{h}" for h in horizons}
    for per_model in metrics.values():
        assert set(per_model) == {"model", "naive", "drift", "linear", "ewma", "rolling"}
        assert set(per_model["model"]["dm_pinball_pvalue"]) == set(per_model) - {"model"}
        for m in per_model.values():
            assert m["coverage_ci_low"] <= m["coverage_80"] <= m["coverage_ci_high"]
            assert m["below_q10"] <= m["below_q50"] <= m["below_q90"]
        for name, m in per_model.items():
            assert METRIC_KEYS <= set(m), name
            assert m["count"] > 0
            assert 0 <= m["coverage_80"] <= 1
            assert m["pinball"] > 0 and m["mae"] > 0
        assert per_model["naive"]["mase"] == pytest.approx(1)
        assert per_model["naive"]["u2"] == pytest.approx(1)
        assert per_model["naive"]["dm_pvalue"] is None
        assert 0 <= per_model["model"]["dm_pvalue"] <= 1
        counts = {m["count"] for m in per_model.values()}
        assert len(counts) == 1, "every model must be scored on the same points"


def check_verdicts(verdicts, metrics):
    """Each verdict must say what its own metrics say: a verdict that contradicts them fails."""
    assert set(verdicts) == set(metrics)
    for horizon, per_model in metrics.items():
        model, naive = per_model["model"], per_model["naive"]
        expected = [f"model {'beats' if model['mae'] < naive['mae'] else 'does NOT beat'} naive on mae",
                    f"{'beats' if model['pinball'] < naive['pinball'] else 'does NOT beat'} naive on pinball",
                    "significant at 5%" if model["dm_pvalue"] < 0.05 else "no significant difference at 5%"]
        assert all(phrase in verdicts[horizon] for phrase in expected), (horizon, verdicts[horizon], expected)


def test_train_reports_the_contract_and_publishes_an_artifact(trained):
    home, out = trained
    assert len(out["run_id"]) == 32
    assert out["model_version"] == 1 and out["promoted"] is True
    # The gate says plainly whether a simple baseline forecasts the quantiles better than the new version.
    candidate = out["gate"]["numbers"]["candidate"]
    assert candidate["best_baseline"] in ("naive", "drift", "linear", "ewma", "rolling")
    beaten = candidate["best_baseline_pinball"] < candidate["pinball"]
    assert ("NOTE: the simple baseline " + candidate["best_baseline"] + " beats it" in out["gate"]["reason"]) == beaten
    parts = out["splits"]
    for part in ("train", "validation", "test"):
        assert parts[part]["windows"] > 0
    # Chronological with an embargo: each part starts at or after the previous part's last target.
    assert parts["train"]["to"] < parts["validation"]["from"] <= parts["validation"]["to"] < parts["test"]["from"]
    assert 1 <= len(out["epochs"]) <= 2
    for e in out["epochs"]:
        assert {"epoch", "train_loss", "validation_loss", "lr", "seconds"} <= set(e)
    check_metrics(out["metrics"])
    check_verdicts(out["verdict"], out["metrics"])

    model_dir = home.home / "models" / "1"
    card = json.loads((model_dir / "model.json").read_text())
    for key in ("architecture", "features", "horizons", "quantiles", "window", "scaler", "training_range", "data",
                "metrics", "seed", "btcml_version", "symbol", "interval", "calibration", "baselines"):
        assert key in card, key
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", card["data"]["hash"])
    assert (model_dir / "weights.bin").read_bytes()[:8] == b"BTCMLWTS"
    assert out["registry"]["aliases"] == {"champion": 1}
    assert not (home.home / "models" / "champion").exists()  # the store's alias table is the one record
    assert not [p for p in (home.home / "models").iterdir() if p.name.startswith(".tmp")]

    # The same seed on the same data makes the same model: the gate keeps the champion, the new one is challenger.
    again = home.json("train", *TINY)
    assert again["model_version"] == 2 and again["promoted"] is False
    assert again["registry"]["aliases"] == {"champion": 1, "challenger": 2}
    assert home.json("predict")["model_version"] == 1
    assert home.json("predict", "--model", "challenger", "--symbol", SYMBOL, "--interval", "1h")["model_version"] == 2


def test_train_is_reproducible_for_a_seed(home):
    a = home.json("train", *TINY)
    b = home.json("train", *TINY)
    assert a["metrics"]["h6"]["model"] == b["metrics"]["h6"]["model"]


def test_predict_applies_the_stored_online_calibration(trained):
    """Served intervals read the state live scoring keeps in the store (here written behind the binary's back):
    e^θ times each half-width around the median."""
    home, _ = trained

    def quantiles():
        out = home.json("predict")
        rows = {}
        for f in out["forecasts"]:
            base = f["price"] / math.exp(f["log_return"])
            rows[f["horizon"]] = (math.log(f["lower"] / base), f["log_return"], math.log(f["upper"] / base))
        return rows

    before = quantiles()
    with sqlite3.connect(home.home / "btcml.db") as db:
        db.execute("INSERT INTO calibration_state (model_version, horizon, log_scale_low, log_scale_high, updates, "
                   "last_target_time, updated_ms) VALUES (1, 6, ?, ?, 5, 0, 0)", (math.log(2), math.log(0.5)))
    after = quantiles()
    assert after[1] == pytest.approx(before[1]) and after[24] == pytest.approx(before[24])
    low, mid, high = before[6]
    assert after[6] == pytest.approx((mid - 2 * (mid - low), mid, mid + 0.5 * (high - mid)), rel=1e-6)


def test_predict_gives_non_crossing_forecasts(trained):
    home, _ = trained
    out = home.json("predict")
    assert set(out) == {"model_version", "as_of", "symbol", "interval", "forecasts"}
    assert out["model_version"] == 1 and out["symbol"] == SYMBOL and out["interval"] == "1h"
    assert out["as_of"] == "2023-12-31T23:00:00Z"
    assert [f["horizon"] for f in out["forecasts"]] == [1, 6, 24]
    for f in out["forecasts"]:
        assert set(f) == {"horizon", "target_time", "price", "lower", "upper", "log_return"}
        assert f["lower"] <= f["price"] <= f["upper"]
    assert out["forecasts"][0]["target_time"] == "2024-01-01T00:00:00Z"
    at = home.json("predict", "--model", "1", "--at", "2023-06-01T12:30:00Z")
    assert at["as_of"] == "2023-06-01T12:00:00Z"
    text = home.run("predict").stdout
    assert "80% interval" in text


def test_evaluate_walks_forward(trained):
    home, _ = trained
    out = home.json("evaluate", "--from", "2023-10-01", "--to", "2023-12-31")
    assert out["model_version"] == 1 and out["folds"] == 1
    assert out["from"] >= "2023-10-01" and out["to"] <= "2023-12-31"
    check_metrics(out["metrics"])
    check_verdicts(out["verdict"], out["metrics"])
    assert out["overlaps_training"] is False
    early = home.json("evaluate", "--from", "2022-03-01", "--to", "2022-04-01")
    assert early["overlaps_training"] is True
    refit = home.json("evaluate", "--model", "champion", "--from", "2023-11-01", "--to", "2023-12-31",
                      "--retrain-every", "500")
    assert refit["folds"] == 3
    check_metrics(refit["metrics"])
    text = home.run("evaluate", "--from", "2023-10-01", "--to", "2023-12-31").stdout
    assert "verdict:" in text and "naive" in text and "ewma" in text and "adaptive calibration" in text

    # The model was trained with adaptive calibration (the default): evaluate replays it; the other modes on demand.
    assert out["calibration"]["mode"] == "adaptive" and out["calibration"]["rate"] == 0.02
    assert out["calibration"]["final_state"]["h24"]["updates"] > 0
    static = home.json("evaluate", "--from", "2023-10-01", "--to", "2023-12-31", "--calibration", "static")
    raw = home.json("evaluate", "--from", "2023-10-01", "--to", "2023-12-31", "--calibration", "none")
    assert static["calibration"] == {"mode": "static", "rate": 0.02}
    assert raw["metrics"]["h1"]["model"]["interval_width"] != static["metrics"]["h1"]["model"]["interval_width"]
    assert raw["metrics"]["h1"]["naive"] == static["metrics"]["h1"]["naive"]  # baselines are not calibrated
    fast = home.json("evaluate", "--from", "2023-10-01", "--to", "2023-12-31", "--calibration-rate", "0.5")
    assert fast["calibration"]["rate"] == 0.5
    assert fast["metrics"]["h1"]["model"]["interval_width"] != out["metrics"]["h1"]["model"]["interval_width"]
    for bad, message in ((["--calibration", "aci"], "'aci' is not a calibration"),
                         (["--calibration-rate", "2"], "the rate must be in (0, 1]")):
        r = home.run("evaluate", "--from", "2023-10-01", "--to", "2023-12-31", *bad, check=False)
        assert r.returncode == 2 and message in r.stderr, r.stderr


def test_evaluate_refits_warm_or_cold(trained):
    home, _ = trained
    period = ("--from", "2023-11-01", "--to", "2023-12-31", "--retrain-every", "500")
    warm = home.json("evaluate", *period)
    assert warm["refit"] == {"mode": "warm", "epochs": 2} and warm["folds"] == 3
    check_metrics(warm["metrics"])
    # Deterministic: the same seed gives the same numbers, to the last bit.
    assert home.json("evaluate", *period)["metrics"] == warm["metrics"]
    cold = home.json("evaluate", *period, "--refit", "cold")
    assert cold["refit"] == {"mode": "cold", "epochs": 2}  # the stored model's --epochs
    one = home.json("evaluate", *period, "--refit-epochs", "1")
    assert one["refit"] == {"mode": "warm", "epochs": 1}
    assert one["folds"] == 3
    # A cold refit trains each fold's network from the seed: other numbers than continuing from the stored one.
    assert cold["metrics"]["h1"]["model"] != warm["metrics"]["h1"]["model"]
    # The baselines are refitted alike whatever happens to the network.
    assert warm["metrics"]["h1"]["ewma"] == cold["metrics"]["h1"]["ewma"]
    # Without refits there is nothing to refit.
    assert home.json("evaluate", "--from", "2023-11-01", "--to", "2023-12-31")["refit"] is None
    for bad, message in ((["--refit", "hot"], "--refit: 'hot' is not a refit (cold or warm)"),
                         (["--refit-epochs", "0"], "--refit-epochs must be at least 1"),
                         (["--refit-epochs", "x"], "--refit-epochs")):
        r = home.run("evaluate", *period, *bad, check=False)
        assert r.returncode == 2 and message in r.stderr, r.stderr
    r = home.run("evaluate", "--from", "2023-11-01", "--to", "2023-12-31", "--refit", "warm", check=False)
    assert r.returncode == 2 and "need --retrain-every" in r.stderr, r.stderr


def test_model_errors(trained, tmp_path):
    home, _ = trained
    missing = home.run("predict", "--model", "9", check=False)
    assert missing.returncode != 0 and "version 9 does not exist" in missing.stderr
    assert home.run("evaluate", "--model", "9", "--from", "2023-01-01", "--to", "2023-02-01", check=False).returncode \
        == missing.returncode
    newest = home.run("predict", "--model", "newest", check=False)  # aliases are any name: not one of them
    assert newest.returncode == missing.returncode and "has no alias 'newest'" in newest.stderr, newest.stderr
    assert home.run("predict", "--interval", "1x", check=False).returncode == 2
    other = home.run("predict", "--symbol", "ETHUSD", check=False)
    assert other.returncode == missing.returncode and "ETHUSD" in other.stderr and SYMBOL in other.stderr

    weights = home.home / "models" / "1" / "weights.bin"
    data = bytearray(weights.read_bytes())
    data[100] ^= 0xFF
    weights.write_bytes(bytes(data))
    corrupt = home.run("predict", "--model", "1", check=False)
    assert corrupt.returncode not in (0, missing.returncode)
    assert "weights.bin" in corrupt.stderr and "checksum" in corrupt.stderr
    weights.write_bytes(bytes(data[:50]))
    truncated = home.run("predict", "--model", "1", check=False)
    assert "truncated" in truncated.stderr and truncated.returncode == corrupt.returncode
    card = home.home / "models" / "1" / "model.json"
    card.write_text("{not json")
    bad_card = home.run("predict", check=False)
    assert "model.json" in bad_card.stderr and bad_card.returncode == corrupt.returncode

    fresh = Btcml(tmp_path / "empty", None)
    none = fresh.run("predict", check=False)
    assert none.returncode == missing.returncode and "no trained models" in none.stderr


@pytest.mark.parametrize("args,needle", [
    (["--horizons", "6,1"], "ascending"),
    (["--horizons", "1,x"], "not a bar count"),
    (["--window", "0"], "--window"),
    (["--epochs", "0"], "--epochs"),
    (["--interval", "7q"], "--interval"),
])
def test_train_rejects_bad_flags(home, args, needle):
    p = home.run("train", *TINY, *args, check=False)
    assert p.returncode == 2, p.stderr
    assert needle in p.stderr


def test_train_explains_unusable_data(home, tmp_path):
    p = home.run("train", *TINY, "--until", "2022-01-01T20:00:00Z", check=False)
    assert p.returncode == 3 and "too few bars" in p.stderr
    p = home.run("train", *TINY, "--horizons", "1,20000", check=False)
    assert p.returncode == 3 and "too few bars" in p.stderr
    p = home.run("train", "--symbol", "NOPE", check=False)
    assert p.returncode == 4 and "no NOPE 1h bars" in p.stderr
    # A series whose every run is shorter than a window.
    gappy = tmp_path / "gappy.csv"
    t0 = 1_700_000_000 - 1_700_000_000 % 3600
    rows = ["time,open,high,low,close,volume"]
    for i in range(300):
        if i % 10 < 8:
            rows.append(f"{t0 + i * 3600},100,101,99,100.5,1")
    gappy.write_text("\n".join(rows) + "\n")
    fresh = Btcml(tmp_path / "gappy-home", None)
    fresh.json("ingest", gappy, "--symbol", "GAP", "--interval", "1h")
    p = fresh.run("train", "--symbol", "GAP", "--window", "12", "--horizons", "1", check=False)
    assert p.returncode == 3 and "gaps everywhere" in p.stderr


def test_train_with_defaults_on_real_hourly_binance(tmp_path):
    path = shared_file("binance_btcusdt_1h_2017-08-17_2023-12-20.csv")
    b = Btcml(tmp_path / "home", None)
    b.json("ingest", path, "--symbol", "BTCUSD")
    started = time.monotonic()
    out = b.json("train", timeout=600)
    elapsed = time.monotonic() - started
    assert elapsed < 300, f"default training took {elapsed:.0f}s"
    check_metrics(out["metrics"])
    assert out["splits"]["test"]["to"] <= "2023-12-20T16:00:00Z"
    for h in ("h1", "h6", "h24"):
        cov = out["metrics"][h]["model"]["coverage_80"]
        assert 0.6 <= cov <= 0.95, (h, cov)  # calibrated on validation; the regime shifts, so not exact
    p = b.json("predict")
    assert p["as_of"] == "2023-12-20T16:00:00Z"
