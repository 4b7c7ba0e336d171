"""ECS error fields: every `error.*` field btcml's code logs is a field of ECS's error set (`error.type`,
`error.message`, …) that the index template (deploy/opensearch) maps, and the binary writes them: a failed command's
event carries `error.type` and `error.message`, and no event carries a non-ECS error field such as `error.kind`."""
import json
import re

from conftest import REPO

# The fields of ECS 8's error set.
ECS_ERROR = {"code", "id", "message", "stack_trace", "type"}
TEMPLATE = REPO / "deploy" / "opensearch" / "btcml-logs-template.json"


def test_every_error_field_the_code_logs_is_an_ecs_field_the_template_maps():
    used = {}
    for path in sorted((REPO / "src").rglob("*.[ch]pp")):
        for name in re.findall(r'"error\.(\w+)"', path.read_text()):
            used.setdefault(name, path.relative_to(REPO))
    assert {"message", "type"} <= set(used), used
    assert set(used) <= ECS_ERROR, {name: str(where) for name, where in used.items() if name not in ECS_ERROR}
    mapped = json.loads(TEMPLATE.read_text())["template"]["mappings"]["properties"]["error"]["properties"]
    assert set(used) <= set(mapped) <= ECS_ERROR, (set(used), set(mapped))


def test_a_failed_command_logs_the_ecs_error_type_and_message(btcml_sqlite):
    proc = btcml_sqlite.run("--log-format", "json", "--log-level", "debug", "pipeline", "show", "424242", check=False)
    assert proc.returncode == 4, proc.stderr  # not found
    events = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    failed = [e for e in events if e["message"] == "command failed"]
    assert len(failed) == 1, proc.stderr
    assert failed[0]["error.type"] == "not found" and "424242" in failed[0]["error.message"], failed[0]
    stray = {k for e in events for k in e if k.startswith("error.") and k.removeprefix("error.") not in ECS_ERROR}
    assert not stray, stray
