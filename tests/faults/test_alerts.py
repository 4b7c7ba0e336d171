"""POST /api/v1/alerts under bad input: unauthenticated, malformed, replayed and repeated notifications, alerts for
unknown series, resolved alerts, and a trigger while a retrain is already active. The notifications are shaped
exactly like Alertmanager's webhook (version 4); test_closed_loop.py has real Alertmanager send them."""
import copy

import pytest

from alerting import Alertmanager, Prometheus, always_firing_retrain, store_rows, wait_until, write_series_config
from conftest import Btcml
from serving import Server
from test_serve_faults import private_pg  # noqa: F401 (a fixture: a PostgreSQL server this test may stop)

TOKEN = "alert-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def alert(fingerprint="fp-btc", starts_at="2026-11-30T04:00:00Z", status="firing", **labels):
    labels = {"alertname": "BtcmlLiveCoverageOutOfBand", "action": "retrain", "symbol": "BTCUSD", "interval": "1h",
              **labels}
    return {"status": status, "labels": {k: v for k, v in labels.items() if v is not None},
            "annotations": {"summary": "live coverage 0.41 outside 0.65-0.95"}, "startsAt": starts_at,
            "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://127.0.0.1:9090/graph",
            "fingerprint": fingerprint}


def notification(*alerts, group_key='{}/{action="retrain"}:{interval="1h", symbol="BTCUSD"}'):
    return {"version": "4", "groupKey": group_key, "truncatedAlerts": 0, "status": alerts[0]["status"],
            "receiver": "btcml-retrain", "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
            "externalURL": "http://127.0.0.1:9093", "alerts": list(alerts)}


def runs(btcml):
    return store_rows(btcml, "SELECT id, pipeline, trigger_kind, reason, status FROM pipeline_runs ORDER BY id")


def recorded(btcml):
    return store_rows(btcml, "SELECT fingerprint, status, alertname, outcome, run_id FROM alert_notifications "
                             "ORDER BY received_ms, fingerprint")


@pytest.fixture
def server(btcml):
    write_series_config(btcml.home, [("BTCUSD", "1h"), ("ETHUSD", "1h")])
    with Server(btcml, "--alert-token", TOKEN, "--api-key", "an-api-key") as s:
        s.btcml = btcml
        yield s


@pytest.mark.timeout(120)
def test_a_firing_alert_queues_one_retrain_and_a_replay_starts_nothing(server):
    body = notification(alert())
    r = server.post("/api/v1/alerts", json=body, headers=AUTH)
    assert r.status_code == 202, r.text
    reply = r.json()
    run_id = reply["alerts"][0]["run_id"]
    assert reply["run_ids"] == [run_id]
    assert reply["alerts"][0]["created"] is True
    assert reply["alerts"][0]["pipeline"] == "retrain-BTCUSD-1h"
    [run] = runs(server.btcml)
    assert (run["id"], run["pipeline"], run["trigger_kind"], run["status"]) == (run_id, "retrain-BTCUSD-1h",
                                                                                "alert", "queued")
    # The run's reason is the alert: its name, since when, its summary and fingerprint.
    assert "BtcmlLiveCoverageOutOfBand" in run["reason"] and "2026-11-30T04:00:00Z" in run["reason"]
    assert "live coverage 0.41" in run["reason"] and "fp-btc" in run["reason"]

    # Alertmanager resends a notification it is unsure was delivered: the same alert again is a duplicate.
    again = server.post("/api/v1/alerts", json=body, headers=AUTH)
    assert again.status_code == 200, again.text
    assert again.json()["alerts"][0]["outcome"].startswith("duplicate")
    assert again.json()["run_ids"] == []
    assert len(runs(server.btcml)) == 1
    [row] = recorded(server.btcml)
    assert row["run_id"] == run_id and row["outcome"] == f"queued run {run_id} of retrain-BTCUSD-1h"


@pytest.mark.timeout(120)
def test_a_new_alert_while_a_retrain_is_active_joins_it(server):
    first = server.post("/api/v1/alerts", json=notification(alert()), headers=AUTH).json()["run_ids"][0]
    # The same rule fired again (a new startsAt) and another rule for the same series: both join the queued run.
    r = server.post("/api/v1/alerts", headers=AUTH, json=notification(
        alert(starts_at="2026-11-30T05:00:00Z"), alert(fingerprint="fp-drift", alertname="BtcmlFeatureDrift")))
    assert r.status_code == 202, r.text
    assert r.json()["run_ids"] == [first]
    assert [a["created"] for a in r.json()["alerts"]] == [False, False]
    assert all(f"joined run {first}" in a["outcome"] for a in r.json()["alerts"])
    assert len(runs(server.btcml)) == 1
    # Another series has a retrain pipeline of its own.
    other = server.post("/api/v1/alerts", headers=AUTH,
                        json=notification(alert(fingerprint="fp-eth", symbol="ETHUSD"))).json()
    assert other["alerts"][0]["pipeline"] == "retrain-ETHUSD-1h" and other["alerts"][0]["created"] is True
    assert [r["pipeline"] for r in runs(server.btcml)] == ["retrain-BTCUSD-1h", "retrain-ETHUSD-1h"]


@pytest.mark.timeout(120)
def test_resolved_unlabelled_and_unknown_series_alerts_are_recorded_not_acted_on(server):
    body = notification(
        alert(fingerprint="fp-resolved", status="resolved"),
        alert(fingerprint="fp-people", alertname="BtcmlDataStale", action=None),
        alert(fingerprint="fp-unknown", symbol="DOGEUSD"),
        alert(fingerprint="fp-nolabels", symbol=None),
        alert(fingerprint="fp-badinterval", interval="hourly"))
    r = server.post("/api/v1/alerts", json=body, headers=AUTH)
    # Nothing a retry could fix: 200, so that Alertmanager does not resend it; each alert says what happened.
    assert r.status_code == 200, r.text
    outcomes = {a["fingerprint"]: a["outcome"] for a in r.json()["alerts"]}
    assert outcomes["fp-resolved"].startswith("recorded: a resolved alert")
    assert outcomes["fp-people"].startswith("recorded: no action")
    assert "no pipeline retrain-DOGEUSD-1h is configured" in outcomes["fp-unknown"]
    assert "retrain-BTCUSD-1h, retrain-ETHUSD-1h" in outcomes["fp-unknown"]
    assert "needs the labels symbol and interval" in outcomes["fp-nolabels"]
    assert "'hourly' is not an interval" in outcomes["fp-badinterval"]
    assert runs(server.btcml) == []
    assert {row["fingerprint"]: row["outcome"] for row in recorded(server.btcml)} == outcomes
    warned = {e["btcml.alert.fingerprint"] for e in server.log_lines()
              if e.get("message") == "alert received" and e["log.level"] == "warn"}
    assert warned == {"fp-unknown", "fp-nolabels", "fp-badinterval"}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("headers, detail", [
    ({}, "a valid alert token is required"),
    ({"Authorization": "Bearer not-the-token"}, "a valid alert token is required"),
    # An API key opens the write routes, not this one: the alert token is Alertmanager's alone.
    ({"Authorization": "Bearer an-api-key"}, "a valid alert token is required"),
    ({"X-API-Key": "an-api-key"}, "a valid alert token is required"),
    # Only Authorization: Bearer carries the token (what Alertmanager sends).
    ({"X-API-Key": TOKEN}, "a valid alert token is required"),
])
def test_unauthenticated_webhooks_are_refused_and_record_nothing(server, headers, detail):
    r = server.post("/api/v1/alerts", json=notification(alert()), headers=headers)
    assert r.status_code == 401, r.text
    assert detail in r.json()["detail"]
    assert r.headers["WWW-Authenticate"] == "Bearer"
    assert recorded(server.btcml) == [] and runs(server.btcml) == []


@pytest.mark.timeout(60)
def test_without_a_configured_token_the_webhook_says_how_to_set_one(btcml_sqlite):
    with Server(btcml_sqlite) as s:
        r = s.post("/api/v1/alerts", json=notification(alert()), headers=AUTH)
        assert r.status_code == 401
        assert "--alert-token or BTCML_ALERT_TOKEN" in r.json()["detail"]


def _malformed_cases():
    good = notification(alert(), alert(fingerprint="fp-2"))

    def changed(edit):
        body = copy.deepcopy(good)
        edit(body)
        return body

    return [
        ("version", changed(lambda b: b.update(version="3")), 'version must be "4"'),
        ("groupKey", changed(lambda b: b.pop("groupKey")), "groupKey must be a non-empty string"),
        ("alerts", changed(lambda b: b.update(alerts={"a": 1})), "alerts must be an array"),
        ("alerts[1]", changed(lambda b: b["alerts"].__setitem__(1, "x")), "alerts[1] must be an object"),
        ("alerts[1].status", changed(lambda b: b["alerts"][1].update(status="pending")),
         "alerts[1].status must be firing or resolved"),
        ("alerts[1].labels", changed(lambda b: b["alerts"][1].pop("labels")), "alerts[1].labels must be an object"),
        ("alerts[1].labels.symbol", changed(lambda b: b["alerts"][1]["labels"].update(symbol=7)),
         "alerts[1].labels.symbol must be a string"),
        ("alerts[1].startsAt", changed(lambda b: b["alerts"][1].update(startsAt="yesterday")),
         "is not an RFC 3339 time"),
        ("alerts[1].fingerprint", changed(lambda b: b["alerts"][1].pop("fingerprint")),
         "alerts[1].fingerprint must be a non-empty string"),
    ]


@pytest.mark.timeout(120)
def test_malformed_notifications_name_the_field_and_record_nothing(server):
    assert server.post("/api/v1/alerts", data="{not json", headers={**AUTH, "Content-Type": "application/json"}
                       ).status_code == 400
    for field, body, detail in _malformed_cases():
        r = server.post("/api/v1/alerts", json=body, headers=AUTH)
        assert r.status_code == 422, (field, r.text)
        problem = r.json()
        assert problem["errors"][0]["field"] == field, problem
        assert detail in problem["detail"], problem
    # Alert 0 of each was valid, yet nothing was kept: the whole notification is refused, so a fixed resend acts.
    assert recorded(server.btcml) == [] and runs(server.btcml) == []
    r = server.post("/api/v1/alerts", json=notification(alert()), headers=AUTH)
    assert r.status_code == 202 and r.json()["alerts"][0]["created"] is True


@pytest.mark.timeout(300)
def test_a_store_outage_is_503_and_the_retried_notification_is_acted_on(private_pg, tmp_path):
    b = Btcml(tmp_path / "home", private_pg.url)
    write_series_config(b.home, [("BTCUSD", "1h")])
    body = notification(alert())
    with Server(b, "--alert-token", TOKEN) as s:
        private_pg.stop()
        r = s.post("/api/v1/alerts", json=body, headers=AUTH)
        # 5xx: Alertmanager retries it, and a retry is what helps here.
        assert r.status_code == 503, r.text
        private_pg.start()
        # Nothing of the failed attempt was kept, so the resend is not a duplicate: it queues the run.
        s.wait_for(lambda: s.post("/api/v1/alerts", json=body, headers=AUTH).status_code != 503, timeout=30,
                   what="the webhook to answer after the restart")
        assert [row["outcome"] for row in recorded(b)] == [f"queued run {runs(b)[0]['id']} of retrain-BTCUSD-1h"]
        assert len(runs(b)) == 1


@pytest.mark.timeout(120)
def test_wrong_tokens_are_rate_limited_like_wrong_api_keys(btcml_sqlite):
    write_series_config(btcml_sqlite.home, [("BTCUSD", "1h")])
    with Server(btcml_sqlite, "--alert-token", TOKEN, "--auth-failures-per-minute", "3") as s:
        statuses = [s.post("/api/v1/alerts", json=notification(alert()),
                           headers={"Authorization": "Bearer guess"}).status_code for _ in range(4)]
        assert statuses == [401, 401, 401, 429]
        # Once limited, even the right token waits: guessing stalls.
        assert s.post("/api/v1/alerts", json=notification(alert()), headers=AUTH).status_code == 429


@pytest.mark.timeout(300)
def test_alertmanager_retries_through_a_store_outage_and_one_run_is_queued(private_pg, tmp_path):
    """Real Alertmanager: its call meets a stopped database (503), it retries, and once the database is back the
    retry queues the run: once, with the alert recorded once."""
    b = Btcml(tmp_path / "home", private_pg.url)
    write_series_config(b.home, [("BTCUSD", "1h")])
    with Server(b, "--alert-token", TOKEN) as s:
        private_pg.stop()

        def webhook_statuses():
            return [e["http.response.status_code"] for e in s.log_lines() if e.get("url.path") == "/api/v1/alerts"]

        with Alertmanager(tmp_path / "am", s.url, TOKEN) as am, \
                Prometheus(tmp_path / "prom", [f"127.0.0.1:{s.port}"], am, extra_rules=always_firing_retrain()):
            wait_until(lambda: 503 in webhook_statuses(), 60, "Alertmanager's call to meet the outage")
            private_pg.start()
            wait_until(lambda: 202 in webhook_statuses(), 60, "Alertmanager's retry to be accepted")
            assert webhook_statuses()[0] == 503
        [run] = runs(b)
        assert run["trigger_kind"] == "alert" and "BtcmlTestRetrain" in run["reason"]
        firing = [a for a in recorded(b) if a["status"] == "firing"]
        assert len(firing) == 1 and firing[0]["run_id"] == run["id"]
