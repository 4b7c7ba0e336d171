"""The slides (docs/slides/btcml.md): Marp builds them to a PDF with one page per slide, and every number they show
is quoted from a benchmark or report file of the repository (bench/, docs/benchmarks-*.md, docs/forecasting.md),
not typed in from memory."""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO

SLIDES = REPO / "docs/slides/btcml.md"
BUILD = Path(os.environ.get("BTCML_BUILD_DIR", REPO / "build"))
# A number as written: a date, or digits with decimal points and thousands separators (25,985; 0.929; 2.4).
NUMBER = re.compile(r"\d{4}-\d{2}-\d{2}|\d+(?:[.,]\d+)*")


def slide_texts(markdown):
    """The slides of a Marp document: the text after its front matter, split at `---` lines."""
    match = re.match(r"^---\n.*?\n---\n(.*)$", markdown, flags=re.S)
    assert match, "the slides lost their Marp front matter"
    return re.split(r"^---[ \t]*$", match.group(1), flags=re.M)


def shown_text(slide):
    """What a slide shows: without Marp's directive comments and image syntax (sizes such as w:1100)."""
    slide = re.sub(r"<!--.*?-->", "", slide, flags=re.S)
    return re.sub(r"!\[[^\]]*\]\([^)]*\)", "", slide)


def sources():
    """The benchmark and report files the figures must come from: the benchmark reports (docs/benchmarks-*.md and
    bench/) and the measured runs of docs/forecasting.md. Not the other docs: a figure there is not a measurement."""
    files = [p for p in [*(REPO / "bench").rglob("*"), *(REPO / "docs").glob("benchmarks-*.md"),
                         REPO / "docs/forecasting.md"] if p.is_file()]
    assert len(files) > 8, f"only {len(files)} benchmark and report files found"
    return "\n".join(p.read_text(errors="replace") for p in files)


def unsourced_numbers(slides_markdown, corpus):
    missing = []
    for slide in slide_texts(slides_markdown):
        for number in NUMBER.findall(shown_text(slide)):
            # The same token, not part of a longer number: 0.93 is not found in 0.931, nor 7 in 17.
            if not re.search(rf"(?<![\d.,]){re.escape(number)}(?![\d]|[.,]\d)", corpus):
                missing.append(number)
    return missing


def test_every_number_in_the_slides_appears_in_a_benchmark_or_report_file():
    markdown = SLIDES.read_text()
    corpus = sources()
    numbers = [n for s in slide_texts(markdown) for n in NUMBER.findall(shown_text(s))]
    assert len(numbers) > 50, f"only {len(numbers)} numbers found in the slides: the extraction is broken"
    assert not unsourced_numbers(markdown, corpus), (
        f"numbers in {SLIDES.relative_to(REPO)} that no benchmark or report file has: "
        f"{unsourced_numbers(markdown, corpus)}")


def test_the_number_check_catches_a_figure_from_nowhere():
    markdown = SLIDES.read_text()
    corpus = sources()
    planted = markdown.replace("| 1 h | 0.800 [0.795, 0.805]", "| 1 h | 0.817 [0.795, 0.805]", 1)
    assert planted != markdown, "the planted figure's row is gone from the slides: plant it in another row"
    assert unsourced_numbers(planted, corpus) == ["0.817"]
    # A longer number that contains a sourced one is still caught.
    assert unsourced_numbers(markdown + "\n\n---\n\n25,9850 points\n", corpus) == ["25,9850"]


def tool(name, path=None):
    found = path if path and Path(path).exists() else shutil.which(name)
    if not found:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is required under CI=true (scripts/install-deps.sh installs it)")
        pytest.skip(f"{name} is not installed")
    return found


@pytest.mark.timeout(240)
def test_the_slides_build_to_a_pdf_with_one_page_per_slide():
    tool("marp", REPO / "docs/slides/node_modules/.bin/marp")
    tool("chromium")
    pdfinfo = tool("pdfinfo")
    pdf = BUILD / "slides" / "btcml.pdf"
    pdf.unlink(missing_ok=True)
    out = subprocess.run([REPO / "scripts/build-slides.sh", pdf], capture_output=True, text=True, timeout=200)
    assert out.returncode == 0, f"scripts/build-slides.sh failed:\n{out.stdout}\n{out.stderr}"
    info = subprocess.run([pdfinfo, pdf], capture_output=True, text=True, timeout=30, check=True).stdout
    pages = int(re.search(r"^Pages:\s+(\d+)", info, flags=re.M).group(1))
    slides = slide_texts(SLIDES.read_text())
    assert len(slides) >= 7, "objectives, architecture, process, outcomes, limits and next steps need more slides"
    assert pages == len(slides), f"{pdf}: {pages} pages for {len(slides)} slides"
    # The architecture slide embeds the diagram (a local file, which Marp only reads with --allow-local-files); the
    # SVG stays vector, so its labels are text of that page.
    page = next(i for i, s in enumerate(slides, 1) if "architecture.svg" in s)
    text = subprocess.run([tool("pdftotext"), "-f", str(page), "-l", str(page), pdf, "-"], capture_output=True,
                          text=True, timeout=30, check=True).stdout
    assert "worker pool" in text, f"page {page} of {pdf} does not show the architecture diagram:\n{text}"
