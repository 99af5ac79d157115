"""Faults of the store, signals, resume and run folders (issue items 3, 4, 5 and 7).

The store's file deleted, replaced, corrupted, read-only or on a full disk; SIGINT, SIGTERM
and SIGHUP to a real `python -m rmcore train`, once and twice; resume from a damaged newest
checkpoint; links planted in a run's folder. Where the behaviour is the CLI's (exit codes,
one line on stderr, signals), it runs as a subprocess with a timeout, so a hang fails.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import rmcore.cli_follow as cli_follow
from rmcore.checkpoints import checkpoint_problem, prune_checkpoints, save_checkpoint
from rmcore.config import TrainConfig
from rmcore.errors import ConfigError, StoreError
from rmcore.events import StepReport
from rmcore.runner import DEFAULT_TRAIN_FNS, Runner
from rmcore.store import RunStore

ROOT = Path(__file__).resolve().parents[1]
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
FAST = ["--loss", "reinforce", "--batch-size", "2", "--samples-per-prompt", "2", "--max-new-tokens", "8",
        "--eval-every", "0", "--eval-prompts", "2", "--device", "cpu", "--quiet"]
# A genuinely slow step: GRPO with 1,000 optimisation epochs over 128 samples takes minutes on a CPU.
SLOW_STEP = ["--loss", "grpo", "--ppo-epochs", "1000", "--batch-size", "16", "--samples-per-prompt", "8",
             "--max-new-tokens", "48", "--eval-every", "0", "--eval-prompts", "2", "--device", "cpu", "--quiet"]
CRASH_MARKS = ("Traceback", "terminate called", "Aborted", "core dumped", "Fatal Python error")


def cli_run(*args: str, runs_dir: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "RMCORE_RUNS_DIR": str(runs_dir)}
    return subprocess.run([sys.executable, "-m", "rmcore", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def cli_train(backbone: str, runs_dir: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "RMCORE_RUNS_DIR": str(runs_dir)}
    return subprocess.Popen([sys.executable, "-m", "rmcore", "train", "--backbone", backbone, *args], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def assert_no_crash(returncode: int, stderr: str) -> None:
    assert returncode >= 0, f"killed by signal {-returncode}: {stderr[-2000:]}"  # SIGABRT would be -6
    assert not any(mark in stderr for mark in CRASH_MARKS), stderr[-3000:]


def one_sentence(out: subprocess.CompletedProcess, *words: str) -> str:
    """Exit 2 and exactly one non-empty stderr line, an `error:` sentence holding `words`."""
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), out.stderr[-3000:]
    assert all(word in lines[0] for word in words), lines[0]
    assert_no_crash(out.returncode, out.stderr)
    return lines[0]


def wait_for_run(runs: Path, proc: subprocess.Popen, done=lambda run: run["last_step"] >= 2,
                 timeout: float = 180) -> dict:
    """Poll the store read-only until its run satisfies `done`; the row then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"train ended early: {proc.communicate()[1][-3000:]}"
        if (runs / "rmcore.db").is_file():
            store = RunStore(runs, read_only=True)
            try:
                listed = store.list_runs()
                if not listed.empty and listed.iloc[0]["status"] == "running" and done(listed.iloc[0]):
                    return listed.iloc[0].to_dict()
            except StoreError:
                pass  # the writer is creating it
            finally:
                store.close()
        time.sleep(0.1)
    raise AssertionError("the run did not get there in time")


def finish(proc: subprocess.Popen, timeout: float) -> tuple[int, str, float]:
    """(exit code, stderr, seconds it took); a process still going after `timeout` fails the test."""
    start = time.monotonic()
    try:
        _, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, stderr = proc.communicate()
        raise AssertionError(f"no exit within {timeout} s (a hang): {stderr[-3000:]}")
    return proc.returncode, stderr, time.monotonic() - start


def within(seconds: float, fn):
    """fn()'s result, called in a thread so that a hang fails the test instead of stalling it."""
    result: list = []
    thread = threading.Thread(target=lambda: result.append(fn()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive() and result, f"no result within {seconds} s (a hang)"
    return result[0]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def stored_run(runs: Path) -> dict:
    """The only run's row as written, without the listing's dead-process view."""
    with sqlite3.connect(runs / "rmcore.db") as conn:
        conn.row_factory = sqlite3.Row
        return dict(conn.execute("SELECT * FROM runs").fetchone())


def tiny(path: str, **changes) -> TrainConfig:
    base = dict(backbone=path, steps=3, batch_size=2, samples_per_prompt=2, max_new_tokens=8, eval_every=0,
                eval_prompts=2, log_generations=2, device="cpu", loss="reinforce")
    return TrainConfig(**{**base, **changes})


# =========================================================================== 3. the store
def make_store_with_a_run(runs: Path) -> str:
    store = RunStore(runs)
    run_id = store.create_run(kind="policy", config={"loss": "grpo"}, total_steps=3)
    for step in range(3):
        store.record_step(run_id, StepReport(step, 3, {"loss/total": 1.0}))
    store.set_status(run_id, "done")
    store.close()
    return run_id


def garbage(db: Path) -> None:
    db.write_bytes(os.urandom(40_000))


def foreign_sqlite(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE photos (path TEXT, taken REAL)")


def a_folder(db: Path) -> None:
    db.mkdir()


@pytest.mark.parametrize("damage, words", [(garbage, "is not a readable run store"),
                                           (foreign_sqlite, "of another program"),
                                           (a_folder, "is not a file")], ids=lambda v: getattr(v, "__name__", ""))
def test_an_unusable_store_is_one_sentence_on_every_command(damage, words, runs_dir, tiny_lm_path):
    run_id = make_store_with_a_run(runs_dir)
    db = runs_dir / "rmcore.db"
    for leftover in runs_dir.glob("rmcore.db*"):
        leftover.unlink()
    damage(db)
    before = digest(db) if db.is_file() else None
    for args in (["runs", "list"], ["runs", "show", run_id], ["runs", "export", run_id],
                 ["train", "--backbone", tiny_lm_path, *FAST, "--steps", "1"]):
        one_sentence(cli_run(*args, runs_dir=runs_dir), str(db), words)
    assert (digest(db) if db.is_file() else None) == before  # train wrote nothing into it
    assert sorted(p.name for p in runs_dir.iterdir() if not p.name.startswith("rmcore.db")) == []


def test_train_refuses_a_store_with_damaged_pages_and_writes_nothing(runs_dir, tiny_lm_path):
    """Header intact, pages in the middle overwritten: reads of other pages may still work, but
    a writer checks every page first (quick_check) and adds nothing to a damaged file."""
    store = RunStore(runs_dir)
    for _ in range(4):
        run_id = store.create_run(kind="policy", config={}, total_steps=200)
        for step in range(200):
            store.record_step(run_id, StepReport(step, 200, {f"k{j}": 1.0 for j in range(10)}))
    store._write(lambda c: c.execute("PRAGMA wal_checkpoint(TRUNCATE)"), transaction=False)
    store.close()
    db = runs_dir / "rmcore.db"
    with open(db, "r+b") as f:
        f.seek(db.stat().st_size // 2)
        f.write(os.urandom(16_384))
    before = digest(db)
    one_sentence(cli_run("train", "--backbone", tiny_lm_path, *FAST, "--steps", "1", runs_dir=runs_dir), str(db))
    listing = cli_run("runs", "list", runs_dir=runs_dir)
    assert_no_crash(listing.returncode, listing.stderr)
    if listing.returncode != 0:
        one_sentence(listing, str(db))
    assert digest(db) == before


def test_a_read_only_store_is_read_but_never_written(runs_dir, tmp_path, tiny_lm_path):
    """As root, chmod does not stop writes, so the store is bind-mounted read-only."""
    run_id = make_store_with_a_run(runs_dir)
    if IS_ROOT:
        view = tmp_path / "read-only-view"
        view.mkdir()
        mounted = subprocess.run(f"mount --bind {runs_dir} {view} && mount -o remount,ro,bind {view}",
                                 shell=True, capture_output=True, text=True)
        if mounted.returncode != 0:
            subprocess.run(["umount", str(view)], capture_output=True)
            pytest.skip(f"cannot bind-mount read-only here: {mounted.stderr.strip()}")
    else:
        view = runs_dir
        (runs_dir / "rmcore.db").chmod(0o444)
        runs_dir.chmod(0o555)
    try:
        listed = cli_run("runs", "list", "--json", runs_dir=view)
        assert listed.returncode == 0 and json.loads(listed.stdout)[0]["id"] == run_id, listed.stderr
        shown = cli_run("runs", "show", run_id, runs_dir=view)
        assert shown.returncode == 0 and json.loads(shown.stdout)["status"] == "done", shown.stderr
        one_sentence(cli_run("train", "--backbone", tiny_lm_path, *FAST, "--steps", "1", runs_dir=view),
                     "is read-only", "--runs-dir")
    finally:
        if IS_ROOT:
            subprocess.run(["umount", str(view)], check=True)
        else:
            runs_dir.chmod(0o755)
    assert len(RunStore(runs_dir, read_only=True).list_runs()) == 1


def test_read_only_commands_create_nothing(runs_dir, tmp_path):
    mistyped = tmp_path / "no" / "such" / "runs"
    listed = cli_run("runs", "list", "--runs-dir", str(mistyped), runs_dir=runs_dir)
    assert listed.returncode == 0 and listed.stdout.strip() == "no runs yet"
    assert f"there is no folder {mistyped}" in listed.stderr
    for args in (["show", "20250101-000000-x-0000"], ["export", "20250101-000000-x-0000"],
                 ["resume", "20250101-000000-x-0000"]):
        one_sentence(cli_run("--runs-dir", str(mistyped), "runs", *args, runs_dir=runs_dir),
                     "No run with id", "there is no run store there")
    assert not (tmp_path / "no").exists()
    run_id = make_store_with_a_run(runs_dir)
    before = digest(runs_dir / "rmcore.db")
    assert cli_run("runs", "show", run_id, runs_dir=runs_dir).returncode == 0
    assert digest(runs_dir / "rmcore.db") == before


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_store_deleted_or_replaced_under_a_run_fails_it_loudly(how, runs_dir, tiny_lm_path):
    proc = cli_train(tiny_lm_path, runs_dir, *FAST, "--steps", "2000")
    try:
        wait_for_run(runs_dir, proc)
        db = runs_dir / "rmcore.db"
        if how == "deleted":
            for path in runs_dir.glob("rmcore.db*"):
                path.unlink()
        else:
            shutil.copy(db, runs_dir / "copy.db")
            os.replace(runs_dir / "copy.db", db)
        code, stderr, _ = finish(proc, timeout=120)
    finally:
        proc.kill()
    assert code == 1 and "done" not in stderr.splitlines()[-1], stderr[-2000:]
    assert_no_crash(code, stderr)
    [line] = error_lines(stderr)
    assert f"{db} was {how}" in line and "while this process was using it" in line


def test_when_recording_fails_the_run_and_the_cli_end_with_an_error(runs_dir, monkeypatch):
    """A step and then the final status cannot be written (a store gone bad mid-run): the
    runner still knows the run failed and why, and the CLI's follow returns 1 at once."""
    def train(config, on_step, should_stop, on_progress, run_dir):
        for step in range(1, 50):
            on_step(StepReport(step, 49, {"loss/total": 1.0}))

    runner = Runner(runs_dir, train_fns={"policy": train})
    real_record, real_status = RunStore.record_step, RunStore.set_status

    full = "The disk holding x is full; free some space and try again."

    def record_then_fail(self, run_id, report, time=None):
        if report.step >= 3:
            raise StoreError(full)
        real_record(self, run_id, report, time)

    def no_final_status(self, run_id, status, **kwargs):
        if status in ("done", "failed", "stopped"):
            raise StoreError(full)
        real_status(self, run_id, status, **kwargs)

    monkeypatch.setattr(RunStore, "record_step", record_then_fail)
    monkeypatch.setattr(RunStore, "set_status", no_final_status)
    run_id = runner.submit(TrainConfig(steps=49, device="cpu"))
    assert within(10, lambda: cli_follow.follow_to_end(runner, run_id, 49, quiet=True)) == 1
    assert runner.outcome(run_id) == ("failed", full)  # said once: the full disk explains both
    assert runner.wait(run_id, 1) == "failed" and runner.store.get_run(run_id)["last_step"] == 2
    runner.shutdown(5)


@pytest.mark.skipif(not IS_ROOT, reason="mounting a small tmpfs needs root")
@pytest.mark.parametrize("filler", [False, True], ids=["checkpoints-fill-it", "database-fills-it"])
def test_a_full_disk_mid_run_is_one_error_line_and_no_hang(filler, tmp_path, tiny_lm_path):
    """A 1.2 MB tmpfs: checkpoints at every step fill it (each ~0.5 MB), or a file fills it
    while the run writes only metrics, so the database's next write is refused."""
    disk = tmp_path / "small-disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1200k", "tmpfs", str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    runs = disk / "runs"
    try:
        every = ["--checkpoint-every", "0", "--steps", "5000"] if filler else ["--checkpoint-every", "1",
                                                                             "--steps", "100"]
        proc = cli_train(tiny_lm_path, runs, *FAST, *every)
        try:
            if filler:  # checkpoints fill it by themselves at about step 2
                wait_for_run(runs, proc)
                with open(disk / "filler", "wb") as f, pytest.raises(OSError):
                    while True:
                        f.write(b"\0" * 65536)
                        f.flush()
            code, stderr, _ = finish(proc, timeout=180)
        finally:
            proc.kill()
            proc.wait()
        assert code == 1, stderr[-2000:]
        assert_no_crash(code, stderr)
        [line] = error_lines(stderr)
        assert line.endswith(f"{runs} is full; free some space, then resume the run."), line
        assert stored_run(runs)["last_step"] >= 1  # it failed mid-run, not at the start
        listed = cli_run("runs", "list", "--json", runs_dir=runs)  # the dead run is not shown running
        assert listed.returncode == 0 and json.loads(listed.stdout)[0]["status"] in ("failed", "interrupted")
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def test_listing_shows_a_run_whose_process_is_dead_as_interrupted(runs_dir):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # reaped: its pid is free
    store = RunStore(runs_dir)
    run_id = store.create_run(kind="policy", config={}, status="running")
    live = store.create_run(kind="policy", config={}, status="running")  # this pytest process: alive
    store._write(lambda c: c.execute("UPDATE runs SET pid = ? WHERE id = ?", (dead.pid, run_id)))
    store.close()
    listed = {r["id"]: r for r in json.loads(cli_run("runs", "list", "--json", runs_dir=runs_dir).stdout)}
    assert listed[run_id]["status"] == "interrupted" and listed[live]["status"] == "running"
    assert "stopped before it finished" in listed[run_id]["message"]
    assert json.loads(cli_run("runs", "show", run_id, runs_dir=runs_dir).stdout)["status"] == "interrupted"
    with sqlite3.connect(runs_dir / "rmcore.db") as conn:  # a listing writes nothing
        assert conn.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone() == ("running",)


# =========================================================================== 4. signals
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_a_signal_stops_a_cli_run_with_a_checkpoint(sig, runs_dir, tiny_lm_path):
    proc = cli_train(tiny_lm_path, runs_dir, *FAST, "--steps", "2000", "--checkpoint-every", "1000")
    try:
        wait_for_run(runs_dir, proc)
        proc.send_signal(sig)
        code, stderr, _ = finish(proc, timeout=120)
    finally:
        proc.kill()
    assert code == 128 + sig, stderr[-2000:]
    assert_no_crash(code, stderr)
    assert f"stopped by {sig.name} at step" in stderr and not error_lines(stderr)
    run = stored_run(runs_dir)
    store = RunStore(runs_dir, read_only=True)
    [(step, path)] = store.checkpoints(run["id"])  # the stop checkpoint (none was due before step 1000)
    assert run["status"] == "stopped" and step == run["last_step"] >= 2
    assert checkpoint_problem(path, step) is None


def test_a_second_signal_during_a_long_step_ends_the_run_at_once(runs_dir, tiny_lm_path):
    """Two Ctrl-C during a step that takes minutes: the first asks for a stop at the step's
    end, the second ends the process within seconds, with no libtorch abort."""
    proc = cli_train(tiny_lm_path, runs_dir, *SLOW_STEP, "--steps", "3")
    try:
        wait_for_run(runs_dir, proc, done=lambda run: run["last_step"] == 0)  # step 0 eval; step 1 begins
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        time.sleep(2.0)
        assert proc.poll() is None  # still inside the step, as a first signal waits for it
        proc.send_signal(signal.SIGINT)
        code, stderr, took = finish(proc, timeout=30)
    finally:
        proc.kill()
    assert code == 130 and took < 10, (code, took, stderr[-2000:])
    assert_no_crash(code, stderr)
    assert "interrupted by SIGINT after step 0" in stderr
    run = stored_run(runs_dir)
    assert (run["status"], run["last_step"]) == ("interrupted", 0) and "SIGINT" in run["message"]


def test_a_step_still_running_after_the_grace_period_is_interrupted(runs_dir, monkeypatch):
    """One signal, and a step that does not end: after STOP_GRACE_S the run is ended anyway;
    the abandoned thread, when its step finally ends, writes nothing."""
    release, exits = threading.Event(), []

    def stuck(config, on_step, should_stop, on_progress, run_dir):
        on_step(StepReport(1, 5, {"loss/total": 1.0}))
        release.wait(30)  # a step that would take minutes
        on_step(StepReport(2, 5, {"loss/total": 1.0}))

    monkeypatch.setattr(cli_follow, "STOP_GRACE_S", 0.5)
    monkeypatch.setattr(cli_follow, "_exit_now", exits.append)
    runner = Runner(runs_dir, train_fns={"policy": stuck})
    run_id = runner.submit(TrainConfig(steps=5, device="cpu"))
    while runner.store.get_run(run_id)["last_step"] < 1:
        time.sleep(0.02)
    caught = {"signals": [signal.SIGTERM]}
    code = within(5, lambda: cli_follow.follow_to_end(runner, run_id, 5, quiet=True, caught=caught))
    assert code == exits[0] == 128 + signal.SIGTERM
    assert runner.store.get_run(run_id)["status"] == "interrupted"
    release.set()
    assert runner.shutdown(10)
    run = runner.store.get_run(run_id)
    assert (run["status"], run["last_step"]) == ("interrupted", 1) and runner.outcome(run_id)[0] == "interrupted"


# =========================================================================== 5. resume
def crashed_run(runner_dir: Path, tiny_lm_path: str) -> tuple[RunStore, str]:
    """A real run that crashed after recording step 5, with checkpoints at steps 2 and 4."""
    def crash_after_step_5(config, on_step, should_stop, on_progress, run_dir, **kwargs):
        def on_step_then_crash(report: StepReport) -> None:
            on_step(report)
            if report.step == 5:
                raise RuntimeError("power cut")
        return DEFAULT_TRAIN_FNS["policy"](config, on_step_then_crash, should_stop, on_progress, run_dir, **kwargs)

    runner = Runner(runner_dir, train_fns={"policy": crash_after_step_5})
    run_id = runner.submit(tiny(tiny_lm_path, steps=6, checkpoint_every=2))
    assert runner.wait(run_id, 120) == "failed"
    runner.shutdown(10)
    assert [step for step, _ in runner.store.checkpoints(run_id)] == [2, 4]
    return runner.store, run_id


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def snapshot(store: RunStore, run_id: str) -> tuple:
    run = store.get_run(run_id)
    metrics = store.metrics([run_id])
    return (run["status"], run["last_step"], run["error"], store.checkpoints(run_id),
            sorted(map(tuple, metrics[["step", "key"]].values.tolist())), store.generation_steps(run_id))


def test_resume_falls_back_from_a_damaged_newest_checkpoint(runs_dir, tiny_lm_path):
    store, run_id = crashed_run(runs_dir, tiny_lm_path)
    newest = Path(store.checkpoints(run_id)[-1][1])
    truncate(newest / "model.safetensors")
    runner = Runner(runs_dir)
    assert runner.resume(run_id) == run_id
    assert runner.wait(run_id, 120) == "done", runner.store.get_run(run_id)["error"]
    runner.shutdown(10)
    metrics = store.metrics([run_id])
    assert sorted(metrics["step"].unique()) == list(range(7)) and not metrics.duplicated(["step", "key"]).any()
    assert [step for step, _ in store.checkpoints(run_id)] == [2, 4, 6]  # 4 and 6 saved again after 2
    assert checkpoint_problem(newest, 4) is None  # the damaged folder was rewritten


def test_resume_with_no_intact_checkpoint_changes_nothing(runs_dir, tiny_lm_path):
    store, run_id = crashed_run(runs_dir, tiny_lm_path)
    (older, newer) = (Path(path) for _, path in store.checkpoints(run_id))
    truncate(older / "optimizer.pt")
    (newer / "trainer_state.json").write_text("{not json")
    before = snapshot(store, run_id)
    with pytest.raises(ConfigError, match=r"has no intact checkpoint to resume from \(.*trainer_state\.json"):
        Runner(runs_dir).resume(run_id)
    one_sentence(cli_run("runs", "resume", run_id, runs_dir=runs_dir), "has no intact checkpoint")
    assert snapshot(store, run_id) == before and before[1] == 5


def test_saving_after_a_fallback_removes_the_later_folders_not_the_intact_ones(tmp_path):
    """Resumed from step 2 past damaged (or never recorded) folders of steps 6 and 8: pruning
    by name keeps the newest two, so those would survive and the real steps 2 and 4 go."""
    folder = tmp_path / "checkpoints"
    for stale in ("step-000002", "step-000006", "step-000008"):
        (folder / stale).mkdir(parents=True)
    saver = SimpleNamespace(save_pretrained=lambda path, **kw: (Path(path) / "model.safetensors").write_bytes(b""))
    session = SimpleNamespace(policy=saver, tokenizer=saver, value_head=None, step=4, baseline=None, kl_coef=0.05,
                              optimizer=torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1),
                              cfg=SimpleNamespace(loss="reinforce"))
    save_checkpoint(session, folder / "step-000004")
    prune_checkpoints(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["step-000002", "step-000004"]


def test_checkpoint_problem_names_what_is_damaged(runs_dir, tiny_lm_path, tmp_path):
    store, run_id = crashed_run(runs_dir, tiny_lm_path)
    step, intact = store.checkpoints(run_id)[-1]
    assert checkpoint_problem(intact, step) is None
    assert "is for step 4, not 3" in checkpoint_problem(intact, 3)
    damages = {"model.safetensors": truncate,
               "optimizer.pt": truncate,
               "trainer_state.json": lambda p: p.unlink()}
    for name, damage in damages.items():
        copy = tmp_path / name
        shutil.copytree(intact, copy)
        damage(copy / name)
        assert name in checkpoint_problem(copy, step), name
    grown = tmp_path / "grown"
    shutil.copytree(intact, grown)
    with open(grown / "model.safetensors", "ab") as f:
        f.write(b"\0" * 10)
    assert "has extra bytes" in checkpoint_problem(grown, step)


# =========================================================================== 7. links
@pytest.fixture
def outside(tmp_path) -> Path:
    """Files a run's folder must never delete, read or write through a link."""
    place = tmp_path / "outside"
    (place / "folder").mkdir(parents=True)
    (place / "folder" / "keep.txt").write_text("keep me")
    (place / "secret.txt").write_text("not yours")
    return place


def ended_run(store: RunStore) -> str:
    run_id = store.create_run(kind="policy", config={})
    store.record_step(run_id, StepReport(1, 1, {"loss/total": 1.0}))
    store.set_status(run_id, "done")
    return run_id


def untouched(outside: Path) -> bool:
    return ((outside / "folder" / "keep.txt").read_text(), (outside / "secret.txt").read_text()) == (
        "keep me", "not yours")


def test_delete_removes_links_in_a_run_folder_not_their_targets(runs_dir, outside):
    store = RunStore(runs_dir)
    run_id = ended_run(store)
    folder = store.run_dir(run_id)
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "checkpoints" / "weights").symlink_to(outside / "folder")
    (folder / "notes.txt").symlink_to(outside / "secret.txt")
    store.delete_run(run_id)
    assert not os.path.lexists(folder) and store.list_runs().empty and untouched(outside)


def test_delete_of_a_run_folder_that_is_a_link_removes_only_the_link(runs_dir, outside):
    store = RunStore(runs_dir)
    run_id = ended_run(store)
    store.run_dir(run_id).symlink_to(outside / "folder", target_is_directory=True)
    store.delete_run(run_id)
    assert not os.path.lexists(store.run_dir(run_id)) and untouched(outside)


def test_delete_that_cannot_delete_the_rows_changes_nothing(runs_dir, monkeypatch):
    store = RunStore(runs_dir)
    run_id = ended_run(store)
    (store.run_dir(run_id) / "checkpoints").mkdir(parents=True)
    (store.run_dir(run_id) / "checkpoints" / "w.safetensors").write_bytes(b"w")

    def read_only(*args, **kwargs):
        raise StoreError("rmcore.db is read-only.")

    monkeypatch.setattr(store, "_write", read_only)
    with pytest.raises(StoreError):
        store.delete_run(run_id)
    assert (store.run_dir(run_id) / "checkpoints" / "w.safetensors").read_bytes() == b"w"
    assert [p.name for p in runs_dir.iterdir() if p.name.startswith(".")] == []  # nothing left aside
    assert store.get_run(run_id)["status"] == "done"


def test_export_never_writes_through_a_link(runs_dir, outside):
    store = RunStore(runs_dir)
    run_id = ended_run(store)
    export = store.run_dir(run_id) / "export"
    export.mkdir(parents=True)
    (export / "metrics.csv").symlink_to(outside / "secret.txt")
    paths = store.export(run_id, "csv")
    assert export / "metrics.csv" in paths and not (export / "metrics.csv").is_symlink()
    assert "loss/total" in (export / "metrics.csv").read_text() and untouched(outside)

    shutil.rmtree(export)
    export.symlink_to(outside / "folder", target_is_directory=True)
    with pytest.raises(ConfigError, match="is a symbolic link"):
        store.export(run_id, "csv")
    one_sentence(cli_run("runs", "export", run_id, runs_dir=runs_dir), "is a symbolic link", "--out")
    assert sorted(p.name for p in (outside / "folder").iterdir()) == ["keep.txt"] and untouched(outside)
