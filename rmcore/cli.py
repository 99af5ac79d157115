"""`python -m rmcore …`: train policies and reward models headless; list, export and resume runs.

Flags are the config fields with dashes (`--max-new-tokens`), their help is the field's
doc; runs go through the same Runner and store as the app, so they show up there. Bad
input exits non-zero with one line saying what is wrong.

Exit codes: 0 the run is done; 1 it failed (or its store could not record it); 2 bad input
or an unusable store, before any run; 128 + the signal's number (130 SIGINT, 143 SIGTERM,
129 SIGHUP) when a signal stopped it. SIGINT (Ctrl-C), SIGTERM and SIGHUP stop a run at the
end of its step, with a checkpoint to resume from (status stopped); a second signal, or a
step still going STOP_GRACE_S after the first, ends it at once (status interrupted).
`runs list`, `show` and `export` open the store read-only and create nothing.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import signal
import sys
import threading
import time
from typing import Iterator

from rmcore.config import RewardModelConfig, TrainConfig, field_help
from rmcore.errors import RmcoreError, StoreError

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
# After a first signal, how long a step may run on before the run is ended without its stop
# checkpoint: long enough for a normal step, short of a service manager's kill timeout.
STOP_GRACE_S = 60.0


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse prints usage + error; we print one line
        self.exit(2, f"error: {message}\n")


def add_config_flags(parser: argparse.ArgumentParser, cls: type) -> None:
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        kind = type(f.default)
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default,
                                help=field_help(cls, f.name))
        else:
            parser.add_argument(flag, type=kind, default=f.default, metavar=kind.__name__.upper(),
                                help=f"{field_help(cls, f.name)} (default: {f.default!r})")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m rmcore", description=__doc__.splitlines()[0])
    parser.add_argument("--runs-dir", default=None, help="Run store folder (default: $RMCORE_RUNS_DIR or ./runs).")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    train = sub.add_parser("train", help="Train a policy with a chosen loss and reward.")
    add_config_flags(train, TrainConfig)
    train_rm = sub.add_parser("train-rm", help="Train a reward model on preference pairs.")
    add_config_flags(train_rm, RewardModelConfig)
    for p in (train, train_rm):
        p.add_argument("--quiet", action="store_true", help="No progress bar.")
    runs = sub.add_parser("runs", help="List, show and export runs.")
    runs_sub = runs.add_subparsers(dest="runs_command", required=True, parser_class=OneLineParser)
    listing = runs_sub.add_parser("list", help="Every run, newest first.")
    listing.add_argument("--json", action="store_true", help="Print JSON instead of a table.")
    show = runs_sub.add_parser("show", help="A run's config, status and last metrics.")
    show.add_argument("run_id")
    export = runs_sub.add_parser("export", help="Write a run's config, metrics, rewards and generations.")
    export.add_argument("run_id")
    export.add_argument("--format", choices=("csv", "parquet"), default="csv")
    export.add_argument("--out", default=None, help="Output folder (default: the run's folder/export).")
    merge = runs_sub.add_parser("merge", help="Fold a LoRA run's adapter into its base model: a plain model "
                                              "folder any --backbone accepts.")
    merge.add_argument("run_id")
    merge.add_argument("--out", default=None, help="Output folder (default: the run's folder/merged).")
    resume = runs_sub.add_parser("resume", help="Continue an interrupted, failed or stopped run from its "
                                                "latest checkpoint to its planned steps.")
    resume.add_argument("run_id")
    resume.add_argument("--quiet", action="store_true", help="No progress bar.")
    for leaf in (train, train_rm, listing, show, export, merge, resume):  # `runs list --runs-dir X` works too
        leaf.add_argument("--runs-dir", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def config_from_args(cls: type, args: argparse.Namespace):
    return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})


def cmd_train(args: argparse.Namespace, cls: type, caught: dict) -> int:
    from rmcore.runner import Runner
    from rmcore.safety import remote_code_warning

    config = config_from_args(cls, args).validate()
    runner = caught["runner"] = Runner(args.runs_dir or _default_runs_dir())
    run_id = runner.submit(config, name=config.name)
    if remote_code_warning(config):
        say(f"warning: {remote_code_warning(config)}")
    say(f"run {run_id}  ({config.loss} on {config.backbone}, {config.steps} steps) → {runner.store.runs_dir}")
    return follow_to_end(runner, run_id, config.steps, quiet=args.quiet, caught=caught)


def cmd_resume(args: argparse.Namespace, caught: dict) -> int:
    from rmcore.runner import Runner
    from rmcore.store import RunStore

    RunStore(args.runs_dir or _default_runs_dir(), read_only=True).get_run(args.run_id)  # no store made here
    runner = caught["runner"] = Runner(args.runs_dir or _default_runs_dir())
    run_id = runner.resume(args.run_id)
    run = runner.store.get_run(run_id)
    say(f"run {run_id} resumes at step {run['last_step']} of {run['total_steps']}")
    return follow_to_end(runner, run_id, int(run["total_steps"]), quiet=args.quiet, caught=caught)


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
    """Follow a run until it ends; print one line; return the exit code (module docstring)."""
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


def cmd_runs(args: argparse.Namespace, caught: dict) -> int:
    from rmcore.safety import validate_run_id
    from rmcore.store import RunStore

    if getattr(args, "run_id", None) is not None:
        validate_run_id(args.run_id)  # before the store folder is even opened
    if args.runs_command == "resume":
        return cmd_resume(args, caught)
    store = RunStore(args.runs_dir or _default_runs_dir(), read_only=True)
    if args.runs_command == "list":
        if not store.runs_dir.is_dir():
            say(f"note: there is no folder {store.runs_dir}; check --runs-dir or $RMCORE_RUNS_DIR.")
        df = store.list_runs()
        if args.json:
            print(df.to_json(orient="records", date_format="iso", indent=1))
        elif df.empty:
            print("no runs yet")
        else:
            cols = [c for c in ("id", "status", "kind", "loss", "backbone", "last_step", "steps",
                                "final_loss", "best_eval_reward", "duration_s") if c in df.columns]
            print(df[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        return 0
    if args.runs_command == "show":
        from rmcore.store_queries import ORPHAN_MESSAGE, shown_status

        run = store.get_run(args.run_id)
        if shown_status(run["status"], run["pid"]) != run["status"]:
            run.update(status="interrupted", message=ORPHAN_MESSAGE)
        metrics = store.metrics([args.run_id])
        last = (metrics.sort_values("step").groupby("key").last()["value"].to_dict() if not metrics.empty else {})
        print(json.dumps({**{k: v for k, v in run.items() if k != "traceback"}, "last_metrics": last},
                         indent=1, default=str))
        return 0
    from pathlib import Path

    if args.runs_command == "merge":
        return cmd_merge(store, args.run_id, args.out)
    paths = store.export(args.run_id, args.format, Path(args.out) if args.out else None)
    for path in paths:
        print(path)
    return 0


def cmd_merge(store, run_id: str, out: str | None) -> int:
    from pathlib import Path

    from rmcore.errors import ConfigError
    from rmcore.lora_merge import merge_checkpoint

    run = store.get_run(run_id)
    checkpoint = store.latest_checkpoint(run_id)
    if checkpoint is None:
        raise ConfigError(f"Run {run_id} has no checkpoint yet (it is {run['status']}).")
    print(merge_checkpoint(checkpoint, Path(out) if out else store.run_dir(run_id) / "merged"))
    return 0


def _default_runs_dir():
    from rmcore.store import default_runs_dir

    return default_runs_dir()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # With the hub out of reach, huggingface_hub logs each of its 5 retries before giving
    # up; the user gets our one line instead (HubUnavailableError) once they are spent.
    logging.getLogger("huggingface_hub.utils._http").setLevel(logging.ERROR)
    caught: dict = {}
    try:
        with stop_signals() as caught:
            if args.command in ("train", "train-rm"):
                return cmd_train(args, TrainConfig if args.command == "train" else RewardModelConfig, caught)
            return cmd_runs(args, caught)
    except SignalStop as stop:
        name = signal.Signals(stop.args[0]).name
        say(f"stopped by {name}")
        return end_now(caught, 128 + stop.args[0], f"Interrupted by {name} as it started.")
    except (RmcoreError, OSError) as exc:  # OSError: e.g. an --out folder that cannot be written
        from rmcore.safety import scrub_secrets

        text = str(exc) if isinstance(exc, RmcoreError) else f"{exc.strerror or exc}: {exc.filename or ''}"
        say(f"error: {scrub_secrets(text).strip()}")
        return end_now(caught, 2, f"The command following it failed: {scrub_secrets(text).strip()}")
