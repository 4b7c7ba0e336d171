"""The docs against the product: every `btcml …` command and flag the Markdown shows exists in the real binary's
help, every HTTP route it names is in the OpenAPI document the server serves, and every relative link and anchor
resolves. External http(s) links cannot be fetched here (no internet); they are only checked for form."""
import json
import re
import shlex
import subprocess
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# docs/slides/node_modules holds Marp's npm packages (scripts/install-slides.sh), not our docs.
DOCS = sorted(p for p in [ROOT / "README.md", *ROOT.glob("docs/**/*.md"), *ROOT.glob("src/*/README.md"),
                          *ROOT.glob("deploy/**/*.md"), *ROOT.glob("bench/**/*.md")] if "node_modules" not in p.parts)
# Words that follow "btcml" in code without being commands: examples of what is not one, and the server's own
# output ("btcml serving on http://…").
NOT_COMMANDS = {"frobnicate", "serving"}
# btcml's own routes: its API and its top-level endpoints. Other paths in the docs belong to the services it talks
# to (exchanges, MLflow, Kaggle — whose /api/v1/datasets/ shares btcml's prefix).
OWN_ROUTE = re.compile(r"^/(?:api/v1/(?!datasets/)|[a-z.]*$|docs/)")


def code_texts(text):
    """Fenced code blocks and inline code spans of a Markdown text."""
    fenced = re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.S | re.M)
    rest = re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.S | re.M)
    return fenced + re.findall(r"`([^`\n]+)`", rest)


@lru_cache(maxsize=None)
def help_of(btcml_bin, *path):
    out = subprocess.run([btcml_bin, *path, "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, f"btcml {' '.join(path)} --help failed: {out.stderr}"
    subcommands = set()
    section = re.search(r"^Subcommands:\n((?:  \S.*\n?)+)", out.stdout, flags=re.M)
    if section:
        subcommands = {line.split()[0] for line in section.group(1).splitlines() if line.strip()}
    flags = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", out.stdout))
    return subcommands, flags


def commands_in(text):
    """Each `btcml …` invocation in the code of `text`, cut at the first shell operator."""
    for code in code_texts(text):
        for line in code.splitlines():
            for match in re.finditer(r"(?:^|[\s$(])btcml((?:\s+[^\s|;&<>()`]+)*)", line):
                try:
                    words = shlex.split(match.group(1), comments=True)
                except ValueError:
                    words = match.group(1).split()
                yield words


def test_every_documented_command_and_flag_exists(btcml_bin):
    problems = []
    global_subcommands, global_flags = help_of(btcml_bin)
    seen = 0
    for doc in DOCS:
        for words in commands_in(doc.read_text()):
            path, flags = [], set(global_flags)
            for word in words:
                if word.startswith("--"):
                    name = word.split("=", 1)[0]
                    if name not in flags:
                        problems.append(f"{doc.relative_to(ROOT)}: `btcml {' '.join(path)}` has no flag {name}")
                    continue
                subcommands, _ = help_of(btcml_bin, *path)
                if word in subcommands:
                    path.append(word)
                    flags |= help_of(btcml_bin, *path)[1]
                elif not path and re.fullmatch(r"[a-z][a-z-]*", word) and word not in NOT_COMMANDS:
                    problems.append(f"{doc.relative_to(ROOT)}: `btcml {word}` is not a command")
                    break
                elif not path:
                    break
            seen += bool(path)
    assert seen > 50, f"only {seen} commands found in the docs: the extraction is broken"
    assert not problems, "\n".join(problems)


def route_pattern(template):
    return re.compile("^" + re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(template)) + "$")


def test_every_documented_route_is_in_the_openapi_document():
    paths = json.loads((ROOT / "src/serve/openapi.json").read_text())["paths"]
    routes = [(route_pattern(p), {m.upper() for m in methods}) for p, methods in paths.items()]
    problems, seen = [], 0
    for doc in DOCS:
        text = doc.read_text()
        for method, path in re.findall(r"\b(GET|POST|PUT|PATCH|DELETE) (/[A-Za-z0-9_/{}<>.-]*)", text):
            if not OWN_ROUTE.match(path):
                continue
            seen += 1
            path = path.rstrip("/.") or "/"
            if not any(p.match(path) and method in m for p, m in routes):
                problems.append(f"{doc.relative_to(ROOT)}: {method} {path} is not in openapi.json")
        for path in re.findall(r"`(/api/v\d/[A-Za-z0-9_/{}.-]*)", text):
            path = path.rstrip("/.")
            if OWN_ROUTE.match(path) and not any(p.match(path) for p, _ in routes):
                problems.append(f"{doc.relative_to(ROOT)}: {path} is not in openapi.json")
    assert seen > 20, f"only {seen} routes found in the docs: the extraction is broken"
    assert not problems, "\n".join(problems)


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


@lru_cache(maxsize=None)
def anchors(path):
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.S | re.M)
    found, counts = set(), {}
    for heading in re.findall(r"^#{1,6} (.+?)\s*#*$", text, flags=re.M):
        base = slug(heading)
        n = counts.get(base, 0)
        counts[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return found


def test_every_link_resolves():
    problems, seen = [], 0
    for doc in DOCS:
        text = re.sub(r"^```.*?^```", "", doc.read_text(), flags=re.S | re.M)
        for target in re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", text):
            seen += 1
            if re.match(r"^[a-z]+://", target):
                assert re.match(r"^https?://[^\s/]+\.[^\s/]+", target), f"{doc}: malformed URL {target}"
                continue
            if target.startswith("mailto:"):
                continue
            file_part, _, anchor = target.partition("#")
            dest = (doc.parent / file_part).resolve() if file_part else doc
            where = f"{doc.relative_to(ROOT)}: link {target}"
            if not dest.exists():
                problems.append(f"{where}: {file_part} does not exist")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                problems.append(f"{where}: no heading #{anchor} in {dest.name}")
    assert seen > 10, f"only {seen} links found: the extraction is broken"
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="module")
def btcml_bin():
    import os
    path = os.environ.get("BTCML_BIN", str(ROOT / "build" / "btcml"))
    assert Path(path).exists(), f"{path} is not built"
    return path


def test_the_architecture_diagram_is_the_rendering_of_its_source():
    import os
    built = Path(os.environ.get("BTCML_BUILD_DIR", ROOT / "build")) / "docs" / "architecture.svg"
    assert built.exists(), f"{built} is missing: the build renders docs/architecture.dot with Graphviz (dot)"

    def drawing(path):
        # Graphviz stamps its version in a comment; the drawing is the rest.
        return re.sub(r"<!--.*?-->", "", path.read_text(), flags=re.S)

    assert drawing(built) == drawing(ROOT / "docs/img/architecture.svg"), (
        "docs/img/architecture.svg is stale: copy build/docs/architecture.svg over it")


def generated_block(doc, command):
    text = (ROOT / doc).read_text()
    block = re.search(rf"<!-- BEGIN generated by: btcml {command} -->\n(.*?)<!-- END generated -->", text, re.S)
    assert block, f"{doc} lost its generated part (btcml {command})"
    return block.group(1)


@pytest.mark.parametrize("doc, command", [("docs/configuration.md", "config reference"), ("docs/api.md", "api-guide")])
def test_generated_references_are_the_output_of_the_binary(btcml_bin, doc, command):
    current = subprocess.run([btcml_bin, *command.split()], capture_output=True, text=True, timeout=30,
                             check=True).stdout
    assert generated_block(doc, command) == current, f"{doc} is stale: paste `btcml {command}` between the markers"


def test_the_api_guide_covers_every_operation_of_the_openapi_document():
    guide = generated_block("docs/api.md", "api-guide")
    paths = json.loads((ROOT / "src/serve/openapi.json").read_text())["paths"]
    operations = [(m.upper(), p, op) for p, methods in paths.items() for m, op in methods.items()]
    headings = re.findall(r"^### (GET|POST|PUT|PATCH|DELETE) (\S+)$", guide, flags=re.M)
    assert sorted(headings) == sorted((m, p) for m, p, _ in operations)
    sections = dict(zip(headings, re.split(r"^### .*$", guide, flags=re.M)[1:]))
    for method, path, op in operations:
        section = sections[(method, path)]
        assert "**Auth:**" in section and "**Responses**" in section, (method, path)
        for status in op["responses"]:
            assert re.search(rf"^\| {status} \|", section, flags=re.M), (method, path, status)
        for parameter in op.get("parameters", []):
            assert f"| `{parameter['name']}` | {parameter['in']} |" in section, (method, path, parameter["name"])
        assert re.search(rf"```sh\ncurl -sS (-X {method} )?'http://127\.0\.0\.1:8080", section), (method, path)
