"""Bad input and safety (issue 7): every bad input is one clear line from the CLI and the
same rmcore error from Runner.submit, and changes nothing in the store; the app binds
loopback, remote code is opt-in, weights come only from safetensors, names cannot escape
their folder, and secrets never reach the store, an export or the CLI's output."""
from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from rmcore import cli
from rmcore.config import RewardModelConfig, TrainConfig
from rmcore.errors import ConfigError, DataError, RmcoreError
from rmcore.events import StepReport
from rmcore.runner import Runner
from rmcore.safety import (
    MAX_UPLOAD_BYTES,
    check_safetensors_folder,
    redact_secrets,
    remote_code_warning,
    safe_filename,
    save_upload,
    scrub_secrets,
)
from rmcore.store import RunStore

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--steps", "2", "--batch-size", "2", "--samples-per-prompt", "2", "--max-new-tokens", "8",
        "--eval-every", "0", "--eval-prompts", "2", "--device", "cpu"]


# --------------------------------------------------------------------------- bad input
def write_data_files(folder: Path) -> dict[str, Path]:
    """Broken CSV / JSONL / Parquet files (and a good 3-row one) for the bad-input cases."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {"csv-malformed": b"prompt,reference\na,b\nc,d,e\n", "csv-empty": b"",
             "csv-missing-columns": b"a,b\n1,2\n", "csv-not-utf8": b"prompt,reference\n\xff\xfe doc,ref\n",
             "jsonl-malformed": b'{"prompt": "a", "reference": \n', "jsonl-empty": b"\n",
             "jsonl-missing-columns": b'{"a": 1, "b": 2}\n', "jsonl-not-utf8": b'{"prompt": "\xff", "reference": "r"}\n',
             "parquet-malformed": b"PAR1 this is not parquet", "csv-three-rows": b"prompt,reference\na,b\nc,d\ne,f\n"}
    paths = {}
    for name, data in files.items():
        paths[name] = folder / f"{name}.{name.split('-')[0]}"
        paths[name].write_bytes(data)
    for name, table in {"parquet-empty": pa.table({"prompt": pa.array([], pa.string()),
                                                   "reference": pa.array([], pa.string())}),
                        "parquet-missing-columns": pa.table({"a": [1], "b": [2]})}.items():
        paths[name] = folder / f"{name}.parquet"
        pq.write_table(table, paths[name])
    return paths


def pickle_only_model(tiny_lm_path: str, folder: Path) -> Path:
    """A model folder as older checkpoints ship it: config, tokenizer, pytorch_model.bin only."""
    shutil.copytree(tiny_lm_path, folder)
    from safetensors.torch import load_file

    weights = load_file(str(folder / "model.safetensors"))
    (folder / "model.safetensors").unlink()
    torch.save(weights, folder / "pytorch_model.bin")
    return folder


BAD_CASES = {  # name -> (CLI flags after `train`, words of the one-line error)
    **{f"{w}-{kind}": ([f"--{w}", value], words) for w in ("alpha", "beta", "gamma")
       for kind, value, words in (("nan", "nan", f"{w} must be a finite number"),
                                  ("inf", "inf", f"{w} must be a finite number"),
                                  ("text", "abc", "invalid float value"))},
    "weights-all-zero": (["--alpha", "0", "--beta", "0", "--gamma", "0"], "All reward weights are zero"),
    "steps-zero": (["--steps", "0"], "steps must be at least 1"),
    "steps-negative": (["--steps", "-3"], "steps must be at least 1"),
    "unknown-loss": (["--loss", "magic"], "Unknown loss 'magic'"),
    "batch-larger-than-dataset": (["--task", "{csv-three-rows}", "--batch-size", "8"],
                                  "batch_size (8) is larger than the dataset"),
    "tokens-beyond-context": (["--backbone", "{tiny}", "--max-new-tokens", "300"], "context length (256)"),
    "backbone-missing-folder": (["--backbone", "{tmp}/no/such/model"], "No model folder at"),
    "backbone-hub-offline": (["--backbone", "someone/not-a-model"], "Cannot reach the Hugging Face Hub for"),
    "backbone-not-safetensors": (["--backbone", "{pickle-model}"], "has no safetensors weights (found pytorch_model.bin)"),
    "task-unknown": (["--task", "no-such-task"], "dataset 'no-such-task'"),
    "task-hub-unreachable": (["--task", "cnn_dailymail"], "Cannot reach the Hugging Face Hub to load dataset"),
    "task-file-missing": (["--task", "{tmp}/gone.csv"], "was not found"),
    "csv-malformed": (["--task", "{csv-malformed}"], "is a malformed CSV"),
    "csv-empty": (["--task", "{csv-empty}"], "is empty"),
    "csv-missing-columns": (["--task", "{csv-missing-columns}"], "needs columns prompt + reference"),
    "csv-not-utf8": (["--task", "{csv-not-utf8}"], "is not UTF-8 text"),
    "jsonl-malformed": (["--task", "{jsonl-malformed}"], "is malformed: line 1 is not valid JSON"),
    "jsonl-empty": (["--task", "{jsonl-empty}"], "is empty"),
    "jsonl-missing-columns": (["--task", "{jsonl-missing-columns}"], "needs columns prompt + reference"),
    "jsonl-not-utf8": (["--task", "{jsonl-not-utf8}"], "is not UTF-8 text"),
    "parquet-malformed": (["--task", "{parquet-malformed}"], "is not a valid Parquet file"),
    "parquet-empty": (["--task", "{parquet-empty}"], "is empty"),
    "parquet-missing-columns": (["--task", "{parquet-missing-columns}"], "needs columns prompt + reference"),
}
BAD_RUN_IDS = [["runs", verb, run_id] for verb in ("show", "export", "resume")
               for run_id in ("../escape", "../../etc/passwd", "/abs/path", "a/../../b")]


@pytest.fixture(scope="module")
def places(tmp_path_factory, tiny_lm_path) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("bad-input")
    named = {name: str(path) for name, path in write_data_files(tmp / "data").items()}
    return {**named, "tmp": str(tmp), "tiny": tiny_lm_path,
            "pickle-model": str(pickle_only_model(tiny_lm_path, tmp / "pickle-model"))}


@pytest.fixture
def snapshot(runs_dir):
    """A store with one finished run; snapshot() -> everything a bad input must not change."""
    store = RunStore(runs_dir)
    kept = store.create_run(kind="policy", config={"loss": "grpo"}, total_steps=1)
    store.record_step(kept, StepReport(1, 1, {"loss/total": 1.0}))
    store.set_status(kept, "done")

    def take():
        return (store.list_runs()[["id", "status", "last_step"]].to_dict("records"),
                len(store.metrics([kept])), sorted(p.name for p in runs_dir.iterdir() if not p.name.startswith("rmcore.db")))

    yield take
    store.close()


def run_cli(argv: list[str], capsys) -> tuple[int, list[str]]:
    try:
        code = cli.main(argv)
    except SystemExit as exit_:  # argparse errors exit from inside parse_args
        code = exit_.code
    return code, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_input_is_one_line_from_the_cli_and_the_same_error_from_submit(case, places, snapshot, runs_dir, capsys):
    flags, words = BAD_CASES[case]
    flags = [flag.format(**places) for flag in flags]
    before = snapshot()
    code, lines = run_cli(["--runs-dir", str(runs_dir), "train", *TINY[2:], *flags], capsys)
    assert code != 0 and len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], lines
    assert snapshot() == before

    if case.endswith("-text"):  # argparse stops text; a config from elsewhere (the app) gets here
        config, words = TrainConfig(**{case.split("-")[0]: "abc"}), "must be float, got 'abc'"
    else:
        args = cli.build_parser().parse_args(["train", *TINY[2:], *flags])
        config = cli.config_from_args(TrainConfig, args)
    runner = Runner(runs_dir)
    with pytest.raises(RmcoreError) as raised:
        runner.submit(config)
    assert words in str(raised.value) and "\n" not in str(raised.value)
    assert snapshot() == before and runner.active() == []


@pytest.mark.parametrize("argv", BAD_RUN_IDS, ids=lambda a: f"{a[1]} {a[2]}")
def test_run_ids_with_path_traversal_are_refused(argv, snapshot, runs_dir, capsys):
    before = snapshot()
    code, lines = run_cli(["--runs-dir", str(runs_dir), *argv], capsys)
    assert code == 2 and lines == [f"error: Invalid run id {argv[2]!r}: use letters, digits, '_', '.' and '-' only."]
    assert snapshot() == before
    store = RunStore(runs_dir)
    for method in (store.get_run, store.run_dir, store.delete_run, lambda r: Runner(runs_dir).resume(r)):
        with pytest.raises(ConfigError, match="Invalid run id"):
            method(argv[2])


def test_the_real_entry_point_prints_one_line_for_a_pickle_backbone(places, runs_dir):
    env = {**os.environ, "RMCORE_RUNS_DIR": str(runs_dir)}
    out = subprocess.run([sys.executable, "-m", "rmcore", "train", "--backbone", places["pickle-model"], *TINY],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [
        f"error: {places['pickle-model']} has no safetensors weights (found pytorch_model.bin); rmcore loads "
        "weights only from safetensors (convert with save_pretrained(safe_serialization=True))."]
    assert RunStore(runs_dir).list_runs().empty


@pytest.mark.slow  # huggingface_hub retries 5 times with backoff (~25 s) before it gives up
def test_an_unreachable_hub_is_one_line_and_no_run(runs_dir, tmp_path):
    """Not offline mode: the hub's address refuses connections, as on a machine without network."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    env.update(RMCORE_RUNS_DIR=str(runs_dir), HF_ENDPOINT="http://127.0.0.1:9", HF_HOME=str(tmp_path / "hf"))
    out = subprocess.run([sys.executable, "-m", "rmcore", "train", "--task", "cnn_dailymail", *TINY],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [
        "error: Cannot reach the Hugging Face Hub to load dataset 'cnn_dailymail' and it is not cached; download "
        "it on a connected machine or pass a local CSV/JSONL/Parquet file."]
    assert RunStore(runs_dir).list_runs().empty


def test_a_reward_model_config_is_checked_before_it_is_written(places, runs_dir):
    runner = Runner(runs_dir)
    for config, words in ((RewardModelConfig(lr=float("nan")), "lr must be a finite number"),
                          (RewardModelConfig(steps=0), "steps must be at least 1"),
                          (RewardModelConfig(backbone=places["pickle-model"]), "no safetensors weights")):
        with pytest.raises(ConfigError, match=words):
            runner.submit(config)
    assert runner.store.list_runs().empty


def test_submit_many_is_all_or_nothing(places, runs_dir):
    """"Compare losses" submits several configs: one bad one means none is written."""
    runner = Runner(runs_dir, train_fns={"policy": lambda *args: None})
    good = TrainConfig(backbone=places["tiny"], steps=1, device="cpu")
    with pytest.raises(ConfigError, match="context length"):
        runner.submit_many([good, good.replace(loss="rloo"), good.replace(max_new_tokens=999)])
    assert runner.store.list_runs().empty
    with pytest.raises(ConfigError, match="2 configs but 1 names"):
        runner.submit_many([good, good], names=["a"])
    run_ids = runner.submit_many([good, good.replace(loss="rloo")], names=["a", "b"])
    assert [runner.wait(r, 30) for r in run_ids] == ["done", "done"]
    assert runner.store.list_runs().set_index("id").loc[run_ids, "name"].tolist() == ["a", "b"]


# --------------------------------------------------------------------------- the app's address
def test_the_app_binds_loopback_and_limits_uploads():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1" and config["server"]["headless"] is True
    assert config["server"]["maxUploadSize"] * 2**20 == MAX_UPLOAD_BYTES
    assert config["browser"]["gatherUsageStats"] is False


# --------------------------------------------------------------------------- remote code, weights
def spy_on_loading(monkeypatch) -> list[tuple[str, dict]]:
    """Record every from_pretrained call (class name, kwargs) and still load."""
    import transformers

    calls: list[tuple[str, dict]] = []
    for name in ("AutoConfig", "AutoTokenizer", "AutoModel", "AutoModelForCausalLM",
                 "AutoModelForSequenceClassification"):
        cls = getattr(transformers, name)

        def spy(path, *args, _load=cls.from_pretrained, _name=name, **kwargs):
            calls.append((_name, kwargs))
            return _load(path, *args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", spy)
    return calls


def test_remote_code_is_off_unless_asked_and_loading_passes_the_choice_on(tiny_lm_path, runs_dir, monkeypatch, capsys):
    assert TrainConfig().trust_remote_code is False and RewardModelConfig().trust_remote_code is False
    assert cli.build_parser().parse_args(["train"]).trust_remote_code is False
    assert cli.build_parser().parse_args(["train-rm"]).trust_remote_code is False
    calls = spy_on_loading(monkeypatch)
    import rmcore.trainer
    from rmcore.rm_trainer import train_reward_model

    policy = TrainConfig(backbone=tiny_lm_path, loss="ppo", steps=2, batch_size=2, samples_per_prompt=2,
                         max_new_tokens=8, eval_every=0, eval_prompts=2, checkpoint_every=1, device="cpu")
    runner = Runner(runs_dir)
    run_id = runner.submit(policy)                               # preflight + load + train
    assert runner.wait(run_id, 120) == "done"
    checkpoint = runner.store.checkpoints(run_id)[0][1]
    rmcore.trainer.train(policy, run_dir=runs_dir / "again", resume_from=checkpoint)  # checkpoint load
    train_reward_model(RewardModelConfig(backbone=tiny_lm_path, steps=1, batch_size=2, eval_pairs=2,
                                         max_length=64, device="cpu"))
    loaded = {name for name, _ in calls}
    assert {"AutoConfig", "AutoTokenizer", "AutoModelForCausalLM", "AutoModelForSequenceClassification"} <= loaded
    assert all(kwargs.get("trust_remote_code", False) is False for _, kwargs in calls)
    assert all(kwargs.get("use_safetensors") is True for name, kwargs in calls if name.startswith("AutoModel"))

    calls.clear()
    from rmcore.backbones import load_causal_lm

    load_causal_lm(tiny_lm_path, device=torch.device("cpu"), trust_remote_code=True)
    assert calls and all(kwargs["trust_remote_code"] is True for _, kwargs in calls)
    assert remote_code_warning(TrainConfig()) is None and "your permissions" in remote_code_warning(
        TrainConfig(trust_remote_code=True))
    code, lines = run_cli(["--runs-dir", str(runs_dir), "train", "--backbone", tiny_lm_path, "--trust-remote-code",
                           "--quiet", "--loss", "mle", "--steps", "1", *TINY[2:]], capsys)
    assert code == 0 and any(line.startswith("warning: trust_remote_code is on") for line in lines)


def python_files() -> list[Path]:
    skip = {".venv", ".cache", ".git", "runs", "__pycache__", "node_modules"}
    return [p for p in ROOT.rglob("*.py") if not skip & set(p.relative_to(ROOT).parts)]


def calls_named(tree: ast.AST, owner: str | None, attr: str):
    for node in ast.walk(tree):
        is_call = isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == attr
        if is_call and (owner is None or (isinstance(node.func.value, ast.Name) and node.func.value.id == owner)):
            yield node


def keyword_is_true(call: ast.Call, name: str) -> bool:
    return any(k.arg == name and isinstance(k.value, ast.Constant) and k.value.value is True for k in call.keywords)


def test_every_torch_load_is_weights_only_and_rmcore_loads_models_from_safetensors():
    """Scans the source tree: a pickle can run code when it is read, so torch.load must pass
    weights_only=True everywhere, and every from_pretrained of a model in rmcore forces
    safetensors (directly or through backbones._from_pretrained, which adds it)."""
    torch_loads, unsafe = 0, []
    for path in python_files():
        tree = ast.parse(path.read_text(), filename=str(path))
        for call in calls_named(tree, "torch", "load"):
            torch_loads += 1
            if not keyword_is_true(call, "weights_only"):
                unsafe.append(f"{path.relative_to(ROOT)}:{call.lineno}")
        for call in (*calls_named(tree, "pickle", "load"), *calls_named(tree, "pickle", "loads")):
            if "tests" not in path.parts:
                unsafe.append(f"{path.relative_to(ROOT)}:{call.lineno} (pickle)")
    assert torch_loads >= 1 and unsafe == []  # ≥ 1: the scan does see rmcore.checkpoints' torch.load

    unforced = []
    for path in (ROOT / "rmcore").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for function in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)):
            if function.name == "_from_pretrained":
                continue
            for call in calls_named(function, None, "from_pretrained"):
                if not keyword_is_true(call, "use_safetensors"):
                    unforced.append(f"{path.relative_to(ROOT)}:{call.lineno}")
    assert unforced == []


def test_pickle_weights_are_refused_at_load_time_too(places):
    from rmcore.backbones import load_causal_lm

    with pytest.raises(ConfigError, match="no safetensors weights"):
        load_causal_lm(places["pickle-model"], device=torch.device("cpu"))
    with pytest.raises(ConfigError, match=r"no safetensors weights \(found pytorch_model.bin\)"):
        check_safetensors_folder(places["pickle-model"])
    check_safetensors_folder(places["tiny"])          # a safetensors folder passes
    check_safetensors_folder("gpt2")                  # hub ids are left to from_pretrained


# --------------------------------------------------------------------------- names and uploads
@pytest.mark.parametrize("name, safe", [
    ("../../etc/passwd", "passwd"), ("..\\..\\windows\\system.ini", "system.ini"), ("my data?.csv", "my_data_.csv"),
    (".hidden.csv", "hidden.csv"), ("a/../b..csv", "b.csv"), ("..", "data"), ("", "data"), ("résumé.jsonl", "r_sum_.jsonl"),
    ("x" * 300 + ".parquet", "x" * 92 + ".parquet")])
def test_safe_filename_keeps_names_inside_their_folder(name, safe, tmp_path):
    assert safe_filename(name) == safe
    assert (tmp_path / safe_filename(name)).resolve().parent == tmp_path.resolve()


def test_uploads_are_sanitised_and_size_limited(tmp_path):
    data = b"prompt,reference\na,b\n"
    path = save_upload(data, "../../outside/my file.csv", tmp_path / "uploads")
    assert path.parent == tmp_path / "uploads" and path.name.endswith("-my_file.csv") and path.read_bytes() == data
    assert save_upload(data, "other.csv", tmp_path / "uploads").read_bytes() == data
    with pytest.raises(DataError, match="uploads are limited to 50 MB"):
        save_upload(b"x" * (MAX_UPLOAD_BYTES + 1), "big.csv", tmp_path / "uploads")
    with pytest.raises(DataError, match="is not a CSV, JSONL, JSON or Parquet file"):
        save_upload(b"x", "model.bin", tmp_path / "uploads")
    assert sorted(p.name.split("-", 1)[1] for p in (tmp_path / "uploads").iterdir()) == ["my_file.csv", "other.csv"]


# --------------------------------------------------------------------------- secrets
def test_secrets_never_reach_the_store_an_export_or_the_cli(runs_dir, monkeypatch, capsys, tmp_path):
    hf_token, api_key = "hf_aZ3kQ9pL2mX7vB4nR8tY1wE6uI0oP5sDf", "sk-live-0123456789abcdef"
    monkeypatch.setenv("HF_TOKEN", hf_token)
    monkeypatch.setenv("OPENAI_API_KEY", api_key)
    secrets = (hf_token, api_key, "hunter2-password")

    def leaky_train(config, on_step, should_stop, on_progress, run_dir):
        on_progress(type("P", (), {"stage": "load", "message": f"Downloading with {hf_token}"})())
        on_step(StepReport(1, 2, {"loss/total": 1.0}))
        raise RuntimeError(f"401 for https://user:{api_key}@huggingface.co/x (HF_TOKEN={hf_token})")

    runner = Runner(runs_dir, train_fns={"policy": leaky_train})
    run_id = runner.submit(TrainConfig(steps=2, device="cpu"), name=f"try {hf_token}")
    assert runner.wait(run_id, 30) == "failed"
    store = runner.store
    kept = store.create_run(kind="policy", config={"hf_token": "hunter2-password", "hub": {"api_key": api_key},
                                                   "backbone": f"https://{hf_token}@host/model"})
    assert store.get_run(kept)["config"] == {"hf_token": "***", "hub": {"api_key": "***"},
                                             "backbone": "https://***@host/model"}
    assert "***" in store.get_run(run_id)["error"] and "***" in store.get_run(run_id)["name"]

    for fmt in ("csv", "parquet"):
        for rid in (run_id, kept):
            store.export(rid, fmt, tmp_path / "export" / rid)
    code, lines = run_cli(["--runs-dir", str(runs_dir), "runs", "show", run_id], capsys)
    code2, lines2 = run_cli(["--runs-dir", str(runs_dir), "train", "--backbone", f"/models/{hf_token}"], capsys)
    assert code == 0 and code2 == 2 and lines2 == ["error: No model folder at '/models/***'."]
    store.close()
    saved = [p for p in [*runs_dir.rglob("*"), *(tmp_path / "export").rglob("*")] if p.is_file()]
    assert any(p.name.startswith("rmcore.db") for p in saved) and any(p.suffix == ".parquet" for p in saved)
    # Parquet compresses its pages: read it back as text; everything else is searched raw.
    texts = [pd.read_parquet(p).to_csv().encode() if p.suffix == ".parquet" else p.read_bytes() for p in saved]
    for secret in secrets:
        assert not any(secret.encode() in text for text in texts), secret
        assert not any(secret in line for line in lines + lines2)


def test_export_redacts_a_row_written_before_redaction_existed(runs_dir, tmp_path):
    store = RunStore(runs_dir)
    run_id = store.create_run(kind="policy", config={})
    old_row = json.dumps({"loss": "grpo", "hf_token": "hf_aZ3kQ9pL2mX7vB4nR8tY1wE6uI0oP5sDf"})
    store._write(lambda c: c.execute("UPDATE runs SET config = ? WHERE id = ?", (old_row, run_id)))
    exported = json.loads(store.export(run_id, "csv", tmp_path)[0].read_text())
    assert exported["config"] == {"loss": "grpo", "hf_token": "***"}
    store.close()


def test_scrubbing_leaves_ordinary_text_alone(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "1")                    # flags, not secrets: too short to scrub
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")  # not a secret-looking name
    assert scrub_secrets("max_new_tokens 1 false hf_short") == "max_new_tokens 1 false hf_short"
    assert redact_secrets({"max_new_tokens": 32, "hf_token": "", "name": "a"}) == {
        "max_new_tokens": 32, "hf_token": "", "name": "a"}
    assert json.dumps(redact_secrets({"x": {"password": "pw-123456789"}})) == '{"x": {"password": "***"}}'
