"""Real Chromium for the dashboard tests: Debian's chromium driven through tests/browser/driver.mjs (playwright-core
from web/node_modules). Start it once per session; every call has a deadline."""
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

from conftest import REPO

DRIVER = REPO / "tests" / "browser" / "driver.mjs"
SCREENSHOTS = Path(os.environ.get("BTCML_BUILD_DIR", REPO / "build")) / "screenshots"


def missing_tools() -> str | None:
    """What the browser tests lack on this machine (scripts/install-browser.sh and npm ci in web/ install it)."""
    if not shutil.which("chromium"):
        return "chromium is not installed (scripts/install-browser.sh)"
    if not shutil.which("node"):
        return "node is not installed"
    if not (REPO / "web" / "node_modules" / "playwright-core").is_dir():
        return "playwright-core is not installed (npm ci in web/)"
    return None


class Browser:
    """One headless Chromium with a fresh profile; `call` sends one driver command and returns its value."""

    def __init__(self):
        self._profile = tempfile.mkdtemp(prefix="btcml-chromium-")
        self._stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(["node", str(DRIVER), shutil.which("chromium"), self._profile],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True)
        self._answers = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self._answers.put(json.loads(line))
        self._answers.put(None)

    def call(self, op, timeout=60, **args):
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()
        try:
            answer = self._answers.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"the browser driver did not answer {op} within {timeout} s") from None
        if answer is None:
            self._stderr.seek(0)
            raise AssertionError(f"the browser driver exited: {self._stderr.read().decode(errors='replace')[-3000:]}")
        if not answer["ok"]:
            raise AssertionError(f"{op} failed in the browser: {answer['error']}")
        return answer["value"]

    def open(self, url, width=1280, height=800):
        return self.call("open", url=url, width=width, height=height)

    def eval(self, js):
        return self.call("eval", js=js)

    def wait(self, js, timeout=20, what="condition"):
        """Polls `js` in the page until it is truthy; fails naming `what` after `timeout` seconds."""
        try:
            return self.call("wait", js=js, timeout_ms=int(timeout * 1000), timeout=timeout + 30)
        except AssertionError as e:
            raise AssertionError(f"timed out waiting for {what}: {e}") from None

    def text(self, selector):
        return self.eval(f"document.querySelector({json.dumps(selector)})?.textContent ?? null")

    def screenshot(self, name):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        return Path(self.call("screenshot", path=str(SCREENSHOTS / name)))

    def problems(self):
        return self.call("problems")

    def close(self):
        try:
            if self.proc.poll() is None:
                self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            pass
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            shutil.rmtree(self._profile, ignore_errors=True)


@pytest.fixture(scope="session")
def browser():
    why = missing_tools()
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"the dashboard's browser tests need it under CI=true: {why}")
        pytest.skip(why)
    b = Browser()
    try:
        yield b
    finally:
        b.close()
