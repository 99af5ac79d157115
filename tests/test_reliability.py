"""Faults: a loss that goes non-finite, a reward term that raises, CUDA out of memory, and the
process killed mid-run (SIGKILL) then resumed; each run ends in a state the user can read,
keeps what it had, and the runner keeps serving (issue 7, "Faults")."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import rmcore.algorithms.reinforce
import rmcore.policy_step
import rmcore.rewards.text
from rmcore.cli import main as cli_main
from rmcore.config import TrainConfig
from rmcore.errors import ConfigError
from rmcore.events import StepReport
from rmcore.runner import DEFAULT_TRAIN_FNS, OOM_HINT, Runner
from rmcore.store import RunStore

ROOT = Path(__file__).resolve().parents[1]


def tiny(path: str, **changes) -> TrainConfig:
    base = dict(backbone=path, steps=3, batch_size=2, samples_per_prompt=2, max_new_tokens=8, eval_every=0,
                eval_prompts=2, log_generations=2, device="cpu", loss="reinforce")
    return TrainConfig(**{**base, **changes})


def steps_and_duplicates(store: RunStore, run_id: str) -> tuple[list[int], int]:
    """(recorded steps, number of (step, key) pairs recorded more than once)."""
    metrics = store.metrics([run_id])
    duplicates = int(metrics.duplicated(["step", "key"]).sum())
    return sorted(metrics["step"].unique().tolist()), duplicates


# --------------------------------------------------------------------------- non-finite loss
def test_nan_loss_at_step_2_fails_keeping_step_1_and_its_checkpoint(runner, tiny_lm_path, monkeypatch):
    real_loss, calls = rmcore.algorithms.reinforce.policy_gradient_loss, []

    def nan_on_second_call(*args, **kwargs):  # REINFORCE computes its loss once per step
        calls.append(1)
        loss, stats = real_loss(*args, **kwargs)
        return (loss * float("nan") if len(calls) == 2 else loss), stats

    monkeypatch.setattr(rmcore.algorithms.reinforce, "policy_gradient_loss", nan_on_second_call)
    run_id = runner.submit(tiny(tiny_lm_path, steps=4, checkpoint_every=1))
    assert runner.wait(run_id, 120) == "failed"
    run = runner.store.get_run(run_id)
    assert run["error"].startswith("non-finite loss at step 2 (nan)") and "smaller learning rate" in run["error"]
    assert run["last_step"] == 1 and steps_and_duplicates(runner.store, run_id) == ([0, 1], 0)
    checkpoint = runner.store.latest_checkpoint(run_id)
    assert checkpoint.endswith("step-000001") and (Path(checkpoint) / "model.safetensors").is_file()
    assert not (Path(checkpoint).parent / "step-000002").exists()  # nothing saved from the bad step


@pytest.mark.parametrize("loss, step", [("reinforce", 2), ("ppo", 1)])
def test_absurd_learning_rate_fails_as_non_finite_and_keeps_earlier_steps(loss, step, runner, tiny_lm_path):
    """lr = 1e6 really blows the tiny model up: PPO's second epoch sees a NaN loss at step 1;
    REINFORCE's weights are NaN after step 1, so step 2 fails while sampling."""
    run_id = runner.submit(tiny(tiny_lm_path, loss=loss, lr=1e6, max_grad_norm=0.0, steps=4, checkpoint_every=1))
    assert runner.wait(run_id, 120) == "failed"
    run = runner.store.get_run(run_id)
    assert re.fullmatch(rf"non-finite (loss|model outputs) at step {step} \((nan|NaN).*\); "
                        r"try a smaller learning rate\.", run["error"]), run["error"]
    assert run["last_step"] == step - 1 and steps_and_duplicates(runner.store, run_id)[0] == list(range(step))
    if step > 1:
        assert runner.store.latest_checkpoint(run_id).endswith(f"step-{step - 1:06d}")


# --------------------------------------------------------------------------- reward term, OOM
def test_reward_term_that_raises_fails_the_run_naming_the_term(runner, tiny_lm_path, monkeypatch):
    def broken(self, prompts, completions, references):
        raise ZeroDivisionError("no n-grams")

    monkeypatch.setattr(rmcore.rewards.text.Diversity, "__call__", broken)
    run_id = runner.submit(tiny(tiny_lm_path))
    assert runner.wait(run_id, 120) == "failed"
    run = runner.store.get_run(run_id)
    assert run["error"] == "Reward term 'diversity' failed: no n-grams"
    assert "ZeroDivisionError" in run["traceback"]


def test_cuda_out_of_memory_fails_with_a_hint_and_the_runner_keeps_serving(runner, tiny_lm_path, monkeypatch):
    real_sample = rmcore.policy_step.sample

    def out_of_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(rmcore.policy_step, "sample", out_of_memory)
    run_id = runner.submit(tiny(tiny_lm_path))
    assert runner.wait(run_id, 120) == "failed"
    error = runner.store.get_run(run_id)["error"]
    assert error == "OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB" + OOM_HINT
    assert "smaller batch" in error and "fewer new tokens" in error
    assert runner.store.get_run(run_id)["last_step"] == 0  # the step-0 eval was kept
    monkeypatch.setattr(rmcore.policy_step, "sample", real_sample)
    assert runner.wait(runner.submit(tiny(tiny_lm_path, steps=1)), 120) == "done"


# --------------------------------------------------------------------------- resume
def test_a_crashed_run_resumes_to_what_an_unbroken_run_records(tiny_lm_path, runs_dir, capsys):
    """Crash right after step 3 is recorded (checkpoint at 2): resume deletes step 3, trains
    3..5 again, and the store ends with one row per step and key, equal to an unbroken run."""
    crashes = []

    def crash_once_after_step_3(config, on_step, should_stop, on_progress, run_dir, **kwargs):
        def on_step_then_crash(report: StepReport) -> None:
            on_step(report)
            if report.step == 3 and not crashes:
                crashes.append(report.step)
                raise RuntimeError("power cut")

        return DEFAULT_TRAIN_FNS["policy"](config, on_step_then_crash, should_stop, on_progress, run_dir, **kwargs)

    runner = Runner(runs_dir, train_fns={"policy": crash_once_after_step_3})
    cfg = tiny(tiny_lm_path, loss="ppo", steps=5, checkpoint_every=2, kl_coef=0.1)
    broken = runner.submit(cfg)
    assert runner.wait(broken, 120) == "failed" and runner.store.get_run(broken)["last_step"] == 3
    assert steps_and_duplicates(runner.store, broken) == ([0, 1, 2, 3], 0)
    runner.shutdown(10)

    # The CLI resumes it (a new Runner on the same folder), following it to the end.
    assert cli_main(["--runs-dir", str(runs_dir), "runs", "resume", broken, "--quiet"]) == 0
    assert f"run {broken} resumes at step 2 of 5" in capsys.readouterr().err
    store = RunStore(runs_dir)
    run = store.get_run(broken)
    assert (run["status"], run["last_step"], run["error"], run["finished"] is not None) == ("done", 5, None, True)
    assert steps_and_duplicates(store, broken) == ([0, 1, 2, 3, 4, 5], 0)
    assert store.generation_steps(broken) == [0, 1, 2, 3, 4, 5]
    assert [step for step, _ in store.checkpoints(broken)] == [2, 4, 5]

    unbroken = Runner(runs_dir)
    reference = unbroken.submit(cfg)
    assert unbroken.wait(reference, 120) == "done"
    unbroken.shutdown(10)

    def values(run_id):
        frame = store.metrics([run_id])
        frame = frame[~frame.key.str.startswith("perf/")]
        return {(r.step, r.key): round(r.value, 5) for r in frame.itertuples()}

    assert values(broken) == values(reference)


def test_resume_refuses_with_one_sentence_and_changes_nothing(runner, runs_dir, tiny_lm_path):
    store = runner.store
    done = runner.submit(tiny(tiny_lm_path, steps=1))
    assert runner.wait(done, 120) == "done"
    no_checkpoint = store.create_run(kind="policy", config=tiny(tiny_lm_path).to_dict(), total_steps=3)
    store.set_status(no_checkpoint, "interrupted")
    reward_model = store.create_run(kind="reward_model", config={"loss": "bradley_terry"}, total_steps=3)
    store.set_status(reward_model, "stopped")
    queued_elsewhere = store.create_run(kind="policy", config=tiny(tiny_lm_path).to_dict(), total_steps=3)
    store._write(lambda c: c.execute("UPDATE runs SET pid = 1 WHERE id = ?", (queued_elsewhere,)))
    before = store.list_runs()[["id", "status", "last_step"]].to_dict("records")
    cases = [(done, "is done; only interrupted, failed or stopped runs can be resumed"),
             (no_checkpoint, "has no checkpoint to resume from"),
             (reward_model, "is a reward-model run"),
             (queued_elsewhere, "is queued; only a run that has ended can be resumed"),
             ("no-such-run", "No run with id 'no-such-run'"),
             ("../etc", "Invalid run id")]
    for run_id, words in cases:
        with pytest.raises(ConfigError, match=words):
            runner.resume(run_id)
    assert store.list_runs()[["id", "status", "last_step"]].to_dict("records") == before


def test_two_resumes_at_once_start_one_run(runs_dir, tmp_path):
    """Two tabs (threads of one runner) or two processes (the store's check) resume the same
    run at the same moment: exactly one gets it, the other a ConfigError."""
    import threading

    store = RunStore(runs_dir)
    run_id = store.create_run(kind="policy", config=TrainConfig(steps=4, device="cpu").to_dict(), total_steps=4)
    folder = tmp_path / "step-000002"
    folder.mkdir()
    (folder / "trainer_state.json").write_text('{"step": 2}')
    for step in range(4):
        store.record_step(run_id, StepReport(step, 4, {"loss/total": 1.0}, checkpoint=str(folder) if step == 2 else None))
    store.set_status(run_id, "interrupted")
    gate, resumed_from = threading.Event(), []

    def gated(config, on_step, should_stop, on_progress, run_dir, resume_from=None):
        resumed_from.append(resume_from)
        gate.wait(10)

    runner = Runner(runs_dir, train_fns={"policy": gated})
    barrier, outcomes = threading.Barrier(2), []

    def click_resume() -> None:
        barrier.wait()
        try:
            outcomes.append(runner.resume(run_id))
        except ConfigError as exc:
            outcomes.append(str(exc))

    clicks = [threading.Thread(target=click_resume) for _ in range(2)]
    for thread in clicks:
        thread.start()
    for thread in clicks:
        thread.join(10)
    try:
        assert len(outcomes) == 2 and outcomes.count(run_id) == 1
        assert re.fullmatch(rf"Run {run_id} is (queued|preparing); only a run that has ended can be resumed\.",
                            next(o for o in outcomes if o != run_id))
        with pytest.raises(ConfigError, match="cannot be resumed now"):
            store.reopen(run_id, 2)                      # another process, a moment later
    finally:
        gate.set()
    assert runner.wait(run_id, 10) == "done" and resumed_from == [str(folder)]
    assert store.get_run(run_id)["last_step"] == 2 and sorted(store.metrics([run_id]).step) == [0, 1, 2]
    runner.shutdown(5)
    store.close()


def test_truncate_after_keeps_steps_up_to_the_checkpoint(tmp_path):
    store = RunStore(tmp_path / "store")
    run_id = store.create_run(kind="policy", config={}, total_steps=6)
    for step in range(6):
        store.record_step(run_id, StepReport(step, 6, {"loss/total": float(step), "reward/total": 1.0},
                                             sample_rewards={"total": [1.0, 2.0]},
                                             generations=[{"completion": str(step)}],
                                             checkpoint=f"/c/{step}" if step in (2, 4) else None))
    store.truncate_after(run_id, 3)
    assert store.get_run(run_id)["last_step"] == 3
    assert sorted(store.metrics([run_id])["step"].unique()) == [0, 1, 2, 3]
    assert len(store.metrics([run_id])) == 8 and len(store.all_sample_rewards(run_id)) == 8
    assert store.generation_steps(run_id) == [0, 1, 2, 3] and store.checkpoints(run_id) == [(2, "/c/2")]
    store.truncate_after(run_id, 5)  # nothing after 5: a no-op that never raises last_step
    assert store.get_run(run_id)["last_step"] == 3
    store.close()


# --------------------------------------------------------------------------- SIGKILL
@pytest.mark.slow  # a real CLI process, killed, resumed, then replayed to count keys: ~15 s alone
def test_server_killed_mid_run_is_interrupted_then_resumes_to_the_planned_steps(tiny_lm_path, tmp_path):
    """A real `python -m rmcore train` is SIGKILLed after a checkpoint; a new Runner marks the
    run interrupted with its metrics, and resume brings it to its planned step count with
    one metric row per step and key (the steps recorded after the checkpoint are redone)."""
    from rmcore.trainer import train

    runs, steps = tmp_path / "killed", 30
    env = {**os.environ, "RMCORE_RUNS_DIR": str(runs)}
    args = ["train", "--backbone", tiny_lm_path, "--loss", "reinforce", "--steps", str(steps), "--batch-size", "2",
            "--samples-per-prompt", "2", "--max-new-tokens", "8", "--eval-every", "0", "--eval-prompts", "2",
            "--checkpoint-every", "3", "--device", "cpu", "--quiet"]
    proc = subprocess.Popen([sys.executable, "-m", "rmcore", *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        run_id, checkpoint_step, killed_at = wait_for_a_step_after_a_checkpoint(runs, proc)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(30)  # reaped: a zombie would still look alive to kill(pid, 0)

    store = RunStore(runs)
    assert store.get_run(run_id)["status"] == "running"        # the dead process could not say
    runner = Runner(runs)
    try:
        run = store.get_run(run_id)
        assert run["status"] == "interrupted" and run["last_step"] >= killed_at > checkpoint_step >= 3
        recorded, duplicates = steps_and_duplicates(store, run_id)
        assert recorded == list(range(run["last_step"] + 1)) and duplicates == 0

        assert runner.resume(run_id) == run_id
        assert store.get_run(run_id)["status"] in ("queued", "preparing", "running")
        assert runner.wait(run_id, 240) == "done", store.get_run(run_id)["error"]
    finally:
        assert runner.shutdown(30)
    run = store.get_run(run_id)
    assert (run["last_step"], run["total_steps"], run["pid"]) == (steps, steps, os.getpid())
    # Every step with every key its trainer reports, exactly once. The killed process's
    # reports are gone; the same config and seed report the same keys, so replay it.
    reported: dict[int, set[str]] = {}
    train(TrainConfig.from_dict(run["config"]), on_step=lambda r: reported.__setitem__(r.step, set(r.metrics)))
    metrics = store.metrics([run_id])
    assert metrics.groupby("step").key.apply(set).to_dict() == reported and len(reported) == steps + 1
    assert len(metrics) == sum(len(keys) for keys in reported.values())
    assert int(metrics.duplicated(["step", "key"]).sum()) == 0
    store.close()


def wait_for_a_step_after_a_checkpoint(runs: Path, proc: subprocess.Popen,
                                       timeout: float = 120) -> tuple[str, int, int]:
    """Poll the store until the run has a checkpoint at step ≥ 3 and has recorded a later step."""
    deadline = time.monotonic() + timeout
    store = None
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the training process ended before it could be killed"
        if store is None and (runs / "rmcore.db").is_file():
            store = RunStore(runs)
        if store is not None and not store.list_runs().empty:
            run = store.list_runs().iloc[0]
            found = store.checkpoints(run["id"])
            if found and found[-1][0] >= 3 and run["last_step"] > found[-1][0]:
                store.close()
                return run["id"], found[-1][0], int(run["last_step"])
        time.sleep(0.02)
    raise AssertionError("no checkpoint within the timeout")
