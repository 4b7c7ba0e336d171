"""Logs shipped to a real OpenSearch 3.8 (log_sink) and found there with a search: a failed request by its trace.id,
a pipeline run by its reason; with OpenSearch stopped serving goes on, the dropped-log counter rises, and shipping
resumes when it is back. OpenSearch starts once for the module (about 12 s on an idle machine)."""
import re
import secrets
import time

import pytest
import requests

from conftest import Btcml
from opensearch import OpenSearch
from serving import Server

SYMBOL = "BTCUSD-SYNTH"
RETRAIN = f"retrain-{SYMBOL}-1h"
TINY = ["--symbol", SYMBOL, "--window", "24", "--hidden", "8", "--layers", "1", "--epochs", "2",
        "--samples-per-epoch", "256", "--seed", "3"]
KEY = "ops-test-key"


@pytest.fixture(scope="module")
def opensearch(tmp_path_factory):
    server = OpenSearch(tmp_path_factory.mktemp("opensearch"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


def sink_env(opensearch: OpenSearch, index: str, **extra) -> dict:
    return {"BTCML_LOG_SINK": opensearch.url, "BTCML_LOG_SINK_INDEX": index, "BTCML_LOG_SINK_FLUSH_MS": "100",
            **extra}


def metric(server: Server, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", server.get("/metrics").text, re.M)
    assert match, f"{name} is not in /metrics"
    return float(match.group(1))


@pytest.mark.timeout(300)
def test_a_failed_request_is_found_by_its_trace_id(opensearch, btcml_sqlite):
    index = "btcml-logs-request"
    with Server(btcml_sqlite, "--api-key", KEY, env=sink_env(opensearch, index)) as s:
        r = s.post("/api/v1/pipelines/no-such-pipeline/runs", json={"reason": "x"}, headers={"X-API-Key": KEY})
        assert r.status_code == 404
        trace_id = r.headers["X-Trace-Id"]
        assert re.fullmatch(r"[0-9a-f]{32}", trace_id)
        # A caller's W3C trace continues here.
        parent = secrets.token_hex(16)
        assert s.get("/healthz", headers={"traceparent": f"00-{parent}-{secrets.token_hex(8)}-01"}).headers[
            "X-Trace-Id"] == parent
        hits = opensearch.wait_for_hits(index, {"term": {"trace.id": trace_id}})
    assert len(hits) == 1, hits
    event = hits[0]
    assert event["message"] == "request" and event["log.level"] == "info"
    assert event["http.request.method"] == "POST" and event["http.response.status_code"] == 404
    assert event["url.path"] == "/api/v1/pipelines/{name}/runs" and event["event.outcome"] == "failure"
    assert event["service.name"] == "btcml" and event["service.version"] and event["event.dataset"] == "btcml.access"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", event["@timestamp"])
    # The shipper installed its index template first: the status code is a number, the trace id a keyword.
    template = requests.get(f"{opensearch.url}/_index_template/{index}", timeout=30).json()
    mapping = template["index_templates"][0]["index_template"]["template"]["mappings"]["properties"]
    assert mapping["trace"]["properties"]["id"]["type"] == "keyword"
    assert opensearch.search(index, {"term": {"http.response.status_code": 404}})


@pytest.mark.timeout(600)
def test_a_pipeline_run_is_found_with_its_reason(opensearch, btcml_sqlite):
    b = btcml_sqlite
    b.json("ingest", "synthetic:7")
    (b.home / "config.yaml").write_text(f"series:\n  - symbol: {SYMBOL}\n    interval: 1h\n"
                                        "pipelines:\n  retrain_every: never\n")
    b.json("train", *TINY)
    index = "btcml-logs-pipeline"
    reason = f"drift alert {secrets.token_hex(4)}"
    run = b.json("pipeline", "run", RETRAIN, "--reason", reason, "--wait", env=sink_env(opensearch, index))["run"]
    assert run["status"] == "succeeded", run
    # The command sent what it had queued before it exited.
    finished = opensearch.wait_for_hits(index, {"bool": {"filter": [
        {"term": {"event.action": "pipeline-run-finished"}}, {"term": {"event.reason": reason}}]}})
    assert len(finished) == 1, finished
    event = finished[0]
    assert event["btcml.pipeline.name"] == RETRAIN and event["btcml.pipeline.run_id"] == run["id"]
    assert event["btcml.pipeline.status"] == "succeeded" and event["event.outcome"] == "success"
    assert event["event.dataset"] == "btcml.pipeline"
    # Every event of the run shares its trace id.
    same_run = opensearch.search(index, {"term": {"trace.id": event["trace.id"]}})
    assert [e["message"] for e in same_run][0] == "pipeline run started", same_run
    assert same_run[0]["event.reason"] == reason and same_run[-1]["message"] == "pipeline run finished"


@pytest.mark.timeout(600)
def test_serving_goes_on_while_opensearch_is_down_and_shipping_resumes(opensearch, btcml_sqlite):
    index = "btcml-logs-outage"
    env = sink_env(opensearch, index, BTCML_LOG_SINK_QUEUE="20")
    with Server(btcml_sqlite, env=env) as s:
        first = s.get("/healthz").headers["X-Trace-Id"]
        opensearch.wait_for_hits(index, {"term": {"trace.id": first}})
        shipped = metric(s, "btcml_log_events_shipped_total")
        assert shipped >= 1
        opensearch.stop()
        try:
            # Every request is answered at once while the log store is down; the queue of 20 overflows.
            for _ in range(100):
                started = time.monotonic()
                assert s.get("/healthz").status_code == 200
                assert time.monotonic() - started < 5
            dropped = 'btcml_log_events_dropped_total{reason="queue_full"}'
            assert metric(s, dropped) >= 60
            assert metric(s, "btcml_log_sink_failed_requests_total") >= 1
        finally:
            opensearch.start()
        # The shipper retries with a backoff of at most 10 s, then sends what it held and what queued meanwhile (at
        # most the /metrics request before this one is left)...
        s.wait_for(lambda: metric(s, "btcml_log_events_shipped_total") > shipped
                   and metric(s, "btcml_log_events_queued") <= 1, timeout=90, what="the queue to drain")
        # ...and what comes after.
        parent = secrets.token_hex(16)
        s.get("/healthz", headers={"traceparent": f"00-{parent}-{secrets.token_hex(8)}-01"})
        opensearch.wait_for_hits(index, {"term": {"trace.id": parent}}, timeout=60)
        warned = [line["message"] for line in s.log_lines() if line["message"].startswith("log sink:")]
        assert warned[:2] == ["log sink: the log store is unreachable; events queue and are retried (dropped once "
                              "the queue is full)", "log sink: shipping again"], warned


@pytest.mark.timeout(300)
def test_events_the_store_refuses_are_counted_and_logged_with_its_ecs_error_type(opensearch, btcml_sqlite):
    index = "btcml-logs-refused"
    # A template above btcml's (priority 200) makes the data stream's mapping strict: OpenSearch refuses every event
    # that has a field besides @timestamp, one by one, in a bulk reply that is 200 as a whole.
    r = requests.put(f"{opensearch.url}/_index_template/btcml-test-strict", timeout=30, json={
        "index_patterns": [f"{index}*"], "data_stream": {}, "priority": 500,
        "template": {"mappings": {"dynamic": "strict", "properties": {"@timestamp": {"type": "date"}}}}})
    assert r.status_code == 200, r.text
    with Server(btcml_sqlite, env=sink_env(opensearch, index)) as s:
        s.wait_for(lambda: metric(s, 'btcml_log_events_dropped_total{reason="rejected"}') > 0, 60,
                   "refused events to be counted")
        refused = [e for e in s.log_lines() if e["message"] == "log sink: the log store refused some events"]
    assert refused, "the refusal was not logged"
    assert refused[0]["error.type"] == "strict_dynamic_mapping_exception", refused[0]
    assert "strict" in refused[0]["error.message"] and not refused[0]["error.message"].startswith("{"), refused[0]
