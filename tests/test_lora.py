"""LoRA through peft: only adapters train, the reference is the base with them off, checkpoints
hold the adapter and merge back into a plain model."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rmcore.config import TrainConfig
from rmcore.errors import ConfigError

CPU = torch.device("cpu")


def lora(path: str, **changes) -> TrainConfig:
    base = dict(backbone=path, steps=3, batch_size=2, samples_per_prompt=2, max_new_tokens=8, eval_every=0,
                eval_prompts=2, log_generations=2, device="cpu", lora_r=4, lora_alpha=8.0, lr=1e-3, kl_coef=0.1)
    return TrainConfig(**{**base, **changes})


def session(cfg: TrainConfig):
    from rmcore.algorithms import get_algorithm
    from rmcore.backbones import load_causal_lm
    from rmcore.trainer import make_session

    model, tok = load_causal_lm(cfg.backbone, device=CPU)
    return make_session(cfg, get_algorithm(cfg.loss), model, tok, CPU)


def test_only_adapters_train_and_the_reference_is_the_same_model(tiny_lm_path):
    from rmcore.lora import trainable_parameters

    s = session(lora(tiny_lm_path))
    trainable, total = trainable_parameters(s.policy)
    optimised = [p for g in s.optimizer.param_groups for p in g["params"]]
    assert 0 < trainable < 0.1 * total
    assert sum(p.numel() for p in optimised) == trainable and all(p.requires_grad for p in optimised)
    assert s.ref is s.policy  # one copy of the base weights


def test_reference_log_probs_are_the_base_models_after_the_adapter_has_moved(tiny_lm_path):
    from rmcore.backbones import load_causal_lm
    from rmcore.policy_step import reference_logprobs
    from rmcore.rollout import encode_pairs, response_logprobs

    s = session(lora(tiny_lm_path))
    for p in s.policy.parameters():  # move every adapter matrix, as training would
        if p.requires_grad:
            p.data.add_(0.05)
    batch = encode_pairs(s.tokenizer, ["Fenora Motors reported sales."], ["Sales rose."], model=s.policy)
    base, _ = load_causal_lm(tiny_lm_path, device=CPU)
    with torch.no_grad():
        expected = response_logprobs(base, batch)[0]
        assert torch.allclose(reference_logprobs(s, batch)[0], expected, atol=1e-6)
        assert not torch.allclose(response_logprobs(s.policy, batch)[0], expected, atol=1e-3)  # adapter on


# REINFORCE, not GRPO: on a random model a group's rewards tie, so GRPO's advantages (and KL's gradient at
# the start) are all zero and nothing would move
@pytest.mark.parametrize("loss", ["reinforce", "ppo", "dpo"])
def test_lora_run_trains_adapters_leaves_the_base_and_checkpoints_the_adapter(loss, tiny_lm_path, tmp_path):
    from safetensors.torch import load_file

    from rmcore.trainer import train

    reports = []
    # DPO reads whole references: cut at 8 tokens a pair's two sides can be the same text
    tokens = 48 if loss == "dpo" else 8
    train(lora(tiny_lm_path, loss=loss, max_new_tokens=tokens), on_step=reports.append, run_dir=tmp_path / "run")
    checkpoint = Path(reports[-1].checkpoint)
    assert (checkpoint / "adapter_config.json").is_file() and not (checkpoint / "model.safetensors").exists()
    adapter = load_file(str(checkpoint / "adapter_model.safetensors"))
    assert adapter and all("lora_" in k for k in adapter)
    assert any(v.abs().sum() > 0 for k, v in adapter.items() if "lora_B" in k)  # B starts at 0: it moved
    if loss != "dpo":
        assert reports[-1].metrics["policy/kl"] > 0  # the policy left its own base


def test_lora_checkpoint_merges_into_a_plain_model_with_the_same_outputs(tiny_lm_path, tmp_path):
    from rmcore.backbones import load_causal_lm
    from rmcore.lora_merge import merge_checkpoint
    from rmcore.rollout import encode_pairs, response_logprobs
    from rmcore.trainer import train

    reports = []
    train(lora(tiny_lm_path, steps=2), on_step=reports.append, run_dir=tmp_path / "run")
    s = session(lora(tiny_lm_path))
    from rmcore.checkpoints import load_checkpoint

    load_checkpoint(s, reports[-1].checkpoint)
    merged_dir = merge_checkpoint(reports[-1].checkpoint, tmp_path / "merged")
    merged, tok = load_causal_lm(str(merged_dir), device=CPU)
    batch = encode_pairs(tok, ["Fenora Motors reported sales."], ["Sales rose sharply."], model=merged)
    with torch.no_grad():
        assert torch.allclose(response_logprobs(merged, batch)[0], response_logprobs(s.policy, batch)[0], atol=1e-5)
    with pytest.raises(ConfigError, match="not a LoRA checkpoint"):
        merge_checkpoint(merged_dir, tmp_path / "again")


def test_lora_resume_matches_the_unbroken_run(tiny_lm_path, tmp_path):
    from rmcore.trainer import train

    cfg = lora(tiny_lm_path, loss="ppo", steps=4, checkpoint_every=2)
    unbroken, first, resumed = [], [], []
    train(cfg, on_step=unbroken.append, run_dir=tmp_path / "a")
    train(cfg, on_step=first.append, run_dir=tmp_path / "b", should_stop=lambda: len(first) >= 3)
    train(cfg, on_step=resumed.append, run_dir=tmp_path / "b", resume_from=first[-1].checkpoint)

    def clean(r):
        return {k: round(v, 5) for k, v in r.metrics.items() if not k.startswith("perf/")}

    assert [clean(r) for r in resumed] == [clean(r) for r in unbroken[3:]]


def test_lora_config_is_checked_and_a_bad_target_is_one_sentence(tiny_lm_path):
    with pytest.raises(ConfigError, match="lora_r"):
        TrainConfig(lora_r=-1).validate()
    with pytest.raises(ConfigError, match="lora_alpha"):
        TrainConfig(lora_r=4, lora_alpha=float("nan")).validate()
    with pytest.raises(ConfigError, match="--lora-targets"):
        session(lora(tiny_lm_path, lora_targets="no_such_layer"))


def test_cli_trains_with_lora_and_merges_the_run(tiny_lm_path, tmp_path):
    import subprocess
    import sys

    from rmcore.backbones import load_causal_lm

    root = Path(__file__).resolve().parents[1]
    runs = tmp_path / "runs"
    cli = [sys.executable, "-m", "rmcore", "--runs-dir", str(runs)]
    done = subprocess.run([*cli, "train", "--backbone", tiny_lm_path, "--loss", "reinforce", "--lora-r", "4",
                           "--lora-alpha", "8", "--steps", "2", "--batch-size", "2", "--samples-per-prompt", "2",
                           "--max-new-tokens", "8", "--eval-prompts", "2", "--device", "cpu", "--quiet"],
                          cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    [run_dir] = [p for p in runs.iterdir() if p.is_dir() and not p.name.startswith("_")]
    merged = subprocess.run([*cli, "runs", "merge", run_dir.name], cwd=root, capture_output=True, text=True,
                            timeout=300)
    assert merged.returncode == 0, merged.stderr
    assert Path(merged.stdout.strip()) == run_dir / "merged"
    load_causal_lm(merged.stdout.strip(), device=CPU)  # a plain model folder: loads as a backbone


def test_lora_module_reads_no_other_rmcore_module_but_errors():
    """The rollout imports rmcore.lora; were it to import backbones (which builds the built-in
    model through warmstart → rollout) the modules would form an import cycle."""
    import ast

    source = (Path(__file__).resolve().parents[1] / "rmcore" / "lora.py").read_text()
    imported = {n.module for n in ast.walk(ast.parse(source)) if isinstance(n, ast.ImportFrom)}
    assert {m for m in imported if m and m.startswith("rmcore")} == {"rmcore.errors"}
