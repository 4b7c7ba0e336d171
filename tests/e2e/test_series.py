"""One registry per series: two series, each with its own champion, served side by side by one `btcml serve`;
promoting one (through the API or the CLI) reloads and changes only that one, under load with no failed request."""
import pytest

from conftest import Btcml, copy_home
from serving import Hammer, Server

KEY = "series-test-key"
A, B = "BTCUSD-SYNTH", "ETHUSD-SYNTH"
MODEL_A, MODEL_B = f"btcml-{A}-1h", f"btcml-{B}-1h"
TINY = ["--window", "24", "--hidden", "8", "--layers", "1", "--epochs", "1", "--samples-per-epoch", "128",
        "--seed"]


@pytest.fixture(scope="module")
def trained_home(tmp_path_factory):
    """Two synthetic series of half a year each, two tiny models each: A v1, v2 (champion v2), B v3, v4 (champion
    v4). Tests copy it."""
    b = Btcml(tmp_path_factory.mktemp("series") / "home", None)
    b.json("ingest", "synthetic:7", "--from", "2023-01-01", "--to", "2023-06-30")
    b.json("ingest", "synthetic:8", "--symbol", B, "--from", "2023-01-01", "--to", "2023-06-30")
    for symbol in (A, B):
        b.json("train", "--symbol", symbol, *TINY, "3")
        b.json("train", "--symbol", symbol, *TINY, "4", "--force-promote")
    return b.home


@pytest.fixture
def home(trained_home, tmp_path):
    return copy_home(trained_home, tmp_path)


def forecast(server, symbol):
    r = server.get("/api/v1/forecast", params={"symbol": symbol, "interval": "1h"})
    assert r.status_code == 200, r.text
    return r.json()


def swaps(server, symbol):
    """The versions the server swapped in for a series, in order (its log's "serving model" lines)."""
    return [line["btcml.model.version"] for line in server.log_lines()
            if line["message"] == "serving model" and line["btcml.model.symbol"] == symbol]


def window_body(server, symbol, n=25):
    """The last n stored bars of a series as a POST /api/v1/predict body."""
    as_of = forecast(server, symbol)["as_of"]
    page = server.get("/api/v1/bars", params={"symbol": symbol, "interval": "1h", "to": as_of, "limit": 1000})
    return {"symbol": symbol, "interval": "1h", "bars": page.json()["bars"][-n:]}


@pytest.mark.timeout(300)
def test_every_series_is_served_and_promoting_one_leaves_the_other_untouched(home):
    with Server(home, "--api-key", KEY) as s:
        assert s.get("/readyz").json() == {"status": "ready", "series": [
            {"symbol": A, "interval": "1h", "model_version": 2}, {"symbol": B, "interval": "1h", "model_version": 4}]}
        a, b = forecast(s, A), forecast(s, B)
        assert (a["model_version"], a["symbol"]) == (2, A) and (b["model_version"], b["symbol"]) == (4, B)
        assert forecast(s, B) == b  # cached per series
        # Neither is the default BTCUSD 1h: a request that names no series is refused, naming both.
        r = s.get("/api/v1/forecast")
        assert r.status_code == 400 and A in r.json()["detail"] and B in r.json()["detail"], r.text
        assert s.get("/api/v1/forecast", params={"symbol": B}).json() == b  # the only B series
        r = s.get("/api/v1/forecast", params={"symbol": "XRPUSD", "interval": "1h"})
        assert r.status_code == 404 and r.json()["errors"][0]["field"] == "symbol", r.text
        # POST /api/v1/predict reads the series from its body and answers with that series' champion.
        predicted = s.post("/api/v1/predict", json=window_body(s, B))
        assert predicted.status_code == 200 and predicted.json()["model_version"] == 4, predicted.text
        r = s.post("/api/v1/predict", json={**window_body(s, B), "interval": "4h"})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "interval", r.text
        # Every registered model with its aliases, and what serves it.
        models = s.get("/api/v1/models").json()
        assert models["registered_models"] == [
            {"name": MODEL_A, "symbol": A, "interval": "1h", "aliases": {"champion": 2}, "serving": 2},
            {"name": MODEL_B, "symbol": B, "interval": "1h", "aliases": {"champion": 4}, "serving": 4}]
        assert [(m["version"], m["registered_model"], m["champion"]) for m in models["models"]] == [
            (1, MODEL_A, False), (2, MODEL_A, True), (3, MODEL_B, False), (4, MODEL_B, True)]
        metrics = s.get("/metrics").text
        for symbol, version in ((A, 2), (B, 4)):
            assert f'btcml_model_version{{symbol="{symbol}",interval="1h"}} {version}\n' in metrics

        # A promotion through the API promotes within the version's own registered model and reloads only A.
        r = s.post("/api/v1/models/1/promote", headers={"X-API-Key": KEY})
        assert r.json() == {"version": 1, "registered_model": MODEL_A, "champion": True, "previous": 2}
        s.wait_for(lambda: forecast(s, A)["model_version"] == 1, what="A's reload")
        assert forecast(s, B) == b
        # The CLI's promotion of B's older version reloads only B.
        out = home.json("models", "promote", "3")
        assert out["registered_model"] == MODEL_B and out["previous"] == 4
        s.wait_for(lambda: forecast(s, B)["model_version"] == 3, what="B's reload")
        assert forecast(s, A)["model_version"] == 1
        assert swaps(s, A) == [2, 1] and swaps(s, B) == [4, 3]
        metrics = s.get("/metrics").text
        for symbol, version in ((A, 1), (B, 3)):
            assert f'btcml_model_version{{symbol="{symbol}",interval="1h"}} {version}\n' in metrics


def test_the_cli_resolves_champion_per_series(home):
    assert home.json("predict", "--symbol", A, "--interval", "1h")["model_version"] == 2
    assert home.json("predict", "--symbol", B)["model_version"] == 4
    p = home.run("predict", check=False)  # two series, neither the default BTCUSD 1h
    assert p.returncode == 2 and A in p.stderr and B in p.stderr, p.stderr
    assert home.json("models", "show", "champion", "--symbol", B)["version"] == 4
    assert home.json("models", "list", "--symbol", B)["models"][0]["name"] == MODEL_B
    p = home.run("models", "show", "champion", "--name", MODEL_B, "--symbol", B, check=False)
    assert p.returncode == 2 and "--name" in p.stderr, p.stderr
    exported = home.json("models", "export", "champion", "--symbol", B, "--out", home.home.parent / "export")
    assert exported["model_version"] == 4
    # Rolling back one series leaves the other's champion where it was.
    home.json("models", "promote", "1")
    rolled = home.json("models", "rollback", "--symbol", A, "--interval", "1h")
    assert (rolled["registered_model"], rolled["champion"], rolled["previous"]) == (MODEL_A, 2, 1)
    assert {m["name"]: m["aliases"] for m in home.json("models", "list")["models"]} == {
        MODEL_A: {"champion": 2}, MODEL_B: {"champion": 4}}


@pytest.mark.timeout(300)
def test_a_series_that_gains_its_first_champion_is_served_without_a_restart(home):
    c = "SOLUSD-SYNTH"
    home.json("ingest", "synthetic:9", "--symbol", c, "--from", "2023-01-01", "--to", "2023-06-30")
    with Server(home) as s:
        assert [e["symbol"] for e in s.get("/readyz").json()["series"]] == [A, B]
        r = s.get("/api/v1/forecast", params={"symbol": c, "interval": "1h"})
        assert r.status_code == 404 and A in r.json()["detail"], r.text
        trained = home.json("train", "--symbol", c, *TINY, "3")
        assert trained["model_version"] == 5 and trained["promoted"] is True
        s.wait_for(lambda: s.get("/api/v1/forecast", params={"symbol": c, "interval": "1h"}).status_code == 200,
                   what="the new series served")
        assert forecast(s, c)["model_version"] == 5
        assert [(e["symbol"], e["model_version"]) for e in s.get("/readyz").json()["series"]] == [
            (A, 2), (B, 4), (c, 5)]
        assert forecast(s, A)["model_version"] == 2 and swaps(s, A) == [2] and swaps(s, B) == [4]


@pytest.mark.timeout(300)
def test_hot_reload_of_one_series_under_load_fails_no_request_and_never_touches_the_other(home):
    with Server(home, "--api-key", KEY) as s:
        with Hammer(s, A) as load_a, Hammer(s, B) as load_b:
            for i in range(4):
                load_a.wait_for_more()
                version = 1 if i % 2 == 0 else 2
                if i < 2:
                    assert s.post(f"/api/v1/models/{version}/promote", headers={"X-API-Key": KEY}).status_code == 200
                else:
                    home.json("models", "promote", str(version))  # another process: the CLI
                s.wait_for(lambda: forecast(s, A)["model_version"] == version, what=f"A's reload to {version}")
            load_a.wait_for_more()
            load_b.wait_for_more()
        assert load_a.failures == [] and load_b.failures == []
        assert load_a.versions == {1, 2} and load_b.versions == {4}
        assert swaps(s, A) == [2, 1, 2, 1, 2] and swaps(s, B) == [4]
