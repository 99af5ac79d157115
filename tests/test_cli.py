"""The CLI as a user runs it: train, list, show, export; bad input is one line and exit ≠ 0."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, runs_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "RMCORE_RUNS_DIR": str(runs_dir)}
    return subprocess.run([sys.executable, "-m", "rmcore", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def test_train_then_list_show_export(tiny_lm_path, runs_dir):
    out = cli("train", "--backbone", tiny_lm_path, "--loss", "ppo", "--steps", "3", "--batch-size", "2",
              "--samples-per-prompt", "2", "--max-new-tokens", "8", "--eval-prompts", "2", runs_dir=runs_dir)
    assert out.returncode == 0, out.stderr
    assert "done at step 3" in out.stderr
    runs = json.loads(cli("runs", "list", "--json", runs_dir=runs_dir).stdout)
    assert len(runs) == 1 and runs[0]["status"] == "done" and runs[0]["loss"] == "ppo"
    run_id = runs[0]["id"]
    assert run_id in cli("runs", "list", runs_dir=runs_dir).stdout
    shown = json.loads(cli("runs", "show", run_id, runs_dir=runs_dir).stdout)
    assert shown["config"]["loss"] == "ppo" and "loss/total" in shown["last_metrics"]
    exported = cli("runs", "export", run_id, "--format", "parquet", runs_dir=runs_dir)
    assert exported.returncode == 0, exported.stderr
    metrics = pd.read_parquet([p for p in exported.stdout.split() if p.endswith("metrics.parquet")][0])
    assert set(metrics["step"]) == {0, 1, 2, 3}


@pytest.mark.parametrize("args, words", [
    (["--alpha", "abc"], "invalid float value"),
    (["--alpha", "nan"], "alpha must be a finite number"),
    (["--beta", "inf"], "beta must be a finite number"),
    (["--steps", "0"], "steps must be at least 1"),
    (["--kl-estimator", "k9"], "kl_estimator must be one of"),
    (["--alpha", "0", "--beta", "0", "--gamma", "0"], "All reward weights are zero"),
])
def test_bad_input_exits_with_one_line_and_writes_no_run(args, words, runs_dir):
    out = cli("train", *args, runs_dir=runs_dir)
    assert out.returncode != 0
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and words in lines[0], out.stderr
    assert cli("runs", "list", runs_dir=runs_dir).stdout.strip() == "no runs yet"


def test_help_lists_config_fields_with_their_docs(runs_dir):
    out = cli("train", "--help", runs_dir=runs_dir)
    assert "--max-new-tokens" in out.stdout and "--samples-per-prompt" in out.stdout
    assert "Longest completion in tokens" in out.stdout
