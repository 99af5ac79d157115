"""What the app costs the trainer, and how fast its pages are with a full store (issue 6).

Three figures, each printed against its target:

1. throughput: samples/s of one training run launched from the Train page while Chromium
   shows its live panel (polling every second), against the same run headless (a Runner in
   a plain process: same code path, thread count and store writes, no Streamlit). Rounds
   alternate headless / in-app; medians. Target: in-app >= 85% of headless.
2. render: seconds from navigation to every chart drawn, in Chromium, for Train (one run)
   and Compare (2 runs, and all 20) with 20 runs x 2,000 steps in the store, synthesised
   with RunStore.record_step from the keys a real step reports. Target: median <= 1.0 s.
3. memory: RSS growth of the app over 1,000 live refreshes of the Train page (AppTest
   reruns, in this process) while another process appends steps to a running run.
   Target: <= 50 MB.

    python bench/ui_overhead.py                      # the full bench (about half an hour here)
    python bench/ui_overhead.py --short              # seconds-scale smoke version (CI)
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from rmcore.config import TrainConfig  # noqa: E402
from rmcore.events import StepReport  # noqa: E402
from rmcore.store import RunStore  # noqa: E402

TARGET_SHARE, TARGET_RENDER_S, TARGET_GROWTH_MB = 0.85, 1.0, 50.0
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]  # /work/shared/STREAMLIT.md
CONNECTED = "[data-testid=stApp][data-test-connection-state=CONNECTED]"


# --------------------------------------------------------------------------- the app in Chromium
class Server:
    """`streamlit run app.py` on a free port with its own runs folder (as tests/test_browser.py)."""

    def __init__(self, runs_dir: Path, log: Path) -> None:
        self.runs_dir, self.log, self.proc, self.url = runs_dir, log, None, ""

    def start(self) -> "Server":
        import socket
        import urllib.request

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        env = {**os.environ, "RMCORE_RUNS_DIR": str(self.runs_dir)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none"], cwd=ROOT, env=env, stdout=self.log.open("a"),
            stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"streamlit exited:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as response:
                    if response.read() == b"ok":
                        return self
            except OSError:
                time.sleep(0.25)  # polling a port until the server listens
        raise SystemExit(f"streamlit did not become healthy:\n{self.log.read_text()[-3000:]}")

    def open(self, page, path: str) -> None:
        page.goto(self.url + path)
        page.locator(CONNECTED).wait_for(state="attached", timeout=120_000)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@contextlib.contextmanager
def browser_page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 2200})
        page.set_default_timeout(120_000)
        yield page
        browser.close()


def wait_rendered(page, marker: str) -> None:
    """The script run has finished, the page's marker element is there and every chart has drawn."""
    page.wait_for_function(
        "(marker) => { const app = document.querySelector('[data-testid=stApp]');"
        " if (!app || app.dataset.testScriptState !== 'notRunning' || !document.querySelector(marker)) return false;"
        " const others = Object.values(%s).filter(m => m !== marker);"
        " if (others.some(m => document.querySelector(m))) return false;"
        " const charts = [...document.querySelectorAll('[data-testid=stPlotlyChart]')];"
        " return charts.length > 0 && charts.every(c => c.querySelector('.main-svg')); }" % json.dumps(PAGE_MARKERS),
        arg=marker)


# --------------------------------------------------------------------------- a full store
def captured_reports() -> tuple[StepReport, StepReport]:
    """A real train step's report and a real eval step's, from two tiny steps of the built-in model."""
    import rmcore

    reports: list[StepReport] = []
    rmcore.train(TrainConfig(steps=2, batch_size=2, samples_per_prompt=2, max_new_tokens=8, eval_every=2,
                             eval_prompts=4), on_step=reports.append)
    return reports[1], reports[2]


def synthesise_runs(store: RunStore, n_runs: int, n_steps: int, train: StepReport, evaluation: StepReport,
                    seed: int = 0) -> list[str]:
    """n_runs finished runs of n_steps each, written step by step with store.record_step.

    Every step has the captured step's metric keys (random walks), 32 per-sample rewards per
    reward term (the default 8 prompts x 4 samples), its train generations; every 10th step
    adds the eval metrics and eval generations, as a default run does.
    """
    rng = random.Random(seed)
    losses = ["grpo", "ppo", "rloo", "reinforce", "reinforce_baseline"]
    ids = []
    train_gens = [g for g in train.generations if g["split"] == "train"]
    eval_gens = [g for g in evaluation.generations if g["split"] == "eval"]
    eval_gens = (eval_gens * 16)[:16] if eval_gens else []  # a default run answers 16 eval prompts
    eval_keys = [k for k in evaluation.metrics if k.startswith("eval/")]
    for r in range(n_runs):
        config = TrainConfig(loss=losses[r % len(losses)], steps=n_steps, seed=r).to_dict()
        run_id = store.create_run(kind="policy", config=config, name=f"synthetic {r:02d} {config['loss']}")
        store.set_status(run_id, "running")
        level = {k: rng.random() for k in {*train.metrics, *eval_keys}}
        start = time.time() - n_steps * 2.0
        for step in range(1, n_steps + 1):
            for k in level:
                level[k] += rng.gauss(0, 0.01)
            metrics = {k: level[k] for k in train.metrics}
            gens = list(train_gens)
            if step % 10 == 0 or step == n_steps:
                metrics.update({k: level[k] for k in eval_keys})
                gens += eval_gens
            rewards = {term: [level.get(f"reward/{term}", 0.5) + rng.gauss(0, 0.1) for _ in range(32)]
                       for term in train.sample_rewards}
            store.record_step(run_id, StepReport(step, n_steps, metrics, sample_rewards=rewards, generations=gens),
                              time=start + 2.0 * step)
        store.set_status(run_id, "done")
        ids.append(run_id)
    return ids


# --------------------------------------------------------------------------- 1. throughput
def samples_per_s(store: RunStore, run_id: str) -> float:
    """Steps 1..N by their store timestamps (evals and store writes included) x samples per step."""
    times = store.metrics([run_id], keys=["perf/step_time"]).sort_values("step")
    first, last = times.iloc[0], times.iloc[-1]
    cfg = TrainConfig.from_dict(store.get_run(run_id)["config"])
    return (last["step"] - first["step"]) * cfg.batch_size * cfg.samples_per_prompt / (last["time"] - first["time"])


def processes(server: "Server") -> tuple[list, list]:
    """(the Streamlit server, Chromium and its helpers): psutil processes whose CPU time we read."""
    import psutil

    mine = psutil.Process().children(recursive=True)
    return [psutil.Process(server.proc.pid)], [p for p in mine if p.pid != server.proc.pid]


def cpu_seconds(procs) -> float:
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except Exception:  # a helper process that has exited
            pass
    return total


def headless_run(runs_dir: Path, steps: int) -> tuple[str, str]:
    """The app's training path without Streamlit: a Runner in a fresh process. (run id, CPU note)"""
    import resource

    before, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    out = subprocess.run([sys.executable, __file__, "--headless-run", str(runs_dir), str(steps)],
                         capture_output=True, text=True, check=True, env=os.environ)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return out.stdout.strip().splitlines()[-1], f"trainer process {cpu:.0f} CPU s in {time.perf_counter() - t0:.0f} s"


def _headless_main(runs_dir: str, steps: int) -> None:
    from rmcore.runner import Runner

    runner = Runner(runs_dir)
    run_id = runner.submit(TrainConfig(steps=steps), name="headless")
    status = runner.wait(run_id, timeout=3600)
    runner.shutdown(10)
    if status != "done":
        raise SystemExit(f"headless run ended {status}: {runner.store.get_run(run_id)['error']}")
    print(run_id)


def in_app_run(server: Server, page, steps: int) -> tuple[str, str]:
    """Launch from the Train page with the form's defaults (steps changed), watch it live to the end.

    Returns (run id, CPU note): the server's CPU seconds (training thread and page reruns)
    and Chromium's, from the click on Launch to the end of the run.
    """
    store = RunStore(server.runs_dir)
    before = set(store.list_runs()["id"])
    server.open(page, "/train")
    box = page.locator(".st-key-cfg-steps input")
    box.fill(str(steps))
    box.press("Enter")
    page.wait_for_function("([sel, v]) => document.querySelector(sel)?.value === v",
                           arg=[".st-key-cfg-steps input", str(steps)])
    srv, browser = processes(server)
    cpu0, t0 = (cpu_seconds(srv), cpu_seconds(browser)), time.perf_counter()
    page.locator(".st-key-launch button").click()
    new: set[str] = set()
    while not new:
        page.wait_for_timeout(250)  # the run is written by the server; poll the store for it
        new = set(store.list_runs()["id"]) - before
    run_id = new.pop()
    page.wait_for_url(lambda url: f"run={run_id}" in url)  # the live panel shows the new run
    while store.get_run(run_id)["status"] not in ("done", "failed", "stopped", "interrupted"):
        page.wait_for_timeout(1000)  # the live panel keeps polling in the tab meanwhile
    note = (f"server {cpu_seconds(srv) - cpu0[0]:.0f} CPU s, Chromium {cpu_seconds(browser) - cpu0[1]:.0f} "
            f"CPU s in {time.perf_counter() - t0:.0f} s")
    if store.get_run(run_id)["status"] != "done":
        raise SystemExit(f"in-app run ended {store.get_run(run_id)['status']}: {store.get_run(run_id)['error']}")
    return run_id, note


# --------------------------------------------------------------------------- 2. render
PAGE_MARKERS = {"/train": ".st-key-live-status", "/compare": ".st-key-cmp-chart"}


def cold_load_seconds(server: Server, page, path: str) -> float:
    """A fresh tab session: HTML, the JS bundle, the websocket, the script run, every chart drawn."""
    page.goto("about:blank")
    t0 = time.perf_counter()
    server.open(page, path)
    wait_rendered(page, PAGE_MARKERS[path.split("?")[0]])
    return time.perf_counter() - t0


@dataclass
class Timing:
    total_s: float    # click to every chart drawn (wall)
    server_cpu: float  # CPU seconds the Streamlit server spent meanwhile (the page's script run)
    browser_cpu: float  # CPU seconds of Chromium and its helpers meanwhile (layout, Plotly drawing)


def switch_seconds(server: Server, page, to: str) -> Timing:
    """A click in the sidebar's navigation to `to` until its script ran and its charts are drawn."""
    srv, browser = processes(server)
    before = cpu_seconds(srv), cpu_seconds(browser)
    t0 = time.perf_counter()
    page.locator(f"[data-testid=stSidebarNav] a[href$='{to}']").click()
    # No "the script ran" event to wait for: React can batch running -> notRunning into one
    # render, so the attribute need not change (a CI run waited 120 s for it). The URL and
    # wait_rendered's checks (this page's marker present, the other page's gone) suffice.
    page.wait_for_function("(to) => location.pathname.endsWith(to)", arg=to)
    wait_rendered(page, PAGE_MARKERS[to])
    total = time.perf_counter() - t0
    return Timing(total, cpu_seconds(srv) - before[0], cpu_seconds(browser) - before[1])


def render_seconds(server: Server, page, train_run: str, compare_runs: list[str], repeats: int):
    """(Train switch times, Compare switch times, cold loads): one session, the selection set by URL.

    The Compare selection comes from a first, untimed load with ?runs=...; a sidebar switch
    then keeps it (the page's session copy), as when a user moves between the two pages.
    """
    cold = [cold_load_seconds(server, page, f"/train?run={train_run}"),
            cold_load_seconds(server, page, f"/compare?runs={','.join(compare_runs)}")]
    train, compare = [], []
    for _ in range(repeats):
        train.append(switch_seconds(server, page, "/train"))
        compare.append(switch_seconds(server, page, "/compare"))
    return train, compare, cold


# --------------------------------------------------------------------------- 3. memory
def rss_mb() -> float:
    import psutil

    gc.collect()
    return psutil.Process().memory_info().rss / 2**20


def memory_growth(runs_dir: Path, refreshes: int, warmup: int) -> list[float]:
    """RSS (MB) after the warm-up and after each tenth of `refreshes` reruns of Train on a live run."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    writer = subprocess.Popen([sys.executable, __file__, "--live-writer", str(runs_dir)],
                              stdout=subprocess.PIPE, text=True, env=os.environ)
    run_id = writer.stdout.readline().strip()
    marks = {warmup + refreshes * k // 10 for k in range(11)}
    series = []
    try:
        st.cache_resource.clear()
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
        at.query_params["run"] = run_id
        at.switch_page("pages/train.py")
        for i in range(1, warmup + refreshes + 1):
            at.run()
            if at.exception:
                raise SystemExit(f"Train page raised: {at.exception[0].message}")
            if i in marks:
                series.append(rss_mb())
    finally:
        writer.terminate()
        writer.wait(10)
    return series


def _live_writer_main(runs_dir: str) -> None:
    """A "running" run owned by this live process, one new step a second (a fast run), until terminated."""
    store = RunStore(runs_dir)
    run_id = store.create_run(kind="policy", config=TrainConfig(steps=100_000).to_dict(), name="live")
    store.set_status(run_id, "running")
    print(run_id, flush=True)
    rng = random.Random(0)
    for step in range(1, 100_001):
        store.record_step(run_id, StepReport(step, 100_000, {"loss/total": rng.random(), "reward/total": rng.random(),
                                                            "policy/kl": rng.random(), "perf/step_time": 1.0},
                                             sample_rewards={"total": [rng.random() for _ in range(32)]},
                                             generations=[{"split": "train", "prompt": "doc\nTL;DR:", "completion":
                                                           f"step {step}", "reference": "ref", "reward": 0.5}]))
        time.sleep(1.0)


# --------------------------------------------------------------------------- main
def render_part(server: Server, page, ids: list[str], repeats: int, say) -> None:
    for label, compare_runs in (("2 runs", ids[:2]), (f"all {len(ids)} runs", ids)):
        train, compare, cold = render_seconds(server, page, ids[0], compare_runs, repeats)
        for name, timed in ((f"Train (1 of {len(ids)} runs)", train), (f"Compare ({label})", compare)):
            med = statistics.median(t.total_s for t in timed)
            say(f"render {name}: median {med:.2f} s over {len(timed)} sidebar switches "
                f"({', '.join(f'{t.total_s:.2f}' for t in timed)}; CPU meanwhile: server "
                f"{statistics.median(t.server_cpu for t in timed):.2f} s, Chromium "
                f"{statistics.median(t.browser_cpu for t in timed):.2f} s) "
                f"target <= {TARGET_RENDER_S:.1f} s: {verdict(med <= TARGET_RENDER_S)}")
        say(f"  (cold loads in a fresh tab, for reference: Train {cold[0]:.2f} s, Compare ({label}) {cold[1]:.2f} s)")


def throughput_part(server: Server, page, rounds: int, steps: int, say) -> None:
    store, speeds = RunStore(server.runs_dir), {"headless": [], "in-app": []}
    for r in range(rounds):
        configs = []
        for where in speeds:
            run_id, note = headless_run(server.runs_dir, steps) if where == "headless" else in_app_run(server, page, steps)
            speeds[where].append(samples_per_s(store, run_id))
            configs.append({k: v for k, v in store.get_run(run_id)["config"].items() if k != "name"})
            print(f"round {r + 1} {where:8s}: {speeds[where][-1]:.2f} samples/s ({note}; load {load()})", flush=True)
        if configs[0] != configs[1]:
            say(f"warning: the in-app run's config differs: {sorted(k for k in configs[0] if configs[0][k] != configs[1].get(k))}")
    head, app = statistics.median(speeds["headless"]), statistics.median(speeds["in-app"])
    say(f"throughput: headless {head:.2f} samples/s, with the live Train page in Chromium {app:.2f} samples/s = "
        f"{app / head:.0%} target >= {TARGET_SHARE:.0%}: {verdict(app / head >= TARGET_SHARE)}")


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--short", action="store_true", help="tiny sizes: checks that the bench runs, not the targets")
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--steps", type=int, default=2000, help="steps per synthetic run")
    p.add_argument("--train-steps", type=int, default=30, help="steps of each throughput run")
    p.add_argument("--rounds", type=int, default=2, help="throughput rounds (headless + in-app each)")
    p.add_argument("--renders", type=int, default=5, help="timed loads per page")
    p.add_argument("--refreshes", type=int, default=1000)
    p.add_argument("--store", help="runs folder to reuse (synthesised into on first use)")
    p.add_argument("--skip", default="", help="comma list of parts to skip: throughput,render,memory")
    p.add_argument("--headless-run", nargs=2, metavar=("RUNS_DIR", "STEPS"), help=argparse.SUPPRESS)
    p.add_argument("--live-writer", metavar="RUNS_DIR", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.short:
        args.runs, args.steps, args.train_steps, args.rounds, args.renders, args.refreshes = 3, 40, 3, 1, 1, 5
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.headless_run:
        return _headless_main(args.headless_run[0], int(args.headless_run[1])) or 0
    if args.live_writer:
        return _live_writer_main(args.live_writer) or 0
    skip = set(filter(None, args.skip.split(",")))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    tmp = Path(tempfile.mkdtemp(prefix="ui-overhead-"))
    runs_dir = Path(args.store).resolve() if args.store else tmp / "runs"
    os.environ["RMCORE_RUNS_DIR"] = str(runs_dir)
    print(f"load average before: {load()}; runs folder {runs_dir}", flush=True)
    store = RunStore(runs_dir)
    runs = store.list_runs()
    ids = list(runs[runs["name"].str.startswith("synthetic")]["id"])[::-1]  # oldest first
    if not ids:
        t0 = time.perf_counter()
        train, evaluation = captured_reports()
        ids = synthesise_runs(store, args.runs, args.steps, train, evaluation)
        print(f"synthesised in {time.perf_counter() - t0:.0f} s", flush=True)
    steps = [store.get_run(r)["last_step"] for r in ids]
    print(f"store: {len(ids)} runs x {min(steps)}-{max(steps)} steps "
          f"({(runs_dir / 'rmcore.db').stat().st_size / 2**20:.0f} MB)", flush=True)
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        print(line, flush=True)

    server = Server(runs_dir, tmp / "streamlit.log").start()
    try:
        with browser_page() as page:
            if "render" not in skip:
                render_part(server, page, ids, args.renders, say)
            if "throughput" not in skip:
                throughput_part(server, page, args.rounds, args.train_steps, say)
    finally:
        server.kill()
    if "memory" not in skip:
        series = memory_growth(runs_dir, args.refreshes, warmup=max(5, args.refreshes // 20))
        growth = series[-1] - series[0]
        say(f"memory: RSS {series[0]:.0f} MB -> {series[-1]:.0f} MB over {args.refreshes} live refreshes of Train "
            f"= {growth:+.1f} MB (every tenth: {', '.join(f'{x:.0f}' for x in series)}) "
            f"target <= {TARGET_GROWTH_MB:.0f} MB: {verdict(growth <= TARGET_GROWTH_MB)}")
    print(f"\nload average after: {load()}; Chromium {CHROMIUM}")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
