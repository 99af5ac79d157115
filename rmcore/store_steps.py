"""The rows one training step writes to the run store, and deleting them after a step.

Kept beside rmcore.store (connections, transactions, run rows) so the per-step tables are
described in one place: ``step_writer`` turns a StepReport into those rows and the statement
that writes them (RunStore.record_step runs it in one transaction), ``truncate`` deletes
what a run recorded after a step (resume), and STEP_TABLES names the tables both touch, so a
run's deletion misses none. Functions of a connection only: the store owns locking and retry.
"""
from __future__ import annotations

import json
import sqlite3
from typing import Callable

from rmcore.events import StepReport

STEP_TABLES = ("metrics", "sample_rewards", "generations", "checkpoints")  # one row set per step, keyed by run_id


def step_writer(run_id: str, report: StepReport, now: float) -> Callable[[sqlite3.Connection], None]:
    """Rows of one step (metrics, sample rewards, generations, checkpoint), built now, so a bad
    value fails before any write; the returned function writes them and updates the run row.

    The first step also flips a queued/preparing run to running and clears its message.
    """
    step = int(report.step)
    metrics = [(run_id, step, key, float(value), now) for key, value in report.metrics.items()]
    rewards = [(run_id, step, term, idx, float(value))
               for term, values in report.sample_rewards.items()
               for idx, value in enumerate(values)]
    generations = [(run_id, step, g.get("split", "train"), idx, g.get("prompt", ""),
                    g.get("completion", ""), g.get("reference", ""),
                    None if g.get("reward") is None else float(g["reward"]),
                    json.dumps({k: float(v) for k, v in (g.get("terms") or {}).items()}))
                   for idx, g in enumerate(report.generations)]

    def write(c: sqlite3.Connection) -> None:
        c.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?, ?)", metrics)
        c.executemany("INSERT INTO sample_rewards VALUES (?, ?, ?, ?, ?)", rewards)
        c.executemany("INSERT INTO generations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", generations)
        if report.checkpoint:
            c.execute("INSERT INTO checkpoints VALUES (?, ?, ?)", (run_id, step, str(report.checkpoint)))
        c.execute(
            "UPDATE runs SET last_step = ?, total_steps = ?,"
            " message = CASE WHEN status IN ('queued', 'preparing') THEN '' ELSE message END,"
            " started = COALESCE(started, ?),"
            " status = CASE WHEN status IN ('queued', 'preparing') THEN 'running' ELSE status END"
            " WHERE id = ?", (step, int(report.total_steps), now, run_id))

    return write


def truncate(conn: sqlite3.Connection, run_id: str, step: int) -> None:
    """Delete every step row of the run after `step`; its last_step becomes at most `step`."""
    for table in STEP_TABLES:
        conn.execute(f"DELETE FROM {table} WHERE run_id = ? AND step > ?", (run_id, step))
    conn.execute("UPDATE runs SET last_step = MIN(last_step, ?) WHERE id = ?", (step, run_id))
