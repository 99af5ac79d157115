"""Opening the run store's SQLite file, checking it is ours and whole, and saying what is wrong.

The database is a file anyone can delete, truncate, replace or mount read-only, and a disk can
fill while a run writes it. Every SQLite failure leaves the store as one ``StoreError``
sentence that names the file and what to do (STYLE.md §15), never a traceback.

Writers open it read-write and check it first: a file that is not SQLite, an SQLite file of
another program, or one whose pages are damaged (``PRAGMA quick_check``, a read of every
page, about 1 s per GB) is refused before anything is written into it. Readers (``runs
list``, ``runs show``, export) open it read-only, create nothing when it is missing, and read
a read-only filesystem too (SQLite's ``immutable`` mode: nobody can write it there).
"""
from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import time
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from rmcore.errors import DISK_FULL, StoreError

OUR_TABLES = {"runs", "metrics", "sample_rewards", "generations", "checkpoints"}
RUNS_COLUMNS = {"id", "kind", "status", "config"}  # the columns every rmcore store has had
MOVE_ASIDE = "move it aside (a new, empty store is made on the next run) or restore it from a backup"
T = TypeVar("T")

SCHEMA = """
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


def create_schema(conn: sqlite3.Connection) -> None:
    conn.executescript(SCHEMA)


def connect(db_path: Path, *, read_only: bool) -> sqlite3.Connection:
    """A connection in autocommit mode (we open transactions ourselves); writers add use_wal.

    SQLite opens lazily: a missing folder, a read-only mount or garbage bytes show up on the
    first statement, so one is run here, inside the translation to StoreError.
    """
    mode = "ro" if read_only else "rwc"
    with translated(db_path):
        conn = _open(db_path, mode)
        try:
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError:
            conn.close()
            if not (read_only and _on_read_only_disk(db_path)):
                raise
            # A WAL database needs its -shm file, which a read-only disk cannot hold;
            # immutable mode reads the file as it is, which is all a read-only disk allows.
            conn = _open(db_path, "ro&immutable=1")
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        conn.execute("PRAGMA busy_timeout = 15000")
    return conn


def open_store(db_path: Path, *, read_only: bool) -> sqlite3.Connection | None:
    """The first connection, once the file is checked (check_store); None when a reader finds
    no store there (no file, or an empty one)."""
    if read_only and not db_path.exists():
        return None
    conn = connect(db_path, read_only=read_only)
    try:
        has_tables = check_store(conn, db_path, deep=not read_only)
        if not read_only:
            use_wal(conn, db_path)
    except BaseException:
        conn.close()
        raise
    if read_only and not has_tables:
        conn.close()
        return None
    return conn


def use_wal(conn: sqlite3.Connection, db_path: Path) -> None:
    """A writer's settings: WAL (readers never wait for a write). Switching to WAL writes the
    file's header, so it comes after check_store: a file that is not ours is never touched."""
    with translated(db_path):
        retry(lambda: conn.execute("PRAGMA journal_mode = WAL"))
        # NORMAL is durable against an app crash in WAL mode and skips an fsync per commit.
        conn.execute("PRAGMA synchronous = NORMAL")


def _open(db_path: Path, mode: str) -> sqlite3.Connection:
    uri = f"{Path(db_path).absolute().as_uri()}?mode={mode}"
    return sqlite3.connect(uri, uri=True, timeout=15.0, isolation_level=None, check_same_thread=False)


def _on_read_only_disk(db_path: Path) -> bool:
    return db_path.is_file() and not os.access(db_path.parent, os.W_OK)


def check_store(conn: sqlite3.Connection, db_path: Path, *, deep: bool) -> bool:
    """Raise StoreError unless the file is an rmcore store (or a new, empty SQLite file).

    Returns whether it holds any table yet. deep: also read every page (quick_check), so
    a writer never adds rows to a damaged file.
    """
    with translated(db_path):
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables and not tables & OUR_TABLES:
            raise StoreError(f"{db_path} is an SQLite database of another program, not an rmcore run store; "
                             f"{MOVE_ASIDE}, or pass --runs-dir to another folder.")
        if "runs" in tables:
            columns = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
            if not RUNS_COLUMNS <= columns:
                raise StoreError(f"{db_path} has a 'runs' table that is not an rmcore one; {MOVE_ASIDE}.")
        if deep:
            found = [row[0] for row in conn.execute("PRAGMA quick_check")]
            if found != ["ok"]:
                raise StoreError(f"{db_path} is damaged ({found[0]}); {MOVE_ASIDE}.")
    return bool(tables)


def file_identity(db_path: Path) -> tuple[int, int] | None:
    """(device, inode) of the database file, or None when it is gone.

    A connection keeps writing to the file it opened even after that file was deleted or
    replaced, so a run would report "done" into rows nobody can read; comparing this with
    the identity at open time catches it.
    """
    try:
        stat = os.stat(db_path)
    except FileNotFoundError:
        return None
    return stat.st_dev, stat.st_ino


def check_identity(db_path: Path, opened: tuple[int, int] | None) -> None:
    if opened is None or file_identity(db_path) == opened:
        return
    if not db_path.exists():
        raise StoreError(f"{db_path} was deleted while this process was using it; the runs in it went with it "
                         "and nothing more can be recorded. Restore it from a backup, or start again.")
    raise StoreError(f"{db_path} was replaced by another file while this process was using it; nothing more "
                     "can be recorded. Start the run again on the new store.")


def check_path(db_path: Path, *, read_only: bool) -> None:
    """The database path must be a file (or not exist yet), and a writer's must be writable.

    SQLite opens a write-protected file read-only without a word and fails at the first write;
    saying so here keeps a run from being half set up first.
    """
    if db_path.exists() and not db_path.is_file():
        raise StoreError(f"{db_path} is not a file; {MOVE_ASIDE}.")
    if not read_only and db_path.exists() and not os.access(db_path, os.W_OK):
        raise StoreError(f"{db_path} is read-only (file permissions or a read-only disk); make it writable, "
                         "or pass --runs-dir to a writable folder.")


@contextlib.contextmanager
def translated(db_path: Path) -> Iterator[None]:
    """Turn sqlite3 and file-system errors inside the block into one StoreError sentence."""
    try:
        yield
    except StoreError:
        raise
    except sqlite3.Error as exc:
        raise store_error(exc, db_path) from exc
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise StoreError(f"{DISK_FULL.format(path=db_path)} free some space and try again.") from exc
        raise StoreError(f"Cannot use {db_path}: {exc.strerror or exc}.") from exc


def store_error(exc: sqlite3.Error, db_path: Path) -> StoreError:
    """One sentence for an SQLite error, chosen by its result code (Python ≥ 3.11)."""
    code = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc)
    if code == "SQLITE_FULL" or "disk is full" in text:
        return StoreError(f"{DISK_FULL.format(path=db_path)} free some space and try again.")
    if code.startswith("SQLITE_READONLY") or "readonly database" in text:
        return StoreError(f"{db_path} is read-only (file permissions or a read-only disk); make it writable, "
                          "or pass --runs-dir to a writable folder.")
    if code.startswith("SQLITE_CANTOPEN") or "unable to open" in text:
        where = db_path.parent
        if not where.is_dir():
            return StoreError(f"Cannot open {db_path}: the folder {where} does not exist.")
        if not os.access(where, os.W_OK):
            return StoreError(f"Cannot open {db_path}: the folder {where} is read-only; make it writable, "
                              "or pass --runs-dir to a writable folder.")
        return StoreError(f"Cannot open {db_path} (no permission, or not a file); check it, or pass "
                          "--runs-dir to another folder.")
    if code in ("SQLITE_NOTADB", "SQLITE_CORRUPT") or "not a database" in text or "malformed" in text:
        return StoreError(f"{db_path} is not a readable run store (corrupt or replaced by another file); "
                          f"{MOVE_ASIDE}.")
    if code.startswith("SQLITE_IOERR") or "disk I/O error" in text:
        return StoreError(f"Reading or writing {db_path} failed (disk I/O error); check the disk, then try again.")
    if code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text:
        return StoreError(f"{db_path} stayed locked by another process for too long; try again when it is idle.")
    return StoreError(f"The run store {db_path} failed: {text}.")


def retry(fn: Callable[[], T], attempts: int = 8) -> T:
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
