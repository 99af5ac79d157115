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
checkpoints (``save_pretrained`` folders under ``runs_dir/<run id>/``); the rows of one step
are built, and deleted after a step, in rmcore.store_steps.

The file is checked when opened, and any failure is one StoreError sentence
(rmcore.store_open); ``read_only=True`` opens it for reading and creates nothing, a missing
store reading as an empty one. Run folders are removed without following links
(rmcore.store_files).
"""
from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, TypeVar

from rmcore import store_files
from rmcore.errors import ConfigError, StoreError
from rmcore.events import StepReport
from rmcore.store_open import (SCHEMA, check_identity, check_path, connect, create_schema, file_identity,
                               open_store, retry, translated, use_wal)
from rmcore.store_queries import (ACTIVE_STATUSES, EVAL_REWARD_KEY, FINAL_LOSS_KEY, ORPHAN_MESSAGE,  # noqa: F401
                                  RunQueries, _marks, pid_alive)
from rmcore.store_steps import STEP_TABLES, step_writer, truncate
from rmcore.export import EXPORT_FORMATS  # noqa: F401  (re-exported)
from rmcore.safety import new_run_id, redact_secrets, scrub_secrets, validate_run_id  # noqa: F401

if TYPE_CHECKING:  # pandas is imported lazily: the training hot path never needs it
    import pandas as pd

T = TypeVar("T")
_time_now = time.time  # record_step's `time` argument shadows the module inside it
KINDS = ("policy", "reward_model")
STATUSES = ("queued", "preparing", "running", "done", "failed", "stopped", "interrupted")
TERMINAL_STATUSES = ("done", "failed", "stopped", "interrupted")


def default_runs_dir() -> Path:
    """``$RMCORE_RUNS_DIR`` if set, else ``./runs``."""
    return Path(os.environ.get("RMCORE_RUNS_DIR") or "runs")


class RunStore(RunQueries):
    """Read and write runs in ``runs_dir/rmcore.db``; safe across threads and processes."""

    def __init__(self, runs_dir: str | Path | None = None, *, read_only: bool = False) -> None:
        self.runs_dir = Path(runs_dir if runs_dir is not None else default_runs_dir()).resolve()
        self.db_path = self.runs_dir / "rmcore.db"
        self.read_only = read_only
        check_path(self.db_path, read_only=read_only)
        if not read_only:
            with translated(self.db_path):
                self.runs_dir.mkdir(parents=True, exist_ok=True)
        conn = open_store(self.db_path, read_only=read_only)
        # A reader of a folder with no store sees an empty one (in memory): `runs list` on a
        # mistyped --runs-dir must not leave a database behind.
        self.missing = conn is None
        self._identity = None if conn is None else file_identity(self.db_path)
        self._pool: list[sqlite3.Connection] = [] if conn is None else [conn]
        self._pool_lock = threading.Lock()
        if not read_only:
            self._write(create_schema, transaction=False)

    # --- connections and transactions

    def _connect(self) -> sqlite3.Connection:
        if self.missing:
            conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            conn.executescript(SCHEMA)
            return conn
        conn = connect(self.db_path, read_only=self.read_only)
        if not self.read_only:
            use_wal(conn, self.db_path)
        return conn

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        """Borrow a pooled connection; SQLite errors in the block leave as one StoreError."""
        if not self.missing:
            check_identity(self.db_path, self._identity)
        with self._pool_lock:
            conn = self._pool.pop() if self._pool else None
        conn = conn or self._connect()
        try:
            with translated(self.db_path):
                yield conn
        finally:
            with self._pool_lock:
                self._pool.append(conn)

    def _write(self, fn: Callable[[sqlite3.Connection], T], transaction: bool = True) -> T:
        if self.read_only:
            raise StoreError(f"{self.db_path} was opened read-only; this change needs a writable store.")

        def attempt(conn: sqlite3.Connection) -> T:
            if not transaction:
                return fn(conn)
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
                conn.execute("COMMIT")
                return result
            except BaseException:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):  # the first error is the one to report
                        conn.execute("ROLLBACK")
                raise

        with self._connection() as conn:
            return retry(lambda: attempt(conn))

    def _rows(self, sql: str, params: tuple | list = ()) -> list[tuple]:
        return self._query(sql, params)[1]

    def _query(self, sql: str, params: tuple | list = ()) -> tuple[list[str], list[tuple]]:
        """(column names, rows) of one SELECT."""
        with self._connection() as conn:
            cursor = retry(lambda: conn.execute(sql, params))
            rows = cursor.fetchall()
            return [d[0] for d in cursor.description or ()], rows

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
        write = step_writer(run_id, report, now)
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
        self._write(lambda c: truncate(c, run_id, int(step)))

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
            truncate(c, run_id, int(step))
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
            self.set_status(run_id, "interrupted", message=ORPHAN_MESSAGE)
        return orphans

    def delete_run(self, run_id: str) -> None:
        """Delete a run's rows and its folder; refuses while it is queued or running.

        Checked before anything changes: the folder is set aside (renamed) first and put back
        if the rows cannot be deleted. A link in (or as) the folder is removed, never followed.
        """
        status = self.get_run(run_id)["status"]
        if status in ACTIVE_STATUSES:
            raise ConfigError(f"Run {run_id} is {status}; stop it before deleting it.")

        def delete(c: sqlite3.Connection) -> None:
            for table in STEP_TABLES:
                c.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
            c.execute("DELETE FROM runs WHERE id = ?", (run_id,))

        folder = self.run_dir(run_id)
        aside = store_files.set_aside(folder)
        try:
            self._write(delete)
        except BaseException:
            store_files.put_back(aside, folder)
            raise
        store_files.remove_aside(aside, run_id)

    # --- readers

    def run_dir(self, run_id: str) -> Path:
        """``runs_dir/run_id`` (not created here). The id is a plain name (validate_run_id), so
        the path is inside runs_dir; it is not resolved, so a link there stays a link."""
        return self.runs_dir / validate_run_id(run_id)

    # --- export (rmcore.export does the work; these keep the store's one-object API)

    def export(self, run_id: str, fmt: str, out_dir: Path | None = None) -> list[Path]:
        from rmcore.export import export_run

        return export_run(self, run_id, fmt, out_dir)

    def export_bytes(self, run_id: str, fmt: str) -> bytes:
        from rmcore.export import export_zip

        return export_zip(self, run_id, fmt)


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise ConfigError(f"Run status must be one of {', '.join(STATUSES)}; got {status!r}.")
