"""`python -m rmcore …`: train policies and reward models headless; list, export and resume runs.

Flags are the config fields with dashes (`--max-new-tokens`), their help is the field's
doc; runs go through the same Runner and store as the app, so they show up there. Bad
input exits non-zero with one line saying what is wrong.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time

from rmcore.config import RewardModelConfig, TrainConfig, field_help
from rmcore.errors import RmcoreError


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
    return parser


def config_from_args(cls: type, args: argparse.Namespace):
    return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})


def cmd_train(args: argparse.Namespace, cls: type) -> int:
    from rmcore.runner import Runner
    from rmcore.safety import remote_code_warning

    config = config_from_args(cls, args).validate()
    runner = Runner(args.runs_dir or _default_runs_dir())
    run_id = runner.submit(config, name=config.name)
    if remote_code_warning(config):
        print(f"warning: {remote_code_warning(config)}", file=sys.stderr)
    print(f"run {run_id}  ({config.loss} on {config.backbone}, {config.steps} steps) → {runner.store.runs_dir}",
          file=sys.stderr)
    return follow_to_end(runner, run_id, config.steps, quiet=args.quiet)


def cmd_resume(args: argparse.Namespace) -> int:
    from rmcore.runner import Runner

    runner = Runner(args.runs_dir or _default_runs_dir())
    run_id = runner.resume(args.run_id)
    run = runner.store.get_run(run_id)
    print(f"run {run_id} resumes at step {run['last_step']} of {run['total_steps']}", file=sys.stderr)
    return follow_to_end(runner, run_id, int(run["total_steps"]), quiet=args.quiet)


def follow_to_end(runner, run_id: str, steps: int, *, quiet: bool) -> int:
    """Follow a run until it ends (Ctrl-C stops it); exit code 1 if it failed, else 0."""
    try:
        status = follow(runner, run_id, steps, quiet=quiet)
    except KeyboardInterrupt:
        runner.stop(run_id)
        status = runner.wait(run_id, timeout=120)
    run = runner.store.get_run(run_id)
    if status == "failed":
        print(f"error: run {run_id} failed: {run.get('error')}", file=sys.stderr)
        return 1
    print(f"run {run_id} {status} at step {run.get('last_step')}", file=sys.stderr)
    return 0


def follow(runner, run_id: str, steps: int, *, quiet: bool) -> str:
    """A progress bar over the run's steps, read from the store like the app does."""
    from tqdm import tqdm

    bar = None if quiet else tqdm(total=steps, unit="step", dynamic_ncols=True, file=sys.stderr)
    message = None
    while True:
        run = runner.store.get_run(run_id)
        status = run["status"]
        if bar is not None:
            if run.get("message") and run["message"] != message and status == "preparing":
                message = run["message"]
                bar.set_description_str(message)
            elif status == "running":
                bar.set_description_str(run_id)
            bar.n = int(run.get("last_step") or 0)
            bar.refresh()
        if status in ("done", "failed", "stopped", "interrupted"):
            if bar is not None:
                bar.close()
            return status
        time.sleep(0.5)


def cmd_runs(args: argparse.Namespace) -> int:
    from rmcore.safety import validate_run_id
    from rmcore.store import RunStore

    if getattr(args, "run_id", None) is not None:
        validate_run_id(args.run_id)  # before the store folder is even opened
    if args.runs_command == "resume":
        return cmd_resume(args)
    store = RunStore(args.runs_dir or _default_runs_dir())
    if args.runs_command == "list":
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
        run = store.get_run(args.run_id)
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
    try:
        if args.command == "train":
            return cmd_train(args, TrainConfig)
        if args.command == "train-rm":
            return cmd_train(args, RewardModelConfig)
        return cmd_runs(args)
    except RmcoreError as exc:
        from rmcore.safety import scrub_secrets

        print(f"error: {scrub_secrets(str(exc))}", file=sys.stderr)
        return 2
