"""Mixed precision that learns: fp32 weights and optimizer state, bf16 autocast forward passes.

bf16 runs on CPU too (torch autocast on CPU), so the path a GPU takes is tested here.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rmcore.config import RewardModelConfig, TrainConfig
from rmcore.errors import ConfigError
from rmcore.precision import autocast, frozen_dtype, no_autocast, resolve_precision

ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")


def test_auto_is_fp32_on_cpu_and_explicit_choices_pass_through():
    assert resolve_precision("auto", CPU) == "fp32"
    assert resolve_precision("fp32", CPU) == "fp32"
    assert resolve_precision("bf16", CPU) == "bf16"
    with pytest.raises(ConfigError, match="precision must be one of"):
        resolve_precision("fp16", CPU)
    with pytest.raises(ConfigError, match="CUDA or CPU"):
        resolve_precision("bf16", torch.device("mps"))


def test_auto_is_bf16_on_a_cuda_gpu_with_bf16(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision("auto", torch.device("cuda")) == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision("auto", torch.device("cuda")) == "fp32"
    with pytest.raises(ConfigError, match="no bfloat16 support"):
        resolve_precision("bf16", torch.device("cuda"))


def test_configs_refuse_an_unknown_precision():
    with pytest.raises(ConfigError, match="precision must be one of"):
        TrainConfig(precision="half").validate()
    with pytest.raises(ConfigError, match="precision must be one of"):
        RewardModelConfig(precision="half").validate()


def test_autocast_runs_linear_layers_in_bf16_and_backward_leaves_it():
    layer = torch.nn.Linear(4, 3)
    x = torch.randn(2, 4)
    with autocast("bf16", CPU):
        y = layer(x)
        with no_autocast(CPU):
            z = layer(x)
    assert y.dtype == torch.bfloat16 and z.dtype == torch.float32
    with autocast("fp32", CPU):
        assert layer(x).dtype == torch.float32
    assert frozen_dtype("bf16") == torch.bfloat16 and frozen_dtype("fp32") == torch.float32


def _changed_fraction(before: dict, after: dict) -> float:
    changed = total = 0
    for name, value in after.items():
        changed += (value != before[name]).sum().item()
        total += value.numel()
    return changed / total


def test_bf16_weights_alone_would_not_learn(tiny_lm_path):
    """Why the weights stay fp32: the same AdamW step on bf16 weights rounds most updates away."""
    from rmcore.backbones import load_causal_lm

    changed = {}
    for dtype in (torch.float32, torch.bfloat16):
        model, tok = load_causal_lm(tiny_lm_path, device=CPU, dtype=dtype)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.0)
        ids = torch.tensor([tok("Quarterly sales rose at Fenora Motors.")["input_ids"]])
        model(input_ids=ids, labels=ids).loss.backward()
        opt.step()
        changed[dtype] = _changed_fraction(before, model.state_dict())
    print(changed)
    # unused positions and token rows get no gradient in either dtype, hence not 1.0
    assert changed[torch.float32] > 0.8
    assert changed[torch.bfloat16] < 0.5 * changed[torch.float32]


def test_bf16_cli_run_on_cpu_changes_the_weights_and_saves_fp32(tmp_path, tiny_lm_path):
    """`train --precision bf16 --device cpu`, 3 steps: ≥ 90% of the policy's weights move, and
    the checkpoint holds fp32 weights (the training copy, not a bf16 one)."""
    from safetensors.torch import load_file

    runs = tmp_path / "runs"
    cmd = [sys.executable, "-m", "rmcore", "--runs-dir", str(runs), "train", "--precision", "bf16",
           "--device", "cpu", "--backbone", tiny_lm_path, "--loss", "grpo", "--steps", "3", "--batch-size", "4",
           "--samples-per-prompt", "4", "--max-new-tokens", "16", "--eval-prompts", "4", "--quiet"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    start = load_file(str(Path(tiny_lm_path) / "model.safetensors"))
    [checkpoint] = list(runs.glob("*/checkpoints/step-000003"))
    end = load_file(str(checkpoint / "model.safetensors"))
    assert {v.dtype for v in end.values()} == {torch.float32}
    assert _changed_fraction({k: start[k] for k in end}, end) >= 0.9


def test_bf16_session_keeps_fp32_policy_and_stores_the_reference_in_bf16(tiny_lm_path):
    from rmcore.algorithms import get_algorithm
    from rmcore.backbones import load_causal_lm
    from rmcore.trainer import make_session

    model, tok = load_causal_lm(tiny_lm_path, device=CPU)
    cfg = TrainConfig(backbone=tiny_lm_path, loss="ppo", precision="bf16", kl_coef=0.1)
    s = make_session(cfg, get_algorithm("ppo"), model, tok, CPU, precision="bf16")
    assert next(s.policy.parameters()).dtype == torch.float32
    assert next(s.value_head.parameters()).dtype == torch.float32
    assert next(s.ref.parameters()).dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 for g in s.optimizer.param_groups for p in g["params"])


@pytest.mark.parametrize("loss", ["ppo", "dpo", "mle"])
def test_every_kind_of_step_runs_at_bf16_with_finite_fp32_numbers(loss, tiny_lm_path):
    from rmcore.trainer import train

    cfg = TrainConfig(backbone=tiny_lm_path, loss=loss, steps=2, batch_size=2, samples_per_prompt=2,
                      max_new_tokens=8, eval_every=0, eval_prompts=2, device="cpu", precision="bf16")
    metrics = train(cfg)
    assert all(v == v and abs(v) != float("inf") for v in metrics.values())
    assert "eval/rougeL" in metrics


def test_reward_model_trains_at_bf16_on_cpu(tiny_lm_path):
    from rmcore.rm_trainer import train_reward_model

    cfg = RewardModelConfig(backbone=tiny_lm_path, steps=3, batch_size=4, eval_pairs=8, max_length=96,
                            device="cpu", precision="bf16")
    metrics = train_reward_model(cfg)
    assert 0.0 <= metrics["eval/accuracy"] <= 1.0 and metrics["loss/total"] == metrics["loss/total"]


@pytest.mark.slow
def test_grpo_raises_eval_rouge_at_bf16_on_cpu(warm150_path):
    """The learning test at bf16. The built-in model starts at eval ROUGE-L 0.96, with no room to
    rise, so this starts from a shorter warm-start of the same recipe (150 steps: 0.52 on these
    16 prompts) where GRPO has room. Measured: 0.524 -> 0.617 / 0.598 at steps 10 / 20
    (fp32: 0.546 / 0.614)."""
    from rmcore.trainer import train

    rouge = {}
    cfg = TrainConfig(backbone=warm150_path, loss="grpo", steps=20, eval_every=10, eval_prompts=16,
                      device="cpu", precision="bf16", checkpoint_every=0)
    train(cfg, on_step=lambda r: rouge.update({r.step: r.metrics["eval/rougeL"]} if "eval/rougeL" in r.metrics else {}))
    assert sorted(rouge) == [0, 10, 20]
    assert max(rouge[10], rouge[20]) > rouge[0] + 0.03 and rouge[20] > rouge[0], rouge
