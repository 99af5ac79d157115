"""The key flows in a real browser: `streamlit run app.py` driven by Chromium (Playwright).

Launch with the defaults and watch it learn without a reload; Stop; Compare two runs; a
reload keeps the selection; after a server restart the runs are still there and a run the
dead server left running reads "interrupted". Under load (issue 7): three tabs on one server
while four tiny runs go through the CPU queue one at a time, all seen by every tab. Waits on
page content with auto-retrying expect(), never on fixed sleeps.

Screenshots: the live Train page and Compare are saved as train.png and compare.png. The
README shows docs/train.png and docs/compare.png, made by this test: to refresh them, run
``RMCORE_SCREENSHOTS=1 .venv/bin/python -m pytest tests/test_browser.py``. Without that
variable they go to a temporary folder, so an ordinary test run leaves git clean.
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
from urllib.parse import parse_qs, urlparse

import pytest

from rmcore.store import RunStore

pytestmark = pytest.mark.browser
playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
expect = playwright_api.expect
expect.set_options(timeout=30_000)  # a cold server imports torch on its first page

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
def screenshots(tmp_path_factory) -> Path:
    """docs/ when RMCORE_SCREENSHOTS=1 (refreshing the README's images), else a temporary folder."""
    if os.environ.get("RMCORE_SCREENSHOTS") == "1":
        (ROOT / "docs").mkdir(exist_ok=True)
        return ROOT / "docs"
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def page(server, browser):
    tab = browser.new_page(viewport={"width": 1440, "height": 2200})
    tab.set_default_timeout(30_000)
    yield tab
    tab.close()


def open_page(page, url: str) -> None:
    page.goto(url)
    expect(page.locator(CONNECTED)).to_be_attached(timeout=60_000)


def run_in(url: str) -> str:
    return parse_qs(urlparse(url).query).get("run", [""])[0]


def step_of(page) -> int:
    return int(page.locator(STEP_VALUE).inner_text().split("/")[0])


def wait_step_above(page, step: int, timeout_ms: int) -> None:
    page.wait_for_function(
        "([sel, n]) => { const el = document.querySelector(sel);"
        " return el && parseInt(el.innerText) > n; }", arg=[STEP_VALUE, step], timeout=timeout_ms)


def test_launch_with_defaults_learns_live_then_stops(server, page, screenshots) -> None:
    open_page(page, f"{server.url}/train")
    page.locator(".st-key-launch button").click()
    # The step counter rises within 60 s, and goes on rising, all without a reload.
    wait_step_above(page, 0, 60_000)
    first = step_of(page)
    wait_step_above(page, max(first, 4), 120_000)  # a few points on the curves for the screenshot
    expect(page.locator(".js-plotly-plot .gtitle", has_text="Loss").first).to_be_visible()
    expect(page.locator(".js-plotly-plot .gtitle", has_text="Reward").first).to_be_visible()
    expect(page.locator(".st-key-live-generations [data-testid=stDataFrame]")).to_be_visible()
    page.screenshot(path=str(screenshots / "train.png"), full_page=True)
    assert "run=" in page.url

    page.locator(".st-key-stop button").click()
    expect(page.locator(STATUS_VALUE)).to_have_text("stopped", timeout=60_000)
    expect(page.locator(".st-key-stop")).to_have_count(0)  # the page redrew with polling off
    stopped_at = step_of(page)
    assert 2 <= stopped_at < 50


def pick_options(page, key: str, labels) -> None:
    """Choose each label in a multiselect. The click that opens the list can land while the
    rerun of a field just set is still redrawing the form, which closes the list again; so
    open it until the option shows (Playwright's own retrying expect), then choose it."""
    box = page.locator(f".st-key-{key} input")
    for label in labels:
        option = page.get_by_role("option", name=label, exact=True)
        for attempt in range(5):
            box.click()
            try:
                expect(option).to_be_visible(timeout=3_000)
                break
            except AssertionError:
                if attempt == 4:
                    raise
        option.click()


def set_number(page, field: str, value: int) -> None:
    box = page.locator(f".st-key-cfg-{field} input")
    box.fill(str(value))
    box.press("Enter")
    expect(box).to_have_value(str(value))


def test_one_run_per_loss_then_compare_and_reload(server, page, screenshots) -> None:
    before = set(RunStore(server.runs_dir).list_runs()["id"])
    open_page(page, f"{server.url}/train")  # no ?run=: the form is unfolded
    for field, value in {"steps": 8, "batch_size": 4, "max_new_tokens": 16}.items():
        set_number(page, field, value)
    pick_options(page, "cfg-compare_losses", ("REINFORCE", "GRPO"))
    picked = page.locator(".st-key-cfg-compare_losses [aria-label='Selected values']").first.locator("[data-tag]")
    expect(picked).to_have_count(2)
    page.locator(".st-key-launch_per_loss button").click()
    page.wait_for_url(re.compile(r"/compare\?"))
    legend = page.locator(".st-key-cmp-chart .legendtext")
    expect(legend).to_have_count(2, timeout=120_000)  # curves appear while the runs go on

    store = RunStore(server.runs_dir)
    run_ids = sorted(set(store.list_runs()["id"]) - before)
    assert sorted(store.get_run(r)["config"]["loss"] for r in run_ids) == ["grpo", "reinforce"]
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and any(store.get_run(r)["status"] != "done" for r in run_ids):
        time.sleep(1)  # polling the store for the end of training, not waiting on the page
    assert [store.get_run(r)["status"] for r in run_ids] == ["done", "done"]

    page.reload()  # the selection lives in the URL
    expect(page.locator(CONNECTED)).to_be_attached()
    chips = page.locator(".st-key-cmp_runs [aria-label='Selected values']").first.locator("[data-tag]")
    expect(chips).to_have_count(2)
    expect(legend).to_have_count(2)
    assert sorted(parse_qs(urlparse(page.url).query)["runs"][0].split(",")) == run_ids
    expect(page.locator(".st-key-cmp-chart .js-plotly-plot .main-svg").first).to_be_visible()
    page.screenshot(path=str(screenshots / "compare.png"), full_page=True)


def test_runs_survive_a_server_restart(server, page) -> None:
    store = RunStore(server.runs_dir)
    finished = store.list_runs()["id"].tolist()
    # Leave one run going when the server dies: after the restart it reads "interrupted".
    open_page(page, f"{server.url}/train")  # a new session: the form holds the defaults
    page.locator(".st-key-launch button").click()
    page.wait_for_url(lambda url: "run=" in url and run_in(url) not in finished)  # the new run is selected
    running = run_in(page.url)
    expect(page.locator(STEP_VALUE)).to_have_text(re.compile(r"^[1-9]\d* / 50$"), timeout=60_000)
    server.kill(signal.SIGKILL)
    server.start()

    open_page(page, f"{server.url}/compare?runs={','.join(finished)}")
    expect(page.locator(".st-key-cmp-chart .legendtext")).to_have_count(len(finished))
    open_page(page, f"{server.url}/train?run={running}")
    expect(page.locator(STATUS_VALUE)).to_have_text("interrupted")
    assert step_of(page) >= 1  # its metrics survived
    open_page(page, f"{server.url}/runs")
    expect(page.locator("[data-testid=stDataFrame]")).to_be_visible()
    assert store.list_runs()["id"].tolist().count(running) == 1


# --------------------------------------------------------------------------- load: three tabs, four queued runs
QUEUED_LOSSES = ("REINFORCE", "REINFORCE + baseline", "RLOO", "GRPO")
SIDEBAR_RUNS = "[data-testid=stSidebar] a[data-testid=stPageLink-NavLink]:visible"  # the page also holds hidden copies


def runs_listed(tab) -> list[str]:
    """The run ids in the Runs page's picker (its options are every run in the store)."""
    tab.locator(".st-key-runs_pick input").click()
    options = tab.get_by_role("option", name=re.compile(r" · \d{8}-\d{6}-"))  # "<name> · <run id>"
    expect(options).to_have_count(4)
    ids = sorted(text.split(" · ")[-1] for text in options.all_inner_texts())
    tab.keyboard.press("Escape")
    return ids


def fill_tiny_form(tab, model: str) -> None:
    tab.locator(".st-key-cfg-backbone_choice input").click()
    tab.get_by_role("option", name="Other (hub id or local folder)…").click()
    box = tab.locator(".st-key-cfg-backbone_custom input")
    box.fill(model)
    box.press("Enter")
    for field, value in {"steps": 3, "max_new_tokens": 8}.items():  # each change reruns the form: few
        set_number(tab, field, value)
    pick_options(tab, "cfg-compare_losses", QUEUED_LOSSES)


def test_three_tabs_see_four_queued_runs_go_one_at_a_time(browser, tiny_lm_path, tmp_path) -> None:
    """Its own server and runs folder, and a 1-layer local model: the queue drains in seconds."""
    server = Server(tmp_path / "runs", tmp_path / "models", tmp_path / "streamlit.log").start()
    context = browser.new_context(viewport={"width": 1280, "height": 1200})
    context.set_default_timeout(30_000)
    try:
        first, *others = tabs = [context.new_page() for _ in range(3)]
        for tab in others:  # two tabs already open on Runs before anything is queued
            open_page(tab, f"{server.url}/runs")
            expect(tab.get_by_text("No runs yet.")).to_be_visible()
        open_page(first, f"{server.url}/train")
        fill_tiny_form(first, tiny_lm_path)
        first.locator(".st-key-launch_per_loss button").click()  # four runs, queued all or nothing
        store = RunStore(server.runs_dir)
        deadline = time.monotonic() + 60
        while len(store.list_runs()) < 4 and time.monotonic() < deadline:
            time.sleep(0.1)  # polling the store for the launch, not waiting on the page
        run_ids = sorted(store.list_runs()["id"])
        assert len(run_ids) == 4

        for tab in others:  # while the first run loads, the other tabs show the queue in their sidebar
            tab.locator(".st-key-runs_refresh button:visible").first.click()
            expect(tab.locator(SIDEBAR_RUNS, has_text=re.compile(r" · (running|queued)"))).not_to_have_count(0)
        first.wait_for_url(re.compile(r"/compare\?"))
        chips = first.locator(".st-key-cmp_runs [aria-label='Selected values']").first.locator("[data-tag]")
        expect(chips).to_have_count(4)
        open_page(first, f"{server.url}/runs")  # Compare's live charts would slow the queue down
        for tab in tabs:  # every tab lists the same four runs
            assert runs_listed(tab) == run_ids
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and any(store.get_run(r)["status"] != "done" for r in run_ids):
            for tab in tabs:  # one device, one run at a time, as every tab shows it
                assert tab.locator(SIDEBAR_RUNS, has_text=" · running").count() <= 1
            time.sleep(0.5)  # polling the store for the end of training, not waiting on the page

        runs = [store.get_run(r) for r in run_ids]
        assert [run["status"] for run in runs] == ["done"] * 4, [run["error"] for run in runs]
        assert all(run["last_step"] == 3 for run in runs)
        spans = sorted((run["started"], run["finished"]) for run in runs)
        assert all(end <= start for (_, end), (start, _) in zip(spans, spans[1:]))  # never two at once
        for tab in tabs:  # each sidebar noticed the end by itself and stopped polling
            expect(tab.locator("[data-testid=stSidebar]")).to_contain_text("No run in progress.", timeout=60_000)
        for tab in tabs:  # none lost, none doubled, in every tab
            tab.locator(".st-key-runs_refresh button:visible").first.click()
            assert runs_listed(tab) == run_ids
        assert len(store.list_runs()) == 4
    finally:
        context.close()
        server.kill()


EVIL_LINK = "[Session expired: log in](https://evil.example)"
EVIL_NAME = f'{EVIL_LINK} ![t](https://evil.example/t.png) <a href="https://evil.example">x</a>'
FROM_EVIL = ("() => [...document.querySelectorAll('*')].flatMap(e => ['href', 'src', 'xlink:href']"
             ".map(a => e.getAttribute(a)).filter(v => v && v.includes('evil.example')))")


def test_crafted_link_in_the_url_and_a_run_name_show_as_text(browser, tmp_path) -> None:
    """Issue item 6: text from the URL and from a run's name is drawn as text, never as a link
    or an image, in the error banner, the Compare cards and the chart legend. Its own server,
    no model: nothing is trained."""
    from urllib.parse import quote

    from rmcore.config import TrainConfig
    from rmcore.events import StepReport

    store = RunStore(tmp_path / "runs")
    run_id = store.create_run(kind="policy", config=TrainConfig(steps=2).to_dict(), name=EVIL_NAME, total_steps=2)
    for step in (1, 2):
        store.record_step(run_id, StepReport(step, 2, {"reward/total": 0.1 * step}, generations=[
            {"split": "eval", "prompt": "doc", "completion": EVIL_NAME, "reference": EVIL_LINK, "reward": 0.5,
             "terms": {"rouge": 0.5}}]))
    store.set_status(run_id, "done")
    server = Server(tmp_path / "runs", tmp_path / "models", tmp_path / "streamlit.log").start()
    tab = browser.new_page(viewport={"width": 1280, "height": 1600})
    requests: list[str] = []
    tab.on("request", lambda request: requests.append(request.url))
    try:
        open_page(tab, f"{server.url}/train?run={quote(EVIL_LINK, safe='')}")
        banner = tab.locator("[data-testid=stAlertContentError]", has_text="Invalid run id")
        expect(banner).to_be_visible(timeout=90_000)  # a cold server imports torch first
        assert EVIL_LINK in banner.inner_text().replace("\u2060", "")  # the word joiners are invisible
        assert tab.evaluate(FROM_EVIL) == []

        open_page(tab, f"{server.url}/compare?runs={run_id}&metric=reward/total")
        expect(tab.locator(".st-key-cmp-chart .legendtext")).to_have_count(1, timeout=60_000)
        assert tab.locator(".st-key-cmp-chart .legendtext").text_content() == EVIL_NAME
        card = tab.locator("[data-testid=stMarkdownContainer] strong", has_text="Session expired")
        expect(card).to_have_count(1)
        assert card.inner_text().replace("\u2060", "") == EVIL_NAME
        answers = tab.locator("[data-testid=stMarkdownContainer]", has_text="Session expired")
        expect(answers).to_have_count(2)  # the card's title and its answer
        assert EVIL_NAME in answers.last.inner_text().replace("\u2060", "")
        assert tab.evaluate(FROM_EVIL) == []
        assert not [url for url in requests if "evil.example" in (urlparse(url).hostname or "")]  # no image fetched
    finally:
        tab.close()
        server.kill()
