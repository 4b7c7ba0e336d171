"""btcml report on a model trained on real Binance bars: every chart drawn, the numbers of `evaluate --json` (on
SQLite and PostgreSQL), the live record equal to GET /api/v1/monitoring after real scheduler ticks, no external
reference, a PDF with one page per section, a screenshot of the first page, and every bad input."""
import json
import os
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

from conftest import REPO, Btcml, copy_home, shared_file
from serving import Server

pytestmark = pytest.mark.timeout(240)

SLICE = ["--from", "2023-01-01T00:00:00Z", "--to", "2023-03-31T23:00:00Z"]
TRAIN = ["--until", "2023-02-28T23:00:00Z", "--window", "24", "--horizons", "1,6", "--hidden", "8", "--layers", "1",
         "--epochs", "2", "--samples-per-epoch", "256", "--seed", "3"]
PERIOD = ["--from", "2023-03-01T00:00:00Z", "--to", "2023-03-31T23:00:00Z"]
HORIZONS = ("h1", "h6")
SECTIONS = ("verdict", "data", "model", "forecasts", "scoreboard", "calibration", "rolling", "live")
BUILD = Path(os.environ.get("BTCML_BUILD_DIR", REPO / "build"))


def tool(name):
    path = shutil.which(name)
    if not path:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is required under CI=true (scripts/install-deps.sh installs it)")
        pytest.skip(f"{name} is not installed")
    return path


BINANCE = "binance_btcusdt_1h_2017-08-17_2023-12-20.csv"


def train_on_binance(b: Btcml, ingest_slice=SLICE):
    """Ingests a slice of the real Binance bars and trains a tiny model on its start; (ingest summary, version)."""
    ingest = b.json("ingest", shared_file(BINANCE), *ingest_slice)
    return ingest, b.json("train", *TRAIN)["model_version"]


def read_report(html: Path):
    text = html.read_text()
    match = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', text, re.S)
    assert match, "the report embeds its data"
    return text, json.loads(match.group(1))


@pytest.fixture(scope="module")
def trained_home(tmp_path_factory):
    b = Btcml(tmp_path_factory.mktemp("report") / "home", None)
    ingest, version = train_on_binance(b)
    return b, ingest, version


@pytest.fixture(scope="module")
def report(trained_home, tmp_path_factory):
    b, ingest, version = trained_home
    out = tmp_path_factory.mktemp("out")
    html, pdf = out / "report.html", out / "report.pdf"
    b.run("report", "--model", version, *PERIOD, "--out", html, "--pdf", pdf, timeout=180)
    return (b, ingest, version, html, pdf, *read_report(html))


class Cells(HTMLParser):
    """The text of every <td data-metric> by (table id, row header, metric)."""

    def __init__(self):
        super().__init__()
        self.cells, self.table, self.row, self.metric, self.in_th = {}, None, None, None, False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self.table = a.get("id")
        elif tag == "tr":
            self.row = None
        elif tag == "th":
            self.in_th = True
        elif tag == "td":
            self.metric = a.get("data-metric")

    def handle_endtag(self, tag):
        if tag == "th":
            self.in_th = False
        elif tag == "td":
            self.metric = None

    def handle_data(self, data):
        if self.in_th and self.row is None:
            self.row = data
        elif self.metric:
            self.cells[(self.table, self.row, self.metric)] = data


def test_numbers_are_those_of_evaluate_json(btcml, tmp_path):
    b = btcml  # SQLite and PostgreSQL
    _, version = train_on_binance(b)
    b.run("report", "--model", version, *PERIOD, "--out", tmp_path / "report.html", timeout=180)
    text, data = read_report(tmp_path / "report.html")
    evaluated = b.json("evaluate", "--model", version, *PERIOD)
    # `seconds` is how long each run took, not a result: the two runs differ there by nature.
    assert data["evaluation"].pop("seconds") > 0 and evaluated.pop("seconds") > 0
    assert data["evaluation"] == evaluated
    cells = Cells()
    cells.feed(text)
    for h in HORIZONS:
        for name, m in evaluated["metrics"][h].items():
            for metric in ("mae", "pinball", "coverage_80"):
                assert cells.cells[(f"score-{h}", name, metric)] == f"{m[metric]:.6g}", (h, name, metric)
        for q in ("below_q10", "below_q50", "below_q90"):
            assert cells.cells[(f"calibration-{h}", q, q)] == f"{evaluated['metrics'][h]['model'][q]:.6g}"
    # The per-point record the charts draw is the evaluation's: as many points as it scored.
    for h in HORIZONS:
        assert len(data["per_point"][h]["q50"]) == evaluated["metrics"][h]["model"]["count"]


def test_every_chart_is_drawn(report):
    _, _, _, _, _, text, _ = report
    charts = ["training"] + [f"{kind}-{h}" for kind in ("forecast", "pit", "rolling") for h in HORIZONS]
    for chart in charts:
        m = re.search(rf'<div id="chart-{chart}">(<svg.*?</svg>)</div>', text, re.S)
        assert m, chart
        svg = m.group(1)
        if chart.startswith("pit"):
            heights = [float(h) for h in re.findall(r'class="bar"[^>]*height="([0-9.]+)"', svg)]
            assert len(heights) == 4 and sum(heights) > 0, chart
        else:
            points = sum(len(re.findall(r"[ML]", d)) for d in re.findall(r'class="line" d="([^"]*)"', svg))
            assert points >= 2, chart
    # The forecast charts carry the 80% band.
    for h in HORIZONS:
        assert 'class="band"' in re.search(rf'<div id="chart-forecast-{h}">(.*?)</div>', text, re.S).group(1)
    for section in SECTIONS:
        assert f'<section id="{section}">' in text
    # The verdict names every baseline with a lower pinball loss than the model's.
    evaluation = report[6]["evaluation"]
    for h in HORIZONS:
        per_model = evaluation["metrics"][h]
        better = [n for n, m in per_model.items() if n != "model" and m["pinball"] < per_model["model"]["pinball"]]
        expected = f"but a SIMPLE BASELINE DOES BETTER: {', '.join(better)};" if better else "and no baseline does better;"
        assert expected in re.search(rf"<li><b>{h}</b>:(.*?)</li>", text).group(1)
    # No server scored this model's forecasts: the live section says so instead of drawing an empty chart.
    assert "No live record" in text


def test_the_live_record_is_that_of_get_monitoring_after_real_ticks(btcml, tmp_path):
    """The served series' scheduler ticks (pipeline tick-BTCUSD-1h, source: the Binance file replayed) store the
    champion's forecasts and score them as the replay reveals their target bars; the report's live section then
    shows the live metrics the API serves."""
    b = btcml  # SQLite and PostgreSQL
    _, version = train_on_binance(b, ["--from", "2023-01-01T00:00:00Z", "--to", "2023-03-10T00:00:00Z"])
    (b.home / "config.yaml").write_text(
        f"series:\n  - symbol: BTCUSD\n    interval: 1h\n    source: replay:{shared_file(BINANCE)}\n"
        "pipelines:\n  retrain_every: never\n")
    # Each process starts its replay clock where it is told: the first tick forecasts from the bar of 01:00, the
    # second reveals the bars up to 08:00, the targets of that forecast's 1 h and 6 h horizons, and scores them; the
    # third scores the second's forecasts: two passes of live metrics.
    for clock in ("2023-03-10T02:00:00Z", "2023-03-10T09:00:00Z", "2023-03-10T16:00:00Z"):
        run = b.json("pipeline", "run", "tick-BTCUSD-1h", "--reason", "report test", "--wait", timeout=240,
                     env={"BTCML_REPLAY_SPEED": "1", "BTCML_REPLAY_START": clock})["run"]
        assert run["status"] == "succeeded", run
    html, pdf = tmp_path / "report.html", tmp_path / "report.pdf"
    b.run("report", "--model", version, "--from", "2023-03-01T00:00:00Z", "--to", "2023-03-09T23:00:00Z", "--out",
          html, "--pdf", pdf, timeout=180)
    text, data = read_report(html)
    # The live section (chart and table) still fits its page.
    info = subprocess.run([tool("pdfinfo"), pdf], capture_output=True, text=True, timeout=30, check=True).stdout
    assert int(re.search(r"^Pages:\s+(\d+)", info, re.M).group(1)) == len(SECTIONS)
    with Server(b) as s:
        served = s.get("/api/v1/monitoring", params={"symbol": "BTCUSD", "interval": "1h", "limit": 10000}).json()
    api = served["live_metrics"]
    assert {(m["model_version"], m["horizon"]) for m in api} == {(version, 1), (version, 6)}
    fields = ("model_version", "horizon", "window_seconds", "scored", "mae", "naive_mae", "pinball",
              "baseline_pinball", "coverage_80", "direction_accuracy")

    def rows(metrics, computed):
        return sorted((m[computed], *(m[f] for f in fields)) for m in metrics)

    assert rows(data["live"], "computed") == rows(api, "computed_at")
    # The table shows the newest row of each version, horizon and window; the chart one line per version and horizon.
    cells = Cells()
    cells.feed(text)
    newest = {}
    for m in sorted(api, key=lambda m: m["computed_at"]):
        days, hours = divmod(m["window_seconds"], 86400)
        newest[f"v{m['model_version']} h{m['horizon']} {f'{days}d' if not hours else f'{hours // 3600}h'}"] = m
    for row, m in newest.items():
        assert cells.cells[("live-latest", row, "scored")] == str(m["scored"]), row
        for metric in ("mae", "naive_mae", "pinball", "coverage_80"):
            assert cells.cells[("live-latest", row, metric)] == f"{m[metric]:.6g}", (row, metric)
    chart = re.search(r'<div id="chart-live">(<svg.*?</svg>)</div>', text, re.S).group(1)
    lines = re.findall(r'class="line" d="([^"]*)"', chart)
    assert len(lines) == 2 and all(len(re.findall(r"[ML]", d)) == 2 for d in lines), lines
    assert "No live record" not in text


def test_data_and_model_card(report):
    b, ingest, version, _, _, text, data = report
    series = data["data"]
    assert series["symbol"] == "BTCUSD" and series["interval"] == "1h"
    assert series["bars"] > 0 and series["missing_bars"] >= 0
    [run] = series["ingests"]
    assert run["rows_rejected"] == ingest["rows_rejected"] and run["rows_inserted"] == ingest["rows_inserted"]
    model = data["model"]
    card = json.loads((b.home / "models" / str(version) / "model.json").read_text())
    assert model["data_hash"] == card["data"]["hash"] and model["data_hash"] in text
    assert model["training_curve"]["train_loss"] == [e["train_loss"] for e in card["epochs"]]
    assert model["architecture"]["hidden_size"] == 8
    assert "not synced to MLflow" in text


def test_no_external_reference(report):
    _, _, _, _, _, text, _ = report
    refs = re.findall(r'(?:src|href)\s*=\s*["\']?([^"\'\s>]*)', text, re.I) + re.findall(r"url\(\s*['\"]?([^)'\"]*)",
                                                                                          text, re.I)
    assert all(r.startswith(("data:", "#")) for r in refs), refs
    assert "<link" not in text.lower() and "@import" not in text


def test_pdf_has_one_page_per_section_and_a_screenshot(report):
    _, _, _, html, pdf, _, _ = report
    pdfinfo = tool("pdfinfo")
    info = subprocess.run([pdfinfo, pdf], capture_output=True, text=True, timeout=30, check=True).stdout
    assert int(re.search(r"^Pages:\s+(\d+)", info, re.M).group(1)) == len(SECTIONS)
    shots = BUILD / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    png = shots / "report-first-page.png"
    png.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="btcml-chromium-") as profile:
        subprocess.run([tool("chromium"), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                        "--no-first-run", "--disable-background-networking", "--disable-component-update",
                        "--disable-sync", f"--user-data-dir={profile}", "--window-size=1000,1400",
                        f"--screenshot={png}", html.as_uri()],
                       capture_output=True, timeout=120, check=True, stdin=subprocess.DEVNULL)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


@pytest.mark.parametrize("args, code, message", [
    (["--model", "999", *PERIOD], 4, "999"),
    (["--from", "2030-01-01", "--to", "2030-02-01"], 3, "no forecast origin"),
    (["--from", "2023-03-20", "--to", "2023-03-01"], 2, "--to must be after --from"),
    (["--from", "yesterday", "--to", "2023-03-01"], 2, "--from"),
])
def test_bad_input_keeps_the_previous_report(trained_home, tmp_path, args, code, message):
    b = copy_home(trained_home[0].home, tmp_path)
    out = tmp_path / "report.html"
    out.write_text("the previous report")
    model = [] if "--model" in args else ["--model", trained_home[2]]
    proc = b.run("report", *model, *args, "--out", out, check=False, timeout=120)
    assert proc.returncode == code, proc.stderr
    assert message in proc.stderr
    assert out.read_text() == "the previous report"


@pytest.mark.parametrize("where, message", [("missing/report.html", "does not exist"), (".", "is a folder")])
def test_unwritable_out_fails_before_evaluating(trained_home, tmp_path, where, message):
    b = copy_home(trained_home[0].home, tmp_path)
    proc = b.run("report", *PERIOD, "--out", tmp_path / where, check=False, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "--out" in proc.stderr and message in proc.stderr
