"""Following a CLI run to its end: the progress bar, stop signals, the closing line and exit code.

Split out of rmcore.cli, which parses the command line and dispatches; the exit codes and
what each signal does are in its docstring. Everything here talks to a run only through the
Runner and its store, as the app does.
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from typing import Iterator

from rmcore.errors import RmcoreError, StoreError

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
# After a first signal, how long a step may run on before the run is ended without its stop
# checkpoint: long enough for a normal step, short of a service manager's kill timeout.
STOP_GRACE_S = 60.0


class SignalStop(Exception):
    """A stop signal before there is a run to follow: the command ends at once."""


@contextlib.contextmanager
def stop_signals() -> Iterator[dict]:
    """Catch SIGINT, SIGTERM and SIGHUP: {"signals": [...], "following": bool, "runner"}.

    While a run is followed the handler only records (it may run while the main thread holds
    a runner lock) and the follow loop acts; before that there is nothing to stop, so it
    raises SignalStop. Handlers can only be set from the main thread.
    """
    caught: dict = {"signals": [], "following": False, "runner": None}

    def handler(signum: int, frame) -> None:
        caught["signals"].append(signum)
        if not caught["following"]:
            raise SignalStop(signum)

    main = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS} if main else {}
    try:
        yield caught
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def end_now(caught: dict, code: int, message: str) -> int:
    """Leave with `code`: runs this command started and still live are interrupted, and a
    training thread still inside a step is not joined (see _exit_now)."""
    runner = caught.get("runner")
    live = runner.active() if runner is not None else []
    for entry in live:
        with contextlib.suppress(RmcoreError):
            runner.interrupt(entry["run_id"], message=message)
    if live:
        _exit_now(code)
    return code


def follow_to_end(runner, run_id: str, steps: int, *, quiet: bool, caught: dict | None = None) -> int:
    """Follow a run until it ends; print one line; return the exit code (rmcore.cli's docstring)."""
    caught = caught if caught is not None else {"signals": []}
    caught["following"] = True
    status, error = follow(runner, run_id, steps, quiet=quiet, signals=caught["signals"])
    last_step = _last_step(runner, run_id)
    signals = caught["signals"]
    if status == "failed":
        say(f"error: run {run_id} failed: {error}")
        code = 1
    elif signals:
        name = signal.Signals(signals[0]).name
        how = f"stopped by {name} at step" if status == "stopped" else f"interrupted by {name} after step"
        say(f"run {run_id} {how} {last_step}; {_resume_hint(runner, run_id)}")
        code = 128 + signals[0]
    else:
        say(f"run {run_id} {status} at step {last_step}")
        code = 0 if status in ("done", "stopped") else 1
    if runner.is_live(run_id):  # an interrupted step still running: leave without joining it
        _exit_now(code)
    return code


def follow(runner, run_id: str, steps: int, *, quiet: bool, signals: list[int] | None = None) -> tuple[str, str | None]:
    """A progress bar over the run's steps, read from the store like the app does, until the
    run ends: (status, error). A first signal stops the run at its step's end, a second one
    (or STOP_GRACE_S later) ends it now. The runner's own outcome decides the end, so a store
    that can no longer be read or written ends the follow too, never a hang."""
    from tqdm import tqdm

    signals = signals if signals is not None else []
    bar = None if quiet else tqdm(total=steps, unit="step", dynamic_ncols=True, file=sys.stderr)
    stop_deadline = None
    while True:
        ended = runner.outcome(run_id)
        if ended is not None:
            break
        if signals and stop_deadline is None:
            runner.stop(run_id)
            stop_deadline = time.monotonic() + STOP_GRACE_S
            bar = _close(bar)  # after SIGHUP the terminal is gone
            say(f"{signal.Signals(signals[0]).name}: stopping at the end of this step; a second signal ends it now")
        if len(signals) > 1 or (stop_deadline is not None and time.monotonic() > stop_deadline):
            name = signal.Signals(signals[-1]).name
            with contextlib.suppress(RmcoreError):  # a store that fails now must not keep us here
                runner.interrupt(run_id, message=f"Interrupted by {name} after step {_last_step(runner, run_id)}, "
                                                 "in the middle of the next one.")
            ended = ("interrupted", None)
            break
        try:
            bar = _update(bar, runner.store.get_run(run_id), run_id)
        except StoreError:
            runner.stop(run_id)  # it cannot record anything more; its next write fails it
        time.sleep(0.2)
    _close(bar)
    return ended


def _update(bar, run: dict, run_id: str):
    """Show the run's step and message; the bar is dropped when stderr can no longer be written."""
    if bar is None:
        return bar
    try:
        if run["status"] == "preparing" and run.get("message"):
            bar.set_description_str(run["message"], refresh=False)
        elif run["status"] == "running":
            bar.set_description_str(run_id, refresh=False)
        bar.n = int(run.get("last_step") or 0)
        bar.refresh()
        return bar
    except OSError:
        return None


def _close(bar) -> None:
    if bar is not None:
        with contextlib.suppress(OSError):
            bar.close()


def _resume_hint(runner, run_id: str) -> str:
    try:
        has_checkpoint = runner.store.latest_checkpoint(run_id) is not None
    except RmcoreError:
        has_checkpoint = False
    if not has_checkpoint:
        return "it has no checkpoint to resume from"
    return f"`python -m rmcore runs resume {run_id}` continues it from its last checkpoint"


def _last_step(runner, run_id: str) -> int | str:
    try:
        return int(runner.store.get_run(run_id).get("last_step") or 0)
    except RmcoreError:
        return "?"


def say(text: str) -> None:
    """One line on stderr; a closed terminal (SIGHUP) or pipe is not an error worth a traceback."""
    with contextlib.suppress(OSError, ValueError):
        print(text, file=sys.stderr, flush=True)


def _exit_now(code: int) -> None:
    """Exit without joining a training thread still inside a step. A normal exit would run
    libtorch's teardown under that thread and abort; the store's commits are already on disk."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)
