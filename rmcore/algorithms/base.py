"""What a policy algorithm is to the engine: one `Algorithm` record per module of this package.

The record carries behaviour, not flags to dispatch on: ``step`` runs one optimizer step of
the algorithm's kind (rmcore.online_step or rmcore.offline_step), ``filter_rollout`` (optional)
drops or adds samples before the advantages (DAPO's dynamic sampling), ``advantages`` turns a
scored rollout into its learning signal, ``loss`` is its per-minibatch objective, and
``diagnostics`` names the metrics of its own that the Train page charts. Nothing outside an
algorithm's module looks at its name.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from torch import Tensor

LossFn = Callable[[Any], tuple[Tensor, dict[str, float]]]   # rmcore.step_inputs.LossInputs or PairInputs
AdvantageFn = Callable[[Any], tuple[Tensor | None, Tensor | None]]  # AdvantageInputs -> (advantages, returns)


@dataclass(frozen=True)
class Algorithm:
    name: str                 # the config's `loss` value, and this module's name
    label: str                # how menus and legends name it
    description: str          # one line: the paper and the idea
    step: Callable            # (Session, list of examples or pairs) -> StepResult
    loss: LossFn              # its objective; stats hold loss/<name>
    data: str = "examples"    # "examples" (prompt + reference) or "pairs" (chosen, rejected)
    advantages: AdvantageFn | None = None  # online algorithms only
    needs_reward: bool = True   # all-zero reward weights are an error
    needs_reference: bool = False  # its loss reads the frozen reference (DPO's implicit reward)
    value_head: bool = False    # trains a scalar value head on the policy's last hidden state
    multi_epoch: bool = False   # reuses each rollout for ppo_epochs × minibatches updates (ratio to π_old)
    min_samples: int = 1        # smallest samples_per_prompt (G) it is defined for; ≥ 2 makes it a group algorithm
    loss_norm: str | None = None   # the reduction its paper fixes, used when the config says "auto" (None: token_mean)
    kl_placement: str | None = None  # where its paper puts the KL, used when the config says "auto" (None: loss)
    reference_free: bool = False   # never loads a reference model (so no fluency term and no KL in its runs)
    filter_rollout: Callable | None = None  # (Session, scored rollout, examples) -> (rollout, metrics), before advantages
    options: tuple[str, ...] = ()      # the TrainConfig fields of its own that it reads
    diagnostics: tuple[str, ...] = ()  # metric keys of its own (rmcore.metrics), charted on Train
    order: int = 100            # position in menus

    @property
    def is_group(self) -> bool:
        """Its advantages compare the G samples of one prompt (GRPO, RLOO, …)."""
        return self.min_samples >= 2

    @property
    def kind(self) -> str:
        """'online' (samples and scores), 'sft' (references) or 'pairs' (preferences), for display."""
        if self.data == "pairs":
            return "pairs"
        return "online" if self.advantages is not None else "sft"
