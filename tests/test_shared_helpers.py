"""The one-of-each helpers every trainer shares: context length, device, optimizer step."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from rmcore.context import context_limit
from rmcore.errors import TrainingError
from rmcore.optim_step import optimizer_step
from rmcore.placement import resolve_device as device_name
from rmcore.placement import torch_device


def test_context_limit_reads_either_name_from_a_model_or_its_config():
    from transformers import GPT2Config, LlamaConfig

    assert context_limit(GPT2Config(n_positions=77)) == 77
    assert context_limit(SimpleNamespace(config=LlamaConfig(max_position_embeddings=99))) == 99
    assert context_limit(SimpleNamespace()) is None


def test_auto_device_is_the_same_choice_everywhere():
    assert torch_device("auto") == torch.device(device_name("auto"))


def _setup():
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    return w, torch.optim.SGD([w], lr=0.1)


def test_optimizer_step_clips_and_steps():
    w, opt = _setup()
    norm = optimizer_step(opt, (w * torch.tensor([3.0, 4.0])).sum(), 1.0, torch.device("cpu"), RuntimeError)
    assert norm == pytest.approx(5.0)                          # ‖(3, 4)‖ before clipping
    assert w.detach().tolist() == pytest.approx([1 - 0.1 * 0.6, -2 - 0.1 * 0.8])  # clipped to norm 1


@pytest.mark.parametrize("what", ["loss", "gradient norm"])
def test_optimizer_step_refuses_non_finite_before_stepping(what):
    w, opt = _setup()
    loss = (w * float("inf")).sum() if what == "loss" else (w.pow(2) * torch.tensor([float("inf"), 0.0])).sum() * 0
    if what == "gradient norm":  # finite loss 0·inf… is NaN; build one with a finite value and an inf gradient
        loss = torch.sqrt(w[0] - 1.0)  # value 0, gradient 1 / (2·√0) = inf
    with pytest.raises(TrainingError, match=what):
        optimizer_step(opt, loss, 1.0, torch.device("cpu"), lambda kind, value: TrainingError(f"non-finite {kind}"))
    assert w.detach().tolist() == [1.0, -2.0]
