"""The run store: round trip, concurrency across threads and processes, export, guards."""
from __future__ import annotations

import io
import json
import multiprocessing
import os
import re
import sqlite3
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from rmcore.errors import ConfigError
from rmcore.events import StepReport
from rmcore.store import RunStore, new_run_id, validate_run_id


@pytest.fixture
def store(tmp_path: Path):
    runs = RunStore(tmp_path / "runs")
    yield runs
    runs.close()


def report(step: int, total: int = 5, checkpoint: str | None = None) -> StepReport:
    """Step `step` of a fake run; every value is a simple function of the step."""
    return StepReport(
        step=step, total_steps=total,
        metrics={"loss/total": 10.0 / step, "reward/total": 0.5 * step, "eval/reward": float(step % 3)},
        sample_rewards={"total": [step + 0.25 * i for i in range(4)], "rouge": [0.1 * i for i in range(4)]},
        generations=[{"split": "train", "prompt": f"doc {step}\nTL;DR:", "completion": f"sum {step}",
                      "reference": "ref", "reward": 0.5 * step, "terms": {"rouge": 0.25, "fluency": 0.75}},
                     {"split": "eval", "prompt": "eval doc\nTL;DR:", "completion": f"eval {step}",
                      "reference": "eval ref", "reward": 1.0, "terms": {"rouge": 1.0}}],
        checkpoint=checkpoint)


def test_round_trip(store: RunStore) -> None:
    run_id = store.create_run(kind="policy", config={"loss": "grpo", "backbone": "tiny-gpt2",
                                                     "task": "synth-news"}, name="first", total_steps=5)
    assert store.get_run(run_id)["status"] == "queued"
    for step in range(1, 6):
        store.record_step(run_id, report(step, checkpoint=f"/ck/{step}" if step in (3, 5) else None),
                          time=1000.0 + step)

    run = store.get_run(run_id)
    assert run["status"] == "running"            # the first step flips queued -> running
    assert run["started"] is not None and run["finished"] is None
    assert run["last_step"] == 5 and run["total_steps"] == 5 and run["name"] == "first"
    assert run["config"] == {"loss": "grpo", "backbone": "tiny-gpt2", "task": "synth-news"}
    assert run["pid"] == os.getpid()

    metrics = store.metrics([run_id])
    assert len(metrics) == 15
    loss = metrics[metrics.key == "loss/total"]
    assert loss.step.tolist() == [1, 2, 3, 4, 5]
    assert loss.value.tolist() == [10.0, 5.0, 10.0 / 3, 2.5, 2.0]
    assert loss.time.tolist() == [1001.0, 1002.0, 1003.0, 1004.0, 1005.0]
    assert len(store.metrics([run_id], keys=["reward/total"])) == 5
    assert store.metric_keys(run_id) == ["eval/reward", "loss/total", "reward/total"]

    rewards = store.sample_rewards(run_id, steps=[2, 4])
    assert list(rewards.columns) == ["step", "idx", "value"]
    assert rewards.value.tolist() == [2.0, 2.25, 2.5, 2.75, 4.0, 4.25, 4.5, 4.75]
    assert len(store.sample_rewards(run_id, term="rouge")) == 20

    generations = store.generations(run_id)
    assert len(generations) == 10
    one = store.generations(run_id, step=3, split="train").iloc[0]
    assert (one.prompt, one.completion, one.reward) == ("doc 3\nTL;DR:", "sum 3", 1.5)
    assert one.terms == {"rouge": 0.25, "fluency": 0.75}
    assert len(store.generations(run_id, split="eval")) == 5
    assert store.generation_steps(run_id) == [1, 2, 3, 4, 5]
    assert store.checkpoints(run_id) == [(3, "/ck/3"), (5, "/ck/5")]
    assert store.latest_checkpoint(run_id) == "/ck/5"

    store.set_status(run_id, "done")
    row = store.list_runs().iloc[0]
    assert (row.id, row.kind, row.status, row.loss, row.backbone, row.task) == (
        run_id, "policy", "done", "grpo", "tiny-gpt2", "synth-news")
    assert row.best_eval_reward == 2.0           # max of step % 3 over steps 1..5
    assert row.final_loss == 2.0                 # loss/total at the last step
    assert row.duration_s >= 0


def test_empty_readers(store: RunStore) -> None:
    run_id = store.create_run(kind="reward_model", config={})
    assert store.metrics([run_id]).empty and store.metric_keys(run_id) == []
    assert store.latest_checkpoint(run_id) is None and store.generation_steps(run_id) == []
    assert store.last_sample_step(run_id) is None and store.last_generation_step(run_id, "eval") is None
    row = store.list_runs().iloc[0]
    assert pd.isna(row.best_eval_reward) and pd.isna(row.final_loss) and pd.isna(row.duration_s)
    assert list(store.metrics([]).columns) == ["run_id", "step", "key", "value", "time"]


def test_list_runs_newest_first(store: RunStore) -> None:
    first = store.create_run(kind="policy", config={"loss": "ppo"})
    second = store.create_run(kind="policy", config={"loss": "dpo"})
    assert store.list_runs().id.tolist() == [second, first]


def test_wal_mode_and_status_times(store: RunStore) -> None:
    with sqlite3.connect(store.db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    run_id = store.create_run(kind="policy", config={})
    store.set_status(run_id, "preparing", message="Building tiny-gpt2: 40%")
    run = store.get_run(run_id)
    assert run["started"] is not None and run["message"] == "Building tiny-gpt2: 40%"
    started = run["started"]
    store.set_status(run_id, "running")
    store.set_status(run_id, "failed", error="It broke.", traceback="Traceback ...")
    run = store.get_run(run_id)
    assert run["started"] == started and run["finished"] >= started
    assert (run["error"], run["traceback"]) == ("It broke.", "Traceback ...")
    with pytest.raises(ConfigError):
        store.set_status(run_id, "exploded")


def test_threads_write_while_a_reader_reads(store: RunStore) -> None:
    run_ids = [store.create_run(kind="policy", config={}) for _ in range(4)]
    errors: list[BaseException] = []
    writing = True

    def write(run_id: str) -> None:
        try:
            for step in range(1, 41):
                store.record_step(run_id, report(step, total=40))
        except BaseException as exc:
            errors.append(exc)

    def read() -> None:
        try:
            while writing:
                store.list_runs()
                store.metrics(run_ids, keys=["loss/total"])
        except BaseException as exc:
            errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    writers = [threading.Thread(target=write, args=(run_id,)) for run_id in run_ids]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    writing = False
    reader.join()
    assert errors == []
    counts = store.metrics(run_ids).groupby("run_id").size()
    assert counts.to_dict() == {run_id: 120 for run_id in run_ids}
    assert len(store.generations(run_ids[0])) == 80


def _write_from_another_process(runs_dir: str, run_id: str, steps: int) -> None:
    runs = RunStore(runs_dir)
    for step in range(1, steps + 1):
        runs.record_step(run_id, report(step, total=steps))
        runs.set_message(run_id, f"step {step}")
    runs.close()


def test_two_processes_write_the_same_store(store: RunStore) -> None:
    run_ids = [store.create_run(kind="policy", config={}) for _ in range(2)]
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_write_from_another_process, args=(str(store.runs_dir), run_id, 60))
               for run_id in run_ids]
    for worker in workers:
        worker.start()
    for _ in range(30):  # this process reads (and writes) meanwhile
        store.list_runs()
        store.set_message(run_ids[0], "parent was here")
    for worker in workers:
        worker.join(60)
    assert [worker.exitcode for worker in workers] == [0, 0]
    counts = store.metrics(run_ids).groupby("run_id").size()
    assert counts.to_dict() == {run_id: 180 for run_id in run_ids}
    assert [len(store.sample_rewards(run_id)) for run_id in run_ids] == [240, 240]
    assert [store.get_run(run_id)["last_step"] for run_id in run_ids] == [60, 60]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_reads_back(store: RunStore, tmp_path: Path, fmt: str) -> None:
    run_id = store.create_run(kind="policy", config={"loss": "rloo", "lr": 5e-5})
    for step in range(1, 4):
        store.record_step(run_id, report(step, total=3), time=1234.5678 + step / 7)
    paths = store.export(run_id, fmt, tmp_path / "out")
    assert [p.name for p in paths] == ["run_config.json", f"metrics.{fmt}",
                                       f"sample_rewards.{fmt}", f"generations.{fmt}"]
    read = (lambda p: pd.read_csv(p, float_precision="round_trip")) if fmt == "csv" else pd.read_parquet
    pd.testing.assert_frame_equal(read(paths[1]), store.metrics([run_id]), check_exact=True)
    rewards = read(paths[2])
    assert len(rewards) == 24 and set(rewards.term) == {"total", "rouge"}
    assert rewards[rewards.term == "total"].value.tolist() == store.sample_rewards(run_id).value.tolist()
    expected = store.generations(run_id)
    expected["terms"] = [json.dumps(t) for t in expected["terms"]]
    pd.testing.assert_frame_equal(read(paths[3]), expected, check_exact=True)
    assert json.loads(paths[0].read_text())["config"] == {"loss": "rloo", "lr": 5e-5}
    assert store.export(run_id, fmt)[0].parent == store.run_dir(run_id) / "export"


def test_export_bytes_is_a_zip(store: RunStore) -> None:
    run_id = store.create_run(kind="policy", config={})
    store.record_step(run_id, report(1, total=1))
    with zipfile.ZipFile(io.BytesIO(store.export_bytes(run_id, "csv"))) as zf:
        assert sorted(zf.namelist()) == sorted(f"{run_id}/{n}" for n in (
            "run_config.json", "metrics.csv", "sample_rewards.csv", "generations.csv"))
        assert len(pd.read_csv(zf.open(f"{run_id}/metrics.csv"))) == 3
    with pytest.raises(ConfigError, match="Export format"):
        store.export_bytes(run_id, "xlsx")


def test_secrets_are_redacted(store: RunStore) -> None:
    run_id = store.create_run(kind="policy", config={
        "hf_token": "hf_abc", "api_key": "sk-1", "PASSWORD": "pw", "client_secret": "s",
        "auth_token": "", "max_new_tokens": 32, "tokenizer": "gpt2", "nested": {"access-token": "t"}})
    assert store.get_run(run_id)["config"] == {
        "hf_token": "***", "api_key": "***", "PASSWORD": "***", "client_secret": "***",
        "auth_token": "", "max_new_tokens": 32, "tokenizer": "gpt2", "nested": {"access-token": "***"}}
    stored = b"".join(p.read_bytes() for p in store.runs_dir.glob("rmcore.db*"))  # db and WAL
    assert b"tokenizer" in stored and b"hf_abc" not in stored and b"sk-1" not in stored


@pytest.mark.parametrize("bad", ["../x", "a/b", "..", "", ".hidden", "a..b", "a\\b", "x" * 129, "a b"])
def test_bad_run_ids_are_rejected(store: RunStore, bad: str) -> None:
    with pytest.raises(ConfigError, match="Invalid run id"):
        validate_run_id(bad)
    with pytest.raises(ConfigError, match="Invalid run id"):
        store.run_dir(bad)
    with pytest.raises(ConfigError, match="Invalid run id"):
        store.get_run(bad)


def test_new_run_ids_are_valid_and_unique(store: RunStore) -> None:
    run_id = new_run_id("GRPO vs. PPO!")
    assert re.fullmatch(r"\d{8}-\d{6}-grpo-vs-ppo-[0-9a-f]{4}", run_id)
    assert validate_run_id(new_run_id("../..")).split("-")[2] == "run"
    assert len({new_run_id("x") for _ in range(50)}) > 40   # 4 hex digits: collisions are rare
    assert store.run_dir(run_id) == store.runs_dir / run_id
    with pytest.raises(ConfigError, match="No run with id"):
        store.get_run(run_id)


def test_delete_refuses_a_running_run(store: RunStore) -> None:
    run_id = store.create_run(kind="policy", config={})
    store.record_step(run_id, report(1, checkpoint="ck"))
    store.run_dir(run_id).mkdir()
    (store.run_dir(run_id) / "weights.bin").write_bytes(b"0")
    with pytest.raises(ConfigError, match="running"):
        store.delete_run(run_id)
    store.set_status(run_id, "stopped")
    store.delete_run(run_id)
    assert not store.run_dir(run_id).exists() and store.list_runs().empty
    with sqlite3.connect(store.db_path) as conn:
        for table in ("metrics", "sample_rewards", "generations", "checkpoints"):
            assert conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == 0


def test_mark_interrupted(store: RunStore) -> None:
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()                                   # reaped: its pid is now dead
    runs = {name: store.create_run(kind="policy", config={}, name=name)
            for name in ("dead", "other_live", "mine", "mine_live", "dead_done", "dead_queued")}
    pids = {"dead": finished.pid, "other_live": os.getppid(), "mine": os.getpid(),
            "mine_live": os.getpid(), "dead_done": finished.pid, "dead_queued": finished.pid}
    with sqlite3.connect(store.db_path) as conn:
        for name, run_id in runs.items():
            status = {"dead_done": "done", "dead_queued": "queued"}.get(name, "running")
            conn.execute("UPDATE runs SET pid = ?, status = ? WHERE id = ?", (pids[name], status, run_id))
    marked = store.mark_interrupted(except_ids={runs["mine_live"]})
    assert sorted(marked) == sorted([runs["dead"], runs["mine"], runs["dead_queued"]])
    status = {name: store.get_run(run_id)["status"] for name, run_id in runs.items()}
    assert status == {"dead": "interrupted", "other_live": "running", "mine": "interrupted",
                      "mine_live": "running", "dead_done": "done", "dead_queued": "interrupted"}
    assert store.get_run(runs["dead"])["finished"] is not None
    assert store.mark_interrupted(except_ids={runs["mine_live"]}) == []


def test_key_and_latest_step_lookups_match_plain_queries(store: RunStore) -> None:
    """The skip-scan metric_keys and the MAX(step) lookups the pages use == reading everything."""
    run_id, other = store.create_run(kind="policy", config={}), store.create_run(kind="policy", config={})
    for step in range(1, 6):
        store.record_step(run_id, report(step))
    extra = report(1)
    store.record_step(other, StepReport(1, 5, {"a/x": 1.0, "zz": 2.0}, sample_rewards={"total": [1.0]},
                                        generations=extra.generations[:1]))
    plain = sorted(store.metrics([run_id])["key"].unique())
    assert store.metric_keys(run_id) == plain == ["eval/reward", "loss/total", "reward/total"]
    assert store.metric_keys(other) == ["a/x", "zz"]
    assert store.last_sample_step(run_id) == 5 and store.last_sample_step(run_id, term="nope") is None
    assert store.last_generation_step(run_id, "eval") == 5 and store.last_generation_step(other, "eval") is None
    assert store.last_generation_step(other, "train") == 1


def test_final_and_best_in_sql_matches_the_pandas_reference(store: RunStore) -> None:
    """RunStore.final_and_best (SQL, Compare's table) against tables.final_and_best on the same
    rows: ties (rounded values; the earliest step wins), NaN steps, a key missing from a run,
    keys where lower is better, and a run with no metrics at all."""
    import numpy as np

    from rmcore import tables

    rng = np.random.default_rng(0)
    keys = ["loss/total", "policy/kl", "reward/total", "eval/reward"]
    runs = [store.create_run(kind="policy", config={}) for _ in range(3)]
    for r, run in enumerate(runs[:2]):
        for step in range(1, 41):
            values = {k: float(np.round(rng.normal(), 1)) for k in keys[: 4 - r]}  # run 1 lacks eval/reward
            if step % 7 == 0:
                values["reward/total"] = float("nan")
            store.record_step(run, StepReport(step=step, total_steps=40, metrics=values))
    expected = tables.final_and_best(store.metrics(runs), keys).sort_values(["run_id", "key"], ignore_index=True)
    got = store.final_and_best(runs, keys)
    assert len(got) == 7  # 4 keys + 3 keys; the empty run has no rows
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    assert (got[got["key"] == "loss/total"]["best"] <= got[got["key"] == "loss/total"]["final"]).all()
    assert store.final_and_best(runs, []).empty and store.final_and_best([], keys).empty


def test_an_existing_store_gets_the_covering_metrics_index(tmp_path: Path) -> None:
    """A store written before the covering index: opening it builds the new index, drops the
    old one, keeps every row, and metric reads are then answered from the index alone."""
    runs = tmp_path / "runs"
    runs.mkdir()
    conn = sqlite3.connect(runs / "rmcore.db")
    conn.executescript("CREATE TABLE metrics (run_id TEXT, step INTEGER, key TEXT, value REAL, time REAL);"
                       "CREATE INDEX metrics_run_key_step ON metrics (run_id, key, step);"
                       "INSERT INTO metrics VALUES ('r1', 1, 'loss/total', 0.5, 0.0);")
    conn.commit()
    conn.close()
    store = RunStore(runs)
    conn = sqlite3.connect(runs / "rmcore.db")
    indexes = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "metrics_run_key_step_value" in indexes and "metrics_run_key_step" not in indexes
    plan = " ".join(str(row) for row in conn.execute(
        "EXPLAIN QUERY PLAN SELECT step, value, time FROM metrics WHERE run_id = 'r1' AND key = 'loss/total'"))
    assert "COVERING INDEX metrics_run_key_step_value" in plan
    conn.close()
    assert store.metrics(["r1"])["value"].tolist() == [0.5]
    store.close()
