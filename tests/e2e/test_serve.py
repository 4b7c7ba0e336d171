"""btcml serve through the real binary over HTTP: every endpoint, every error class, auth, metrics, docs, logs."""
import json
import socket
import subprocess
from datetime import datetime, timedelta, timezone

import pytest
import requests

from conftest import Btcml, copy_home
from serving import Server

SYMBOL = "BTCUSD-SYNTH"
MODEL = f"btcml-{SYMBOL}-1h"
SERIES = f'symbol="{SYMBOL}",interval="1h"'  # the labels of a series' metrics
TINY = ["--symbol", SYMBOL, "--window", "24", "--hidden", "8", "--layers", "1", "--epochs", "1",
        "--samples-per-epoch", "128", "--seed", "3"]
KEY = "s3cret-key-for-tests"


@pytest.fixture(scope="module")
def trained_home(tmp_path_factory):
    """A home with synthetic bars and two tiny models (version 2 is the champion); tests copy it."""
    b = Btcml(tmp_path_factory.mktemp("trained") / "home", None)
    b.json("ingest", "synthetic:7")
    b.json("train", *TINY)
    b.json("train", *TINY[:-1], "4", "--force-promote")  # whatever the promotion gate says
    return b.home


@pytest.fixture
def home(trained_home, tmp_path):
    return copy_home(trained_home, tmp_path)


@pytest.fixture
def server(home):
    with Server(home, "--api-key", KEY) as s:
        yield s


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def window(server, n=25):
    """The last n stored bars as a predict body."""
    last = parse(server.get("/api/v1/forecast").json()["as_of"])
    page = server.get("/api/v1/bars", params={"from": iso(last - timedelta(hours=n - 1))}).json()
    assert page["next_cursor"] is None and len(page["bars"]) == n
    return {"symbol": SYMBOL, "interval": "1h", "bars": page["bars"]}


def problem(resp, status, field=None):
    assert resp.status_code == status, resp.text
    assert resp.headers["Content-Type"] == "application/problem+json"
    body = resp.json()
    assert {"type", "title", "status", "detail"} <= set(body) and body["status"] == status
    if field is not None:
        assert [e["field"] for e in body["errors"]] == [field], body
    return body


def test_health_readiness_and_forecast(server, home):
    assert server.get("/healthz").json() == {"status": "ok"}
    assert server.get("/readyz").json() == {
        "status": "ready", "series": [{"symbol": SYMBOL, "interval": "1h", "model_version": 2}]}
    r = server.get("/api/v1/forecast")
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    f = r.json()
    assert f["model_version"] == 2 and f["symbol"] == SYMBOL and f["interval"] == "1h"
    assert [h["horizon"] for h in f["forecasts"]] == [1, 6, 24]
    for h in f["forecasts"]:
        assert h["lower"] <= h["price"] <= h["upper"]
    # The same as the CLI's forecast of the same model and bars.
    assert home.json("predict") == f
    assert server.get("/api/v1/forecast", params={"symbol": SYMBOL, "interval": "1h"}).json() == f
    problem(server.get("/api/v1/forecast", params={"symbol": "ETHUSD"}), 404, "symbol")
    problem(server.get("/api/v1/forecast", params={"interval": "4h"}), 404, "interval")
    problem(server.get("/api/v1/forecast", params={"interval": "1x"}), 400, "interval")


def test_readyz_without_a_model(tmp_path):
    b = Btcml(tmp_path / "home", None)
    b.json("ingest", "synthetic:7")
    with Server(b) as s:
        assert s.get("/healthz").status_code == 200
        assert "no model is loaded yet" in problem(s.get("/readyz"), 503)["detail"]
        problem(s.get("/api/v1/forecast"), 503)


def test_predict_matches_forecast_and_stores_each_prediction_once(server):
    forecast = server.get("/api/v1/forecast").json()
    body = window(server)
    r = server.post("/api/v1/predict", json=body)
    assert r.status_code == 200, r.text
    assert r.json() == dict(forecast, bars_used=25)
    for _ in range(3):
        assert server.post("/api/v1/predict", json=body).json() == dict(forecast, bars_used=25)
    # Another window: another prediction.
    shifted = dict(body, bars=window(server, 26)["bars"][:-1])
    assert server.post("/api/v1/predict", json=shifted).json()["as_of"] < forecast["as_of"]
    # Predictions are stored in the order they were made: once a third window's are stored, every earlier request's
    # are too, so the count below is final.
    marker = dict(body, bars=window(server, 27)["bars"][:-2])
    marker_origin = server.post("/api/v1/predict", json=marker).json()["as_of"]

    def stored(**params):
        return server.get("/api/v1/predictions", params=params).json()["predictions"]

    server.wait_for(lambda: any(p["origin_time"] == marker_origin for p in stored()), what="the third window's")
    preds = [p for p in stored() if p["origin_time"] != marker_origin]
    assert len(preds) == 6, "identical requests must store one set of predictions"
    # The older window's first horizon targets a stored bar: realised price and error are known.
    realised = [p for p in preds if p["realised"] is not None]
    assert realised and all(p["error"] == pytest.approx(p["realised"] - p["price"]) for p in realised)
    assert all(p["realised"] is None and p["error"] is None for p in preds if p["origin_time"] == forecast["as_of"])
    # from/to select by target time.
    late = [p for p in stored(**{"from": forecast["forecasts"][0]["target_time"]}) if p["origin_time"] != marker_origin]
    assert 3 <= len(late) < 6
    assert all(p["target_time"] >= forecast["forecasts"][0]["target_time"] for p in late)


@pytest.mark.parametrize("mutate,status,field", [
    (lambda b: "{not json", 400, "body"),
    (lambda b: json.dumps(b).replace('"close": ', '"close": NaN, "x": ', 1), 400, "body"),
    (lambda b: "[1, 2]", 422, "body"),
    (lambda b: dict(b, symbol=5), 422, "symbol"),
    (lambda b: dict(b, symbol="ETHUSD"), 422, "symbol"),
    (lambda b: dict(b, interval="4h"), 422, "interval"),
    (lambda b: dict(b, interval="soon"), 422, "interval"),
    (lambda b: {k: v for k, v in b.items() if k != "bars"}, 422, "bars"),
    (lambda b: dict(b, bars="many"), 422, "bars"),
    (lambda b: dict(b, bars=b["bars"][1:]), 422, "bars"),
    (lambda b: dict(b, bars=b["bars"] + b["bars"][:1]), 422, "bars[25].time"),
    (lambda b: dict(b, bars=[7] + b["bars"][1:]), 422, "bars[0]"),
    (lambda b: dict(b, bars=[dict(b["bars"][0], close="1.5")] + b["bars"][1:]), 422, "bars[0].close"),
    (lambda b: dict(b, bars=[dict(b["bars"][0], low=-3)] + b["bars"][1:]), 422, "bars[0].low"),
    (lambda b: dict(b, bars=[dict(b["bars"][0], open=1e400)] + b["bars"][1:]), 400, "body"),  # overflows
    (lambda b: dict(b, bars=[dict(b["bars"][0], volume=-1)] + b["bars"][1:]), 422, "bars[0].volume"),
    (lambda b: dict(b, bars=[dict(b["bars"][0], high=1)] + b["bars"][1:]), 422, "bars[0].high"),
    (lambda b: dict(b, bars=[dict(b["bars"][0], time="yesterday")] + b["bars"][1:]), 422, "bars[0].time"),
    (lambda b: dict(b, bars=b["bars"][:3] + b["bars"][4:] + b["bars"][:1]), 422, "bars[3].time"),
])
def test_predict_rejects_bad_bodies_naming_the_field(server, mutate, status, field):
    body = mutate(window(server))
    data = body if isinstance(body, str) else json.dumps(body).replace("Infinity", "1e400")
    problem(server.post("/api/v1/predict", data=data, headers={"Content-Type": "application/json"}), status, field)


def test_oversized_bodies_wrong_media_types_methods_and_paths(home):
    with Server(home, "--body-limit", "4096") as s:
        problem(s.post("/api/v1/predict", data=b"{" + b" " * 10000 + b"}",
                       headers={"Content-Type": "application/json"}), 413)
        assert s.get("/healthz").status_code == 200, "the server survives"
        problem(s.post("/api/v1/predict", data="symbol=x", headers={"Content-Type": "text/plain"}), 400, "body")
        r = s.get("/api/v1/predict")
        problem(r, 405)
        assert r.headers["Allow"] == "POST"
        problem(s.get("/api/v1/nothing"), 404)


def test_a_slow_client_gets_408_and_others_are_served(home):
    with Server(home, "--request-timeout", "0.5") as s:
        with socket.create_connection(("127.0.0.1", s.port)) as slow:
            slow.sendall(b"POST /api/v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
            assert s.get("/healthz").status_code == 200
            slow.settimeout(5)
            reply = slow.recv(4096).decode()
        assert reply.startswith("HTTP/1.1 408"), reply
        assert "application/problem+json" in reply


def test_bars_paging_json_and_csv(server):
    first = server.get("/api/v1/bars", params={"limit": 100}).json()
    assert first["symbol"] == SYMBOL and len(first["bars"]) == 100 and first["next_cursor"]
    second = server.get("/api/v1/bars", params={"limit": 100, "cursor": first["next_cursor"]}).json()
    assert second["bars"][0]["time"] > first["bars"][-1]["time"]
    both = server.get("/api/v1/bars", params={"limit": 200}).json()
    assert both["bars"] == first["bars"] + second["bars"]
    r = server.get("/api/v1/bars", params={"limit": 3, "from": first["bars"][5]["time"]},
                   headers={"Accept": "text/csv"})
    assert r.headers["Content-Type"].startswith("text/csv")
    lines = r.text.splitlines()
    assert lines[0] == "time,open,high,low,close,volume" and len(lines) == 4
    assert lines[1].startswith(first["bars"][5]["time"] + ",")
    assert r.headers["X-Next-Cursor"]
    problem(server.get("/api/v1/bars", params={"limit": 0}), 400, "limit")
    problem(server.get("/api/v1/bars", params={"from": "someday"}), 400, "from")
    problem(server.get("/api/v1/bars", params={"cursor": "abc"}), 400, "cursor")
    assert server.get("/api/v1/bars", params={"symbol": "NONE"}).json()["bars"] == []


def test_post_bars_needs_a_key_validates_like_ingest_and_refreshes_the_forecast(server):
    before = server.get("/api/v1/forecast").json()
    last = server.get("/api/v1/bars", params={"from": before["as_of"]}).json()["bars"][-1]
    t = iso(parse(last["time"]) + timedelta(hours=1))
    good = dict(last, time=t)
    bad = dict(last, time=t, close=-5)
    body = {"symbol": SYMBOL, "interval": "1h", "bars": [good, bad, "junk"]}
    problem(server.post("/api/v1/bars", json=body), 401)
    problem(server.post("/api/v1/bars", json=body, headers={"X-API-Key": "wrong"}), 401)
    r = server.post("/api/v1/bars", json=body, headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 201, r.text
    s = r.json()
    assert s["rows_read"] == 3 and s["rows_inserted"] == 1 and s["rows_rejected"] == 2
    assert s["rejected_reasons"] == {"non_positive_price": 1, "bad_field_count": 1}
    again = server.post("/api/v1/bars", json={**body, "bars": [good]}, headers={"X-API-Key": KEY})
    assert again.status_code == 200 and again.json()["rows_duplicate"] == 1
    # The cached forecast moves on to the new bar at once.
    after = server.get("/api/v1/forecast").json()
    assert after["as_of"] == t and after != before
    runs = server.get("/api/v1/runs").json()
    assert runs["ingest_runs"][0]["source"] == "api" and runs["ingest_runs"][0]["rows_rejected"] == 0
    assert runs["ingest_runs"][1]["rows_rejected"] == 2
    problem(server.post("/api/v1/bars", json={**body, "interval": "1x"}, headers={"X-API-Key": KEY}), 422, "interval")
    problem(server.post("/api/v1/bars", json={**body, "bars": []}, headers={"X-API-Key": KEY}), 422)


def test_models_runs_and_promotion(server, home):
    models = server.get("/api/v1/models").json()
    assert models["registered_models"] == [{"name": MODEL, "symbol": SYMBOL, "interval": "1h",
                                            "aliases": {"champion": 2}, "serving": 2}]
    assert [m["version"] for m in models["models"]] == [1, 2]
    assert [m["champion"] for m in models["models"]] == [False, True]
    assert [m["registered_model"] for m in models["models"]] == [MODEL, MODEL]
    card = server.get("/api/v1/models/1").json()
    assert card["version"] == 1 and card["champion"] is False and card["window"] == 24
    assert card["registered_model"] == MODEL and card["aliases"] == []
    problem(server.get("/api/v1/models/9"), 404)
    problem(server.get("/api/v1/models/x"), 400, "version")
    problem(server.post("/api/v1/models/1/promote"), 401)
    problem(server.post("/api/v1/models/9/promote", headers={"X-API-Key": KEY}), 404)
    r = server.post("/api/v1/models/1/promote", headers={"X-API-Key": KEY})
    assert r.json() == {"version": 1, "registered_model": MODEL, "champion": True, "previous": 2}
    problem(server.post("/api/v1/models/1/promote", headers={"X-API-Key": KEY}), 409)
    server.wait_for(lambda: server.get("/api/v1/forecast").json()["model_version"] == 1, what="hot reload")
    # The store's alias table is the one record of the champion: no file names it.
    assert home.json("models", "list")["models"][0]["aliases"] == {"champion": 1}
    assert not (home.home / "models" / "champion").exists()
    runs = server.get("/api/v1/runs").json()
    assert [r["model_version"] for r in runs["training_runs"]] == [2, 1]
    assert runs["ingest_runs"][0]["source"] == "synthetic:7"
    problem(server.get("/api/v1/runs", params={"limit": "x"}), 400, "limit")


def test_read_keys_and_no_key_in_logs(home):
    with Server(home, env={"BTCML_API_KEY": f"other,{KEY}"}) as s:
        assert s.get("/api/v1/forecast").status_code == 200
    with Server(home, "--api-key", KEY, "--require-key-for-reads") as s:
        problem(s.get("/api/v1/forecast"), 401)
        problem(s.get("/api/v1/bars"), 401)
        assert s.get("/api/v1/forecast", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
        assert s.get("/healthz").status_code == 200 and s.get("/metrics").status_code == 200
        s.get("/api/v1/forecast", params={"k": KEY}, headers={"X-API-Key": KEY})
        assert s.terminate() == 0
        log = s.log_path.read_text()
        assert KEY not in log
    access = [line for line in s.log_lines() if line["message"] == "request"]
    assert access and {"http.request.method", "url.path", "http.response.status_code", "http.response.body.bytes",
                       "event.duration"} <= set(access[0])
    assert {(a["url.path"], a["http.response.status_code"]) for a in access} >= {("/api/v1/forecast", 401),
                                                                                ("/api/v1/forecast", 200)}
    assert "--require-key-for-reads needs" in home.run("serve", "--require-key-for-reads", check=False).stderr


def test_metrics_pass_promtool(server):
    server.get("/api/v1/forecast")
    server.get("/api/v1/nothing")
    server.wait_for(lambda: "btcml_predictions_stored_total 3" in server.get("/metrics").text, what="stored")
    text = server.get("/metrics").text
    assert server.get("/metrics").headers["Content-Type"].startswith("text/plain; version=0.0.4")
    check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    for needle in ['btcml_http_requests_total{route="/api/v1/forecast",method="GET",status="200"} 1',
                   'btcml_http_requests_total{route="unmatched",method="GET",status="404"} 1',
                   'btcml_http_request_duration_seconds_bucket{route="/api/v1/forecast",method="GET",status="200",le="+Inf"} 1',
                   "btcml_http_requests_in_flight 1", f'btcml_model_info{{{SERIES},version="2"}} 1',
                   f"btcml_model_version{{{SERIES}}} 2", f"btcml_model_load_duration_seconds{{{SERIES}}} ",
                   f'btcml_forecast_price{{{SERIES},horizon="24",quantity="upper"}}',
                   f"btcml_latest_bar_age_seconds{{{SERIES}}} ", "btcml_process_cpu_seconds_total ",
                   "btcml_process_resident_memory_bytes ", "btcml_process_open_fds "]:
        assert needle in text, needle


def test_openapi_describes_every_route_and_docs_are_served_without_a_cdn(server):
    doc = server.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op["responses"], (method, path)
            if "{" not in path and method == "get":
                assert server.get(path).status_code != 404, path
    page = server.get("/docs")
    assert page.headers["Content-Type"].startswith("text/html")
    assert "/docs/swagger-ui-bundle.js" in page.text and "://" not in page.text
    js = server.get("/docs/swagger-ui-bundle.js")
    assert js.status_code == 200 and len(js.content) > 100_000 and "SwaggerUIBundle" in js.text
    assert server.get("/docs/swagger-ui.css").status_code == 200
    problem(server.get("/docs/other.js"), 404)


def test_serve_on_postgresql(tmp_path, pg_url):
    b = Btcml(tmp_path / "home", pg_url)
    b.json("ingest", "synthetic:7")
    # The registry (which version is each series' champion) lives in the store: train into this one.
    b.json("train", *TINY)
    b.json("train", *TINY[:-1], "4", "--force-promote")
    with Server(b, "--api-key", KEY) as s:
        f = s.get("/api/v1/forecast").json()
        assert f["model_version"] == 2
        assert s.post("/api/v1/predict", json=window(s)).json() == dict(f, bars_used=25)
        s.wait_for(lambda: len(s.get("/api/v1/predictions").json()["predictions"]) == 3, what="predictions")
        r = s.post("/api/v1/bars", json={"symbol": "X", "interval": "1h",
                                         "bars": [{"time": "2024-01-01T00:00:00Z", "open": 1, "high": 2, "low": 1,
                                                   "close": 2, "volume": 0}]}, headers={"X-API-Key": KEY})
        assert r.status_code == 201 and s.get("/api/v1/runs").json()["ingest_runs"][0]["source"] == "api"
