"""deploy/kibana/btcml-saved-objects.ndjson against the saved-objects format that Kibana's import API
(POST /api/saved_objects/_import) and OpenSearch Dashboards' read: one object per line with a unique type and id,
every reference resolving to an object of the file, and a data view whose fields are exactly the index template's
(deploy/opensearch/btcml-logs-template.json) with matching types. Neither Kibana nor OpenSearch Dashboards can be
installed here, so nothing imports it for real."""
import json
import re

import pytest

from conftest import REPO

NDJSON = REPO / "deploy" / "kibana" / "btcml-saved-objects.ndjson"
TEMPLATE = REPO / "deploy" / "opensearch" / "btcml-logs-template.json"
KIBANA_TYPE = {"keyword": "string", "text": "string", "long": "number", "date": "date"}


def template_fields() -> dict[str, str]:
    def leaves(props, prefix=""):
        for name, spec in props.items():
            if "properties" in spec:
                yield from leaves(spec["properties"], f"{prefix}{name}.")
            else:
                yield f"{prefix}{name}", spec["type"]
    return dict(leaves(json.loads(TEMPLATE.read_text())["template"]["mappings"]["properties"]))


@pytest.fixture(scope="module")
def objects() -> list[dict]:
    lines = NDJSON.read_text().splitlines()
    assert lines and all(line.strip() for line in lines), "one JSON object per line, no blank lines"
    return [json.loads(line) for line in lines]


def by_type(objects, kind):
    return [o for o in objects if o["type"] == kind]


def test_every_object_has_a_unique_id_and_the_fields_import_requires(objects):
    assert len({(o["type"], o["id"]) for o in objects}) == len(objects)
    for o in objects:
        assert set(o) >= {"id", "type", "attributes", "references", "migrationVersion"}, o["id"]
        assert re.fullmatch(r"[a-z0-9-]+", o["id"]) and o["attributes"]["title"]
        assert list(o["migrationVersion"]) == [o["type"]]
    assert sorted(o["type"] for o in objects) == ["dashboard", "index-pattern", "search", "search", "search"]


def test_every_reference_resolves_and_every_ref_name_is_declared(objects):
    ids = {(o["type"], o["id"]) for o in objects}
    for o in objects:
        names = [r["name"] for r in o["references"]]
        assert len(names) == len(set(names)), o["id"]
        for ref in o["references"]:
            assert (ref["type"], ref["id"]) in ids, f"{o['id']} refers to a missing {ref}"
        if "kibanaSavedObjectMeta" in o["attributes"]:
            source = json.loads(o["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
            if "indexRefName" in source:
                assert source["indexRefName"] in names
    for dashboard in by_type(objects, "dashboard"):
        panels = json.loads(dashboard["attributes"]["panelsJSON"])
        assert sorted(p["panelRefName"] for p in panels) == sorted(r["name"] for r in dashboard["references"])
        assert len({p["panelIndex"] for p in panels}) == len(panels)
        # Every saved search is on the dashboard.
        assert {r["id"] for r in dashboard["references"]} == {o["id"] for o in by_type(objects, "search")}


def test_the_data_view_has_exactly_the_index_templates_fields(objects):
    (view,) = by_type(objects, "index-pattern")
    assert view["attributes"]["title"] == json.loads(TEMPLATE.read_text())["index_patterns"][0]
    assert view["attributes"]["timeFieldName"] == "@timestamp"
    fields = {f["name"]: f for f in json.loads(view["attributes"]["fields"])}
    mapped = template_fields()
    assert set(fields) == set(mapped)
    for name, es_type in mapped.items():
        assert fields[name]["esTypes"] == [es_type] and fields[name]["type"] == KIBANA_TYPE[es_type], name
        assert fields[name]["aggregatable"] == (es_type != "text"), name
    assert set(json.loads(view["attributes"]["fieldFormatMap"])) <= set(fields)


def test_the_saved_searches_use_only_fields_of_the_template(objects):
    mapped = template_fields()
    titles = set()
    for search in by_type(objects, "search"):
        titles.add(search["attributes"]["title"])
        assert set(search["attributes"]["columns"]) <= set(mapped), search["id"]
        query = json.loads(search["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])["query"]
        assert query["language"] == "kuery"
        used = re.findall(r"([@\w.]+)\s*(?::|>=|<=|>|<)", query["query"])
        assert used and set(used) <= set(mapped), (search["id"], used)
    assert titles == {"btcml: errors", "btcml: slow requests", "btcml: pipeline runs"}
