"""`python -m rmcore …`: train policies and reward models headless; list, export and resume runs.

Flags are the config fields with dashes (`--max-new-tokens`), their help is the field's
doc; runs go through the same Runner and store as the app, so they show up there. Bad
input exits non-zero with one line saying what is wrong.

Exit codes: 0 the run is done; 1 it failed (or its store could not record it); 2 bad input
or an unusable store, before any run; 128 + the signal's number (130 SIGINT, 143 SIGTERM,
129 SIGHUP) when a signal stopped it. SIGINT (Ctrl-C), SIGTERM and SIGHUP stop a run at the
end of its step, with a checkpoint to resume from (status stopped); a second signal, or a
step still going STOP_GRACE_S after the first, ends it at once (status interrupted).
Following a run to its end, signals included, is rmcore.cli_follow's job.
`runs list`, `show` and `export` open the store read-only and create nothing.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import signal

from rmcore.cli_follow import SignalStop, end_now, follow_to_end, say, stop_signals
from rmcore.config import RewardModelConfig, TrainConfig, field_help
from rmcore.errors import RmcoreError


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse prints usage + error; we print one line
        self.exit(2, f"error: {message}\n")


def add_config_flags(parser: argparse.ArgumentParser, cls: type) -> None:
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        kind = type(f.default)
        text = field_help(cls, f.name).replace("%", "%%")  # argparse formats help with %
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default, help=text)
        else:
            parser.add_argument(flag, type=kind, default=f.default, metavar=kind.__name__.upper(),
                                help=f"{text} (default: {f.default!r})")


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
    if isinstance(config, TrainConfig) and resolution_note(config):
        say(f"note: {resolution_note(config)}")
    say(f"run {run_id}  ({config.loss} on {config.backbone}, {config.steps} steps) → {runner.store.runs_dir}")
    return follow_to_end(runner, run_id, config.steps, quiet=args.quiet, caught=caught)


def resolution_note(config: TrainConfig) -> str | None:
    """One sentence when the run trains with other values than those given (TrainConfig.resolved):
    a reference-free algorithm turns off the terms only a reference model measures."""
    resolved = config.resolved()
    off = [name for name in ("beta", "kl_coef", "kl_target") if getattr(config, name) != getattr(resolved, name)]
    if not off:
        return None
    return (f"{config.loss} loads no reference model, so this run trains with {', '.join(off)} = 0 "
            "(the fluency term and the KL need one); the saved config says so.")


def cmd_resume(args: argparse.Namespace, caught: dict) -> int:
    from rmcore.runner import Runner
    from rmcore.store import RunStore

    RunStore(args.runs_dir or _default_runs_dir(), read_only=True).get_run(args.run_id)  # no store made here
    runner = caught["runner"] = Runner(args.runs_dir or _default_runs_dir())
    run_id = runner.resume(args.run_id)
    run = runner.store.get_run(run_id)
    say(f"run {run_id} resumes at step {run['last_step']} of {run['total_steps']}")
    return follow_to_end(runner, run_id, int(run["total_steps"]), quiet=args.quiet, caught=caught)


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
