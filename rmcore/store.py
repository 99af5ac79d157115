"""The run store: one SQLite database (WAL mode) under the runs directory.

Training threads write, Streamlit pages and the CLI read, and several processes (the app
and a ``python -m rmcore train`` beside it) may write the same file at once. That works
because WAL lets readers run during a write, every write is one short ``BEGIN IMMEDIATE``
transaction (it takes the write lock up front, so SQLite's busy handler can wait for it
instead of failing a deferred lock upgrade with SQLITE_BUSY), ``busy_timeout`` is 15 s,
and a write that still meets "database is locked" is retried with backoff.

Connections come from a small pool, borrowed for one call and returned, so any thread may
use the store, concurrent readers never queue behind a writer, and finished training
threads leave no open connections behind.

Tables: runs (one row per run), metrics (long format, one row per step and key),
sample_rewards (one row per sample and reward term, for distributions), generations and
checkpoints (``save_pretrained`` folders under ``runs_dir/<run id>/``).
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, TypeVar

from rmcore.errors import ConfigError
from rmcore.events import StepReport
from rmcore.store_queries import EVAL_REWARD_KEY, FINAL_LOSS_KEY, RunQueries, _marks  # noqa: F401
from rmcore.export import EXPORT_FORMATS  # noqa: F401  (re-exported)
from rmcore.safety import new_run_id, redact_secrets, scrub_secrets, validate_run_id  # noqa: F401

if TYPE_CHECKING:  # pandas is imported lazily: the training hot path never needs it
    import pandas as pd

T = TypeVar("T")
_time_now = time.time  # record_step's `time` argument shadows the module inside it
KINDS = ("policy", "reward_model")
STATUSES = ("queued", "preparing", "running", "done", "failed", "stopped", "interrupted")
ACTIVE_STATUSES = ("queued", "preparing", "running")
TERMINAL_STATUSES = ("done", "failed", "stopped", "interrupted")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, name TEXT, kind TEXT, status TEXT, config TEXT,
    created REAL, started REAL, finished REAL, total_steps INTEGER, last_step INTEGER,
    message TEXT, error TEXT, traceback TEXT, device TEXT, pid INTEGER);
CREATE TABLE IF NOT EXISTS metrics (run_id TEXT, step INTEGER, key TEXT, value REAL, time REAL);
-- Covering: every metrics read (curves, keys, final and best values) is answered from the
-- index alone, in (run, key, step) order. Reading values through the old (run_id, key, step)
-- index cost a table lookup per row: 1.2 s for the 250k rows of Compare's 20-run table.
CREATE INDEX IF NOT EXISTS metrics_run_key_step_value ON metrics (run_id, key, step, value, time);
DROP INDEX IF EXISTS metrics_run_key_step;
CREATE TABLE IF NOT EXISTS sample_rewards (run_id TEXT, step INTEGER, term TEXT, idx INTEGER, value REAL);
CREATE INDEX IF NOT EXISTS sample_rewards_run_term_step ON sample_rewards (run_id, term, step);
CREATE TABLE IF NOT EXISTS generations (run_id TEXT, step INTEGER, split TEXT, idx INTEGER,
    prompt TEXT, completion TEXT, reference TEXT, reward REAL, terms TEXT);
CREATE INDEX IF NOT EXISTS generations_run_step ON generations (run_id, step);
CREATE TABLE IF NOT EXISTS checkpoints (run_id TEXT, step INTEGER, path TEXT);
CREATE INDEX IF NOT EXISTS checkpoints_run_step ON checkpoints (run_id, step);
"""


def default_runs_dir() -> Path:
    """``$RMCORE_RUNS_DIR`` if set, else ``./runs``."""
    return Path(os.environ.get("RMCORE_RUNS_DIR") or "runs")


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this id exists (POSIX ``kill(pid, 0)``).

    On Windows ``os.kill`` would terminate the process, so there every other process is
    assumed alive. A recycled pid also reads as alive; both err on the side of "running".
    """
    if not pid or pid < 0:
        return False
    if os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


class RunStore(RunQueries):
    """Read and write runs in ``runs_dir/rmcore.db``; safe across threads and processes."""

    def __init__(self, runs_dir: str | Path | None = None) -> None:
        self.runs_dir = Path(runs_dir if runs_dir is not None else default_runs_dir()).resolve()
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.db_path = self.runs_dir / "rmcore.db"
        self._pool: list[sqlite3.Connection] = []
        self._pool_lock = threading.Lock()
        self._write(_create_schema, transaction=False)

    # --- connections and transactions

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: no implicit transactions; we open them ourselves.
        conn = sqlite3.connect(self.db_path, timeout=15.0, isolation_level=None,
                               check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 15000")
        _retry(lambda: conn.execute("PRAGMA journal_mode = WAL"))
        # NORMAL is durable against an app crash in WAL mode and skips an fsync per commit.
        conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        with self._pool_lock:
            conn = self._pool.pop() if self._pool else None
        conn = conn or self._connect()
        try:
            yield conn
        finally:
            with self._pool_lock:
                self._pool.append(conn)

    def _write(self, fn: Callable[[sqlite3.Connection], T], transaction: bool = True) -> T:
        def attempt() -> T:
            with self._connection() as conn:
                if not transaction:
                    return fn(conn)
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = fn(conn)
                    conn.execute("COMMIT")
                    return result
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
        return _retry(attempt)

    def _rows(self, sql: str, params: tuple | list = ()) -> list[tuple]:
        with self._connection() as conn:
            return _retry(lambda: conn.execute(sql, params).fetchall())

    def _frame(self, sql: str, params: tuple | list, columns: list[str]) -> "pd.DataFrame":
        import pandas as pd
        return pd.DataFrame(self._rows(sql, params), columns=columns)

    def close(self) -> None:
        """Close pooled connections (a later call opens new ones)."""
        with self._pool_lock:
            pool, self._pool = self._pool, []
        for conn in pool:
            conn.close()

    # --- writers

    def create_run(self, *, kind: str, config: dict[str, Any], name: str = "",
                   total_steps: int = 0, status: str = "queued", device: str = "") -> str:
        """Insert a run owned by this process; secrets in config and name are stored as "***"."""
        if kind not in KINDS:
            raise ConfigError(f"Run kind must be one of {', '.join(KINDS)}; got {kind!r}.")
        _check_status(status)
        hint = name or str(config.get("loss") or kind)
        run_id = new_run_id(hint)
        name = scrub_secrets(name or f"{hint} {time.strftime('%H:%M:%S')}")
        row = (run_id, name, kind, status, json.dumps(redact_secrets(config), default=str),
               time.time(), int(total_steps), 0, device, os.getpid())
        self._write(lambda c: c.execute(
            "INSERT INTO runs (id, name, kind, status, config, created, total_steps, last_step,"
            " device, pid) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row))
        return run_id

    def set_status(self, run_id: str, status: str, *, message: str | None = None,
                   error: str | None = None, traceback: str | None = None) -> None:
        """Change status; stamps started on first preparing/running, finished when terminal.

        Message, error and traceback are scrubbed of secrets: an exception may quote a
        token (a URL with credentials, an environment dump) and the store is exported.
        """
        _check_status(status)
        message, error, traceback = (scrub_secrets(text) for text in (message, error, traceback))
        now = time.time()
        started = now if status in ("preparing", "running") else None
        finished = now if status in TERMINAL_STATUSES else None
        self._write(lambda c: c.execute(
            "UPDATE runs SET status = ?, started = COALESCE(started, ?),"
            " finished = COALESCE(?, finished), message = COALESCE(?, message),"
            " error = COALESCE(?, error), traceback = COALESCE(?, traceback) WHERE id = ?",
            (status, started, finished, message, error, traceback, validate_run_id(run_id))))

    def set_message(self, run_id: str, message: str) -> None:
        self._write(lambda c: c.execute("UPDATE runs SET message = ? WHERE id = ?",
                                        (scrub_secrets(message), validate_run_id(run_id))))

    def record_step(self, run_id: str, report: StepReport, time: float | None = None) -> None:
        """Write one step (metrics, sample rewards, generations, checkpoint) in one transaction.

        The first step also flips a queued/preparing run to running and clears its message,
        so a trainer driven without the runner (the CLI) gets the same status flow.
        """
        now = _time_now() if time is None else time
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

        validate_run_id(run_id)
        self._write(write)

    def truncate_after(self, run_id: str, step: int) -> None:
        """Delete everything a run recorded after `step` (metrics, rewards, generations,
        checkpoints) and set its last_step to at most `step`.

        Resume uses this: a process killed after recording step N but before the next
        checkpoint at step C < N left steps C+1..N in the store, and the resumed run records
        them again from the checkpoint. Deleting them first keeps one row per step and key.
        """
        validate_run_id(run_id)
        self._write(lambda c: _truncate(c, run_id, int(step)))

    def reopen(self, run_id: str, step: int, message: str = "",
               from_statuses: tuple[str, ...] = ("interrupted", "failed", "stopped")) -> None:
        """Queue an ended run again from `step` (resume), in one transaction: truncate after
        `step`, status queued, error/traceback/finished cleared, owned by this process.

        The status is checked inside the write lock, so when two processes (the app and a
        CLI) resume the same run at once, exactly one succeeds; the other gets ConfigError.
        """
        validate_run_id(run_id)

        def reopen(c: sqlite3.Connection) -> None:
            row = c.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None or row[0] not in from_statuses:
                raise ConfigError(f"Run {run_id} is {row[0] if row else 'gone'}; it cannot be resumed now.")
            _truncate(c, run_id, int(step))
            c.execute("UPDATE runs SET status = 'queued', finished = NULL, error = NULL, traceback = NULL,"
                      " message = ?, pid = ? WHERE id = ?", (scrub_secrets(message), os.getpid(), run_id))

        self._write(reopen)

    def mark_interrupted(self, except_ids: set[str] | frozenset[str] = frozenset()) -> list[str]:
        """Mark runs left queued/preparing/running by a process that can no longer run them.

        A run is orphaned when its pid is dead (the app or CLI that owned it exited), or when
        its pid is this very process but it is not in except_ids, the runs that live runner
        threads of this process own (a restarted runner in the same server). A CLI run in
        another live process is left alone. Returns the ids marked, which get status
        'interrupted', a finished time and an explanatory message.
        """
        me = os.getpid()
        rows = self._rows("SELECT id, pid FROM runs WHERE status IN ('queued', 'preparing', 'running')")
        orphans = [run_id for run_id, pid in rows
                   if run_id not in except_ids and (pid == me or not pid_alive(pid))]
        for run_id in orphans:
            self.set_status(run_id, "interrupted",
                            message="The process running it stopped before it finished.")
        return orphans

    def delete_run(self, run_id: str) -> None:
        """Delete a run's rows and its folder; refuses while it is queued or running."""
        status = self.get_run(run_id)["status"]
        if status in ACTIVE_STATUSES:
            raise ConfigError(f"Run {run_id} is {status}; stop it before deleting it.")

        def delete(c: sqlite3.Connection) -> None:
            for table in ("metrics", "sample_rewards", "generations", "checkpoints"):
                c.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
            c.execute("DELETE FROM runs WHERE id = ?", (run_id,))

        self._write(delete)
        shutil.rmtree(self.run_dir(run_id), ignore_errors=True)

    # --- readers

    def run_dir(self, run_id: str) -> Path:
        """``runs_dir/run_id``, guaranteed to stay inside runs_dir (not created here)."""
        path = (self.runs_dir / validate_run_id(run_id)).resolve()
        if path.parent != self.runs_dir:
            raise ConfigError(f"Invalid run id {run_id!r}: it points outside the runs folder.")
        return path

    # --- export (rmcore.export does the work; these keep the store's one-object API)

    def export(self, run_id: str, fmt: str, out_dir: Path | None = None) -> list[Path]:
        from rmcore.export import export_run

        return export_run(self, run_id, fmt, out_dir)

    def export_bytes(self, run_id: str, fmt: str) -> bytes:
        from rmcore.export import export_zip

        return export_zip(self, run_id, fmt)


def _create_schema(conn: sqlite3.Connection) -> None:
    conn.executescript(_SCHEMA)


def _truncate(conn: sqlite3.Connection, run_id: str, step: int) -> None:
    for table in ("metrics", "sample_rewards", "generations", "checkpoints"):
        conn.execute(f"DELETE FROM {table} WHERE run_id = ? AND step > ?", (run_id, step))
    conn.execute("UPDATE runs SET last_step = MIN(last_step, ?) WHERE id = ?", (step, run_id))


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise ConfigError(f"Run status must be one of {', '.join(STATUSES)}; got {status!r}.")


def _retry(fn: Callable[[], T], attempts: int = 8) -> T:
    """Call fn, retrying with backoff when SQLite says the database is locked or busy.

    busy_timeout already waits 15 s for the write lock; this covers the cases where SQLite
    returns SQLITE_BUSY without calling the busy handler (e.g. switching to WAL mode).
    """
    for attempt in range(attempts):
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            transient = "locked" in str(exc) or "busy" in str(exc)
            if not transient or attempt == attempts - 1:
                raise
            time.sleep(0.05 * 2 ** attempt)
    raise AssertionError("unreachable")
