"""`pytest -m gpu`: every policy and reward-model loss, 5 steps on CUDA in bf16 (skips without CUDA).

Each run must move the weights (fp32 master weights under bf16 autocast) and give back its
memory when it ends, so a GPU shared by the app's queue does not fill up run after run.
"""
from __future__ import annotations

import gc
import math

import pytest
import torch

from rmcore.algorithms import POLICY_LOSSES
from rmcore.config import RewardModelConfig, TrainConfig
from rmcore.losses import REWARD_MODEL_LOSSES

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
RM_MARGIN = {"hinge": 1.0, "triplet": 1.0}  # margin losses need m > 0


def _released() -> float:
    gc.collect()
    torch.cuda.empty_cache()
    return torch.cuda.memory_allocated() / 2**20


@pytest.mark.parametrize("loss", list(POLICY_LOSSES))
def test_each_policy_loss_on_cuda_in_bf16(loss, tiny_lm_path, tmp_path):
    from safetensors.torch import load_file

    from rmcore.trainer import train

    before = _released()
    reports = []
    cfg = TrainConfig(backbone=tiny_lm_path, loss=loss, steps=5, batch_size=4, samples_per_prompt=2,
                      max_new_tokens=16, eval_every=0, eval_prompts=4, device="cuda", precision="bf16",
                      kl_coef=0.05)
    train(cfg, on_step=reports.append, run_dir=tmp_path / "run")
    assert all(math.isfinite(v) for r in reports for v in r.metrics.values())
    start = load_file(f"{tiny_lm_path}/model.safetensors")
    end = load_file(str(tmp_path / "run" / "checkpoints" / "step-000005" / "model.safetensors"))
    changed = sum((end[k] != start[k]).sum().item() for k in end) / sum(v.numel() for v in end.values())
    assert changed > 0.8 and {v.dtype for v in end.values()} == {torch.float32}
    assert _released() < before + 16  # MiB: the run's model, cache and optimizer are gone


@pytest.mark.parametrize("loss", list(REWARD_MODEL_LOSSES))
def test_each_reward_model_loss_on_cuda_in_bf16(loss, tiny_lm_path):
    from rmcore.rm_trainer import train_reward_model

    before = _released()
    cfg = RewardModelConfig(backbone=tiny_lm_path, loss=loss, steps=5, batch_size=8, eval_pairs=16,
                            max_length=96, device="cuda", precision="bf16", margin=RM_MARGIN.get(loss, 0.0))
    metrics = train_reward_model(cfg)
    assert math.isfinite(metrics["loss/total"]) and 0.0 <= metrics["eval/accuracy"] <= 1.0
    assert _released() < before + 16
