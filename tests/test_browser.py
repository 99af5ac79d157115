"""The key flows in a real browser: `streamlit run app.py` driven by Chromium (Playwright).

Launch with the defaults and watch it learn without a reload; Stop; Compare two runs; a
reload keeps the selection; after a server restart the runs are still there and a run the
dead server left running reads "interrupted". Saves docs/train.png and docs/compare.png.
Waits on page content with auto-retrying expect(), never on fixed sleeps.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from rmcore.store import RunStore

pytestmark = pytest.mark.browser
playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
expect = playwright_api.expect

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
CONNECTED = "[data-testid=stApp][data-test-connection-state=CONNECTED]"
STEP_VALUE = ".st-key-live-step [data-testid=stMetricValue]"
STATUS_VALUE = ".st-key-live-status [data-testid=stMetricValue]"

if not shutil.which(CHROMIUM):
    pytest.skip(f"Chromium is not installed at {CHROMIUM} (apt-get install -y chromium)", allow_module_level=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`streamlit run app.py` in a subprocess, on a free port, with its own runs folder."""

    def __init__(self, runs_dir: Path, model_cache: Path, log: Path) -> None:
        self.runs_dir, self.model_cache, self.log = runs_dir, model_cache, log
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def start(self) -> "Server":
        port = free_port()
        env = {**os.environ, "RMCORE_RUNS_DIR": str(self.runs_dir), "RMCORE_MODEL_CACHE": str(self.model_cache)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1",
             "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
            cwd=ROOT, env=env, stdout=self.log.open("a"), stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"streamlit exited:\n{self.log.read_text()[-3000:]}"
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as response:
                    if response.read() == b"ok":
                        return self
            except OSError:
                pass
            time.sleep(0.25)  # polling a port, not waiting on the page
        raise AssertionError(f"streamlit did not become healthy:\n{self.log.read_text()[-3000:]}")

    def kill(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture(scope="module")
def server(tmp_path_factory, builtin_model_cache):
    base = tmp_path_factory.mktemp("browser")
    srv = Server(base / "runs", builtin_model_cache, base / "streamlit.log").start()
    yield srv
    srv.kill()


@pytest.fixture(scope="module")
def page(server):
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        tab = browser.new_page(viewport={"width": 1440, "height": 2200})
        tab.set_default_timeout(30_000)
        yield tab
        browser.close()


def open_page(page, url: str) -> None:
    page.goto(url)
    expect(page.locator(CONNECTED)).to_be_attached(timeout=60_000)


def step_of(page) -> int:
    return int(page.locator(STEP_VALUE).inner_text().split("/")[0])


def wait_step_above(page, step: int, timeout_ms: int) -> None:
    page.wait_for_function(
        "([sel, n]) => { const el = document.querySelector(sel);"
        " return el && parseInt(el.innerText) > n; }", arg=[STEP_VALUE, step], timeout=timeout_ms)


def test_launch_with_defaults_learns_live_then_stops(server, page) -> None:
    open_page(page, f"{server.url}/train")
    page.locator(".st-key-launch button").click()
    # The step counter rises within 60 s, and goes on rising, all without a reload.
    wait_step_above(page, 0, 60_000)
    first = step_of(page)
    wait_step_above(page, first, 60_000)
    expect(page.locator(".js-plotly-plot .gtitle", has_text="Loss")).to_be_visible()
    expect(page.locator(".js-plotly-plot .gtitle", has_text="Reward")).to_be_visible()
    expect(page.locator(".st-key-live-generations [data-testid=stDataFrame]")).to_be_visible()
    (ROOT / "docs").mkdir(exist_ok=True)
    page.screenshot(path=str(ROOT / "docs" / "train.png"), full_page=True)
    assert "run=" in page.url

    page.locator(".st-key-stop button").click()
    expect(page.locator(STATUS_VALUE)).to_have_text("stopped", timeout=60_000)
    expect(page.locator(".st-key-stop")).to_have_count(0)  # the page redrew with polling off
    stopped_at = step_of(page)
    assert 2 <= stopped_at < 50


def test_compare_overlays_two_runs_and_reload_keeps_selection(server, page) -> None:
    open_page(page, f"{server.url}/train")  # no ?run=: the form is unfolded
    steps = page.locator(".st-key-cfg-steps input")
    steps.fill("3")
    steps.press("Enter")
    expect(steps).to_have_value("3")
    page.locator(".st-key-launch button").click()
    expect(page.locator(STATUS_VALUE)).to_have_text("done", timeout=120_000)

    run_ids = RunStore(server.runs_dir).list_runs()["id"].tolist()
    assert len(run_ids) == 2
    open_page(page, f"{server.url}/compare?runs={','.join(run_ids)}&metric=reward/total")
    legend = page.locator(".st-key-cmp-chart .legendtext")
    expect(legend).to_have_count(2)
    page.screenshot(path=str(ROOT / "docs" / "compare.png"), full_page=True)

    page.reload()
    expect(page.locator(CONNECTED)).to_be_attached()
    expect(legend).to_have_count(2)
    assert re.search(r"runs=[^&]*,", page.url), page.url


def test_runs_survive_a_server_restart(server, page) -> None:
    store = RunStore(server.runs_dir)
    finished = store.list_runs()["id"].tolist()
    # Leave one run going when the server dies: after the restart it reads "interrupted".
    open_page(page, f"{server.url}/train")  # a new session: the form holds the defaults
    page.locator(".st-key-launch button").click()
    wait_step_above(page, 0, 60_000)
    running = page.url.split("run=")[1].split("&")[0]
    server.kill(signal.SIGKILL)
    server.start()

    open_page(page, f"{server.url}/compare?runs={','.join(finished)}")
    expect(page.locator(".st-key-cmp-chart .legendtext")).to_have_count(2)
    open_page(page, f"{server.url}/train?run={running}")
    expect(page.locator(STATUS_VALUE)).to_have_text("interrupted")
    assert step_of(page) >= 1  # its metrics survived
    open_page(page, f"{server.url}/runs")
    expect(page.locator("[data-testid=stDataFrame]")).to_be_visible()
    assert store.list_runs()["id"].tolist().count(running) == 1
