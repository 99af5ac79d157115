"""One preflight for both kinds of run (issue: "Bad input"): every field at its extremes, broken
backbone folders, bad and pathological data files, a δ reward model of the wrong kind, and
the CLI's one `error:` line; then non-finite losses and gradient norms in both trainers.

A refused config leaves the store as it was: no run row, no run folder. A config that an
extreme value leaves valid must then train to the end.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import rmcore.data.files
import rmcore.algorithms.reinforce
import rmcore.policy_step
import rmcore.rm_trainer
from rmcore.config import RewardModelConfig, TrainConfig
from rmcore.errors import ConfigError, RmcoreError
from rmcore.runner import Runner
from rmcore.store import RunStore

ROOT = Path(__file__).resolve().parents[1]

# By field type, values no field can hold (past float32, SQLite INTEGER or torch's seed; not a
# number; not UTF-8; too long; control characters), and borderline values some fields can.
NEVER_VALID = {
    float: [math.nan, math.inf, -math.inf, 1e39, -1e39, 2**70, 10**400],
    int: [2**63, 2**70, -(2**63), math.nan, 1.5, "3"],
    str: ["x" * 5000, "\udcff", "a\x00b", "two\nlines", 7],
    bool: [1, "yes", None],
}
BORDERLINE = {float: [-1.0, 0.0], int: [-1, 0, 2**31], str: [""], bool: []}


def policy(path: str, **changes) -> TrainConfig:
    base = TrainConfig(backbone=path, loss="reinforce", steps=1, batch_size=2, samples_per_prompt=2,
                       max_new_tokens=4, eval_every=0, eval_prompts=2, log_generations=1, checkpoint_every=0,
                       device="cpu")
    return base.replace(**changes)


def reward_model(path: str, **changes) -> RewardModelConfig:
    base = RewardModelConfig(backbone=path, steps=1, batch_size=2, eval_pairs=4, eval_every=0, max_length=64,
                             device="cpu")
    return base.replace(**changes)


def extreme_cases() -> list:
    cases = []
    for kind, make in (("policy", policy), ("reward_model", reward_model)):
        cls = TrainConfig if kind == "policy" else RewardModelConfig
        for f in dataclasses.fields(cls):
            kind_of = type(f.default)
            values = [(v, True) for v in NEVER_VALID[kind_of]] + [(v, False) for v in BORDERLINE[kind_of]]
            cases += [pytest.param(make, f.name, value, never_valid, id=f"{kind}-{f.name}-{ascii(value)[:12]}")
                      for value, never_valid in values]
    return cases


def store_state(runner: Runner) -> tuple[list[str], list[str]]:
    """(run ids in the store, entries of the runs folder besides the database)."""
    entries = sorted(p.name for p in runner.store.runs_dir.iterdir() if not p.name.startswith("rmcore.db"))
    return list(runner.store.list_runs()["id"]), entries


def assert_refused(runner: Runner, config, *words: str) -> str:
    """submit raises one RmcoreError sentence holding every word; the store is unchanged."""
    before = store_state(runner)
    with pytest.raises(RmcoreError) as raised:
        runner.submit(config)
    message = str(raised.value)
    assert "\n" not in message and all(w in message for w in words), message
    assert store_state(runner) == before and runner.active() == []
    return message


# --------------------------------------------------------------------------- every field, both kinds
@pytest.mark.parametrize("make, name, value, never_valid", extreme_cases())
def test_every_field_at_its_extremes_is_refused_naming_it_or_trains(make, name, value, never_valid, tiny_lm_path,
                                                                    runner):
    config = dataclasses.replace(make(tiny_lm_path), **{name: value})
    before = store_state(runner)
    try:
        run_id = runner.submit(config)
    except ConfigError as err:
        message = str(err)
        assert "\n" not in message and name in message, message
        assert store_state(runner) == before and runner.active() == []
        return
    assert not never_valid, f"{name}={value!r} was accepted"
    # Valid at this borderline value: it must then train (no crash, no hang, no non-finite failure).
    assert runner.wait(run_id, 240) == "done", runner.store.get_run(run_id)["error"]


def test_the_faults_the_review_found_are_refused(tiny_lm_path, runner):
    """Each of these used to start a run (or be written before failing)."""
    assert_refused(runner, reward_model(tiny_lm_path, max_grad_norm=-1.0), "max_grad_norm must not be negative")
    assert_refused(runner, reward_model(tiny_lm_path, loss="magic"), "Unknown reward-model loss 'magic'")
    assert_refused(runner, reward_model(tiny_lm_path, task="/nonexistent/pairs.jsonl"), "was not found")
    assert_refused(runner, policy(tiny_lm_path, gae_lambda=1.5), "gae_lambda must be in [0, 1]")
    assert_refused(runner, policy(tiny_lm_path, gae_gamma=-0.1), "gae_gamma must be in [0, 1]")
    assert_refused(runner, policy(tiny_lm_path, baseline_decay=2.0), "baseline_decay must be in [0, 1]")
    assert_refused(runner, policy(tiny_lm_path, seed=2**64), "seed must be at most 4294967295")
    assert_refused(runner, policy(tiny_lm_path, steps=2**63), "steps must be at most 1000000")
    assert_refused(runner, policy(tiny_lm_path, lr=1e39), "lr must be at most 1000000")
    assert_refused(runner, policy(tiny_lm_path, alpha=1e39), "alpha must be at most 1000000")
    assert_refused(runner, policy(tiny_lm_path, temperature=1e-30), "temperature must be at least 0.001")
    assert_refused(runner, policy(tiny_lm_path, task="\udcff.jsonl"), "task is not valid UTF-8")
    assert_refused(runner, policy(tiny_lm_path, task="/" + "d" * 4200), "task is 4201 characters long")
    assert_refused(runner, policy(tiny_lm_path, name="n" * 201), "name is 201 characters long")
    assert_refused(runner, reward_model(tiny_lm_path, loss="triplet", family="scalar", margin=1.0),
                   "embedding family")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_cuda_without_cuda_is_refused_for_both_kinds(device, tiny_lm_path, runner):
    assert_refused(runner, policy(tiny_lm_path, device=device), "no CUDA GPU is visible")
    assert_refused(runner, reward_model(tiny_lm_path, device=device), "no CUDA GPU is visible")


# --------------------------------------------------------------------------- backbone folders
def broken_copy(tiny_lm_path: str, folder: Path, how: str) -> str:
    """A copy of the tiny model with one thing wrong."""
    shutil.copytree(tiny_lm_path, folder)
    weights = folder / "model.safetensors"
    if how == "no-tokenizer":
        for file in folder.glob("*"):
            if file.name.startswith(("tokenizer", "vocab", "merges", "special_tokens")):
                file.unlink()
    elif how == "truncated-weights":
        with open(weights, "r+b") as handle:
            handle.truncate(weights.stat().st_size // 2)
    elif how == "garbage-weights":
        weights.write_bytes(b"\xff" * 64)
    elif how == "missing-shard":
        (folder / "model.safetensors.index.json").write_text(json.dumps(
            {"weight_map": {"a": "model.safetensors", "b": "model-00002-of-00002.safetensors"}}))
    elif how == "no-config":
        (folder / "config.json").unlink()
    elif how == "config-not-a-model":
        (folder / "config.json").write_text('{"hello": 1}')
    elif how == "tokenizer-corrupt":
        (folder / "tokenizer.json").write_text('{"version": ')
    return str(folder)


BROKEN = {"no-tokenizer": "has no tokenizer files", "truncated-weights": "truncated or corrupt",
          "garbage-weights": "not a readable safetensors file", "missing-shard": "model-00002-of-00002",
          "no-config": "has no config.json", "config-not-a-model": "Cannot load the config",
          "tokenizer-corrupt": "Cannot load the tokenizer"}


@pytest.mark.parametrize("how", list(BROKEN))
def test_a_broken_backbone_folder_is_refused_for_both_kinds(how, tiny_lm_path, tmp_path, runner):
    path = broken_copy(tiny_lm_path, tmp_path / how, how)
    assert_refused(runner, policy(path), BROKEN[how], path)
    assert_refused(runner, reward_model(path), BROKEN[how], path)


# --------------------------------------------------------------------------- data files
ROW = '{"prompt": "p", "chosen": "c", "rejected": "r", "reference": "y"}\n'
PATHOLOGICAL = {  # file name -> (content, words of the error, the limits scaled down for it)
    "deep.jsonl": ('{"prompt": ' + "[" * 100_000 + "]" * 100_000 + "}\n", "nested too deeply", {}),
    "deep.json": ("[" + '{"a":' * 50_000 + "1" + "}" * 50_000 + "]", "nested too deeply", {}),
    "digits.jsonl": ('{"prompt": ' + "9" * 5000 + "}\n", "more than 4,300 digits", {}),
    "latin1.jsonl": (b'{"prompt": "caf\xe9"}\n', "not UTF-8 text", {}),
    "long.jsonl": ('{"prompt": "' + "a" * 200 + '"}\n', "a line of 214 characters", {"MAX_LINE_CHARS": 200}),
    "rows.jsonl": (ROW * 11, "more than 10 rows", {"MAX_ROWS": 10}),
    "rows.csv": ("prompt,chosen,rejected\n" + "p,c,r\n" * 11, "more than 10 rows", {"MAX_ROWS": 10}),
    "big.csv": ("prompt,reference\n" + "p,y\n" * 100, "GB; at most", {"MAX_FILE_BYTES": 300}),
}


@pytest.mark.parametrize("name", list(PATHOLOGICAL))
def test_pathological_data_files_are_refused_for_both_kinds(name, tiny_lm_path, tmp_path, runner, monkeypatch):
    content, words, limits = PATHOLOGICAL[name]
    for limit, value in limits.items():  # the real limits are far larger; the check is the same
        monkeypatch.setattr(rmcore.data.files, limit, value)
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    assert_refused(runner, policy(tiny_lm_path, task=str(path)), words, name)
    assert_refused(runner, reward_model(tiny_lm_path, task=str(path)), words, name)


def test_reward_model_data_is_checked_before_the_run_is_written(tiny_lm_path, tmp_path, runner):
    summaries = tmp_path / "summaries.csv"
    summaries.write_text("prompt,reference\n" + "".join(f"doc {i},sum {i}\n" for i in range(30)))
    assert_refused(runner, reward_model(tiny_lm_path, task=str(summaries)), "no preference pairs")
    assert_refused(runner, reward_model(tiny_lm_path, batch_size=5000), "larger than the training pairs")


# --------------------------------------------------------------------------- the δ reward model
def test_the_delta_reward_model_must_resolve_to_a_reward_model(tiny_lm_path, tmp_path, runner):
    delta = dict(alpha=0.0, beta=0.0, gamma=0.0, delta=1.0)
    assert_refused(runner, policy(tiny_lm_path, **delta, reward_model="no-such-run"), "neither a checkpoint")
    # A causal LM folder is no reward model: its config has 2 labels, not one.
    assert_refused(runner, policy(tiny_lm_path, **delta, reward_model=tiny_lm_path), "not a scalar reward model")
    policy_run = runner.store.create_run(kind="policy", config=TrainConfig().to_dict())
    with pytest.raises(ConfigError, match="is a policy run, not a reward model"):
        runner.submit(policy(tiny_lm_path, **delta, reward_model=policy_run))
    corrupt = Path(shutil.copytree(tiny_lm_path, tmp_path / "rm"))
    (corrupt / "rm_info.json").write_text('{"kind": "oracle"}')
    assert_refused(runner, policy(tiny_lm_path, **delta, reward_model=str(corrupt)), "rm_info.json")
    truncated = broken_copy(tiny_lm_path, tmp_path / "rm-truncated", "truncated-weights")
    assert_refused(runner, policy(tiny_lm_path, **delta, reward_model=truncated), "truncated or corrupt")


# --------------------------------------------------------------------------- the CLI
def cli(*args: str, runs_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "RMCORE_RUNS_DIR": str(runs_dir)}
    return subprocess.run([sys.executable, "-m", "rmcore", "--runs-dir", str(runs_dir), *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)


CLI_CASES = {  # name -> (arguments after `python -m rmcore`, words of the one error line); {x}: a path
    "rm-negative-grad-norm": (["train-rm", "--max-grad-norm", "-1"], "max_grad_norm must not be negative"),
    "rm-unknown-loss": (["train-rm", "--loss", "magic"], "Unknown reward-model loss 'magic'"),
    "rm-missing-task": (["train-rm", "--task", "{tmp}/gone.jsonl"], "was not found"),
    "policy-cuda": (["train", "--device", "cuda"], "no CUDA GPU is visible"),
    "rm-cuda": (["train-rm", "--device", "cuda"], "no CUDA GPU is visible"),
    "policy-no-tokenizer": (["train", "--backbone", "{no-tokenizer}"], "has no tokenizer files"),
    "rm-no-tokenizer": (["train-rm", "--backbone", "{no-tokenizer}"], "has no tokenizer files"),
    "policy-truncated-weights": (["train", "--backbone", "{truncated-weights}"], "truncated or corrupt"),
    "rm-truncated-weights": (["train-rm", "--backbone", "{truncated-weights}"], "truncated or corrupt"),
    "policy-surrogate-name": (["train", "--name", "\udcff"], "name is not valid UTF-8"),
    "policy-seed-past-int64": (["train", "--seed", str(2**70)], "seed must be at most"),
}


@pytest.fixture(scope="module")
def broken_models(tiny_lm_path, tmp_path_factory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("broken-models")
    return {"tmp": str(tmp), **{how: broken_copy(tiny_lm_path, tmp / how, how)
                                for how in ("no-tokenizer", "truncated-weights")}}


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_the_cli_refuses_with_one_error_line_and_writes_no_run(case, broken_models, tiny_lm_path, tmp_path):
    if case.endswith("cuda") and torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    args, words = CLI_CASES[case]
    small = ["--steps", "1", "--batch-size", "2", "--device", "cpu"]
    if "--backbone" not in args:
        small += ["--backbone", tiny_lm_path]
    runs = tmp_path / "runs"
    out = cli(*args[:1], *small, *[a.format(**broken_models) for a in args[1:]], runs_dir=runs)
    lines = out.stderr.splitlines()
    assert out.returncode != 0 and len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], out.stderr
    assert not runs.exists() or (RunStore(runs).list_runs().empty and
                                 [p.name for p in runs.iterdir() if not p.name.startswith("rmcore.db")] == [])


# --------------------------------------------------------------------------- non-finite numbers in training
@pytest.fixture
def optimizer_steps(monkeypatch) -> list[int]:
    """Counts AdamW steps taken (both trainers use AdamW)."""
    steps, real = [], torch.optim.AdamW.step

    def counted(self, *args, **kwargs):
        steps.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", counted)
    return steps


def nan_in_training(real_loss, *, at_call: int, gradient_only: bool = False):
    """real_loss, with a NaN (or a finite loss whose gradient is NaN) on its at_call-th call
    with gradients enabled (the evals run without)."""
    calls = []

    def broken(*args, **kwargs):
        loss, stats = real_loss(*args, **kwargs)
        if torch.is_grad_enabled():
            calls.append(1)
            if len(calls) == at_call:
                first = next(a for a in args if isinstance(a, torch.Tensor))
                # sqrt'(0) = inf and inf · 0 = NaN: the value stays finite, the gradient does not
                loss = loss + 0.0 * torch.sqrt(first * 0.0).sum() if gradient_only else loss * math.nan
        return loss, stats
    return broken


@pytest.mark.parametrize("at_call, gradient_only, words", [
    (1, False, "non-finite loss at step 1 (nan); before any update and from finite scores, so the "
               "bradley_terry loss itself overflowed"),
    (2, False, "non-finite loss at step 2 (nan); try a smaller learning rate."),
    (1, True, "non-finite gradient norm at step 1 (nan); before any update and from finite scores, so the "
              "bradley_terry loss's gradient itself overflowed"),
])
def test_reward_model_nan_fails_the_run_before_the_optimizer_step(at_call, gradient_only, words, tiny_lm_path,
                                                                 runner, optimizer_steps, monkeypatch):
    real = rmcore.rm_trainer.get_reward_model_loss("bradley_terry")
    monkeypatch.setattr(rmcore.rm_trainer, "get_reward_model_loss",
                        lambda name: nan_in_training(real, at_call=at_call, gradient_only=gradient_only))
    run_id = runner.submit(reward_model(tiny_lm_path, steps=3))
    assert runner.wait(run_id, 120) == "failed"
    run = runner.store.get_run(run_id)
    assert run["error"].startswith(words), run["error"]
    assert len(optimizer_steps) == at_call - 1 and run["last_step"] == at_call - 1


def test_policy_nan_gradient_norm_fails_the_run_before_the_optimizer_step(tiny_lm_path, runner, optimizer_steps,
                                                                         monkeypatch):
    monkeypatch.setattr(rmcore.algorithms.reinforce, "policy_gradient_loss",
                        nan_in_training(rmcore.algorithms.reinforce.policy_gradient_loss, at_call=1, gradient_only=True))
    run_id = runner.submit(policy(tiny_lm_path, steps=2, max_grad_norm=0.0))
    assert runner.wait(run_id, 120) == "failed"
    run = runner.store.get_run(run_id)
    assert run["error"].startswith("non-finite gradient norm at step 1 (nan); before any update, so not from the "
                                   "learning rate: the reinforce loss overflowed"), run["error"]
    assert optimizer_steps == [] and run["last_step"] == 0


def test_policy_nan_gradient_norm_after_updates_names_the_learning_rate_and_clipping(tiny_lm_path, runner,
                                                                                    optimizer_steps, monkeypatch):
    monkeypatch.setattr(rmcore.algorithms.reinforce, "policy_gradient_loss",
                        nan_in_training(rmcore.algorithms.reinforce.policy_gradient_loss, at_call=2, gradient_only=True))
    run_id = runner.submit(policy(tiny_lm_path, steps=3, max_grad_norm=0.0))
    assert runner.wait(run_id, 120) == "failed"
    run = runner.store.get_run(run_id)
    assert run["error"] == ("non-finite gradient norm at step 2 (nan); try a smaller learning rate or gradient "
                            "clipping (--max-grad-norm 1)."), run["error"]
    assert len(optimizer_steps) == 1 and run["last_step"] == 1


def test_policy_nan_loss_before_any_update_does_not_blame_the_learning_rate(tiny_lm_path, runner, optimizer_steps,
                                                                           monkeypatch):
    monkeypatch.setattr(rmcore.algorithms.reinforce, "policy_gradient_loss",
                        nan_in_training(rmcore.algorithms.reinforce.policy_gradient_loss, at_call=1))
    run_id = runner.submit(policy(tiny_lm_path, steps=2))
    assert runner.wait(run_id, 120) == "failed"
    error = runner.store.get_run(run_id)["error"]
    assert error.startswith("non-finite loss at step 1 (nan); before any update"), error
    assert "smaller learning rate" not in error
    assert optimizer_steps == []
