"""The machinery every policy step shares: the session, rollout and scoring, the optimizer step.

The steps themselves are rmcore.online_step (sample, score, update) and rmcore.offline_step
(references, preference pairs); an algorithm's module picks one. Every step returns a
StepResult: metrics (rmcore.metrics' vocabulary), per-sample rewards by term, and the sampled
generations; the trainer adds timing and eval and reports it. Nothing here knows about the
store or the UI.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import Tensor

from rmcore.errors import TrainingError
from rmcore.kl import kl_estimate
from rmcore.lora import reference_context
from rmcore.metrics import (DISTINCT_N, POLICY_ENTROPY, POLICY_KL, RESPONSE_LENGTH, REWARD_TOTAL, REWARD_TOTAL_STD,
                            SELF_BLEU)
from rmcore.optim_step import optimizer_step
from rmcore.rewards import distinct_n, fluency_from_logprobs, self_bleu
from rmcore.rollout import Rollout, encode_prompts, response_logprobs, sample, text_mask


# Self-BLEU is N·(N−1) sentence-BLEU comparisons: for 64 samples 0.25 s of CPU time, about
# a tenth of a whole step of the built-in model (issue 6), so it is logged on the first
# step, every SELF_BLEU_EVERY-th and the last, like an eval metric; each value is exact.
SELF_BLEU_EVERY = 10


@dataclass
class Session:
    """What persists across steps of one run (built by rmcore.trainer)."""
    cfg: Any                      # TrainConfig
    algo: Any                     # rmcore.algorithms.Algorithm
    policy: Any
    tokenizer: Any
    ref: Any | None               # frozen reference model, when KL, fluency or DPO needs it
    value_head: torch.nn.Module | None
    optimizer: torch.optim.Optimizer
    reward: Any                   # CompositeReward
    generator: torch.Generator    # sampling RNG (on the model's device)
    device: torch.device
    baseline: float | None = None  # EMA baseline state
    step: int = 0
    kl_coef: float = 0.0          # KL coefficient in force (cfg.kl_coef; adapted each step when cfg.kl_target > 0)
    draw: Callable[[int, int], list] | None = None  # (round, n) -> n more examples of this step (DAPO's refills)


@dataclass
class StepResult:
    metrics: dict[str, float]
    sample_rewards: dict[str, list[float]] = field(default_factory=dict)
    generations: list[dict] = field(default_factory=list)


def reference_logprobs(s: Session, batch: Rollout, *, temperature: float = 1.0):
    """response_logprobs under the frozen reference: a separate copy, or the LoRA policy with
    its adapter off (rmcore.lora)."""
    with reference_context(s.ref, s.policy):
        return response_logprobs(s.ref, batch, temperature=temperature)


def score(s: Session, batch: Rollout, prompts: list[str], refs: list[str], ref_lp_t1: Tensor | None):
    """Composite reward of sampled completions; fluency comes from the reference log-probs."""
    pre = {}
    if s.reward.weights.get("fluency", 0.0) != 0.0 and ref_lp_t1 is not None:
        pre["fluency"] = fluency_from_logprobs(ref_lp_t1, text_mask(batch, s.tokenizer.eos_token_id))
    return s.reward(prompts, batch.completions, refs, precomputed=pre)


def rollout_and_score(s: Session, prompts: list[str], refs: list[str], group: int, *,
                      policy_forward: bool = True) -> dict[str, Any]:
    """Sample `group` completions per prompt and everything the update needs, without grad.

    policy_forward=False leaves old_lp and entropy None: the single on-policy update fills
    them from its own forward pass (see single_on_policy_pass).
    """
    cfg, timings = s.cfg, {}
    t0 = time.perf_counter()
    ids, mask = encode_prompts(s.tokenizer, prompts, max_new_tokens=cfg.max_new_tokens, model=s.policy,
                               device=s.device)
    ids, mask = ids.repeat_interleave(group, 0), mask.repeat_interleave(group, 0)  # prompt-major (N, P)
    batch = sample(s.policy, s.tokenizer, ids, mask, max_new_tokens=cfg.max_new_tokens,
                   temperature=cfg.temperature, top_p=cfg.top_p, generator=s.generator)
    prompts_g = [p for p in prompts for _ in range(group)]
    refs_g = [r for r in refs for _ in range(group)]
    timings["perf/generate_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    with torch.inference_mode():
        old_lp = entropy = old_values = None
        if policy_forward:
            old_lp, entropy, hidden, _ = response_logprobs(s.policy, batch, temperature=cfg.temperature,
                                                           with_entropy=True, with_hidden=s.value_head is not None)
            old_values = s.value_head(hidden.float()).float().squeeze(-1) if s.value_head is not None else None  # (N, T)
        ref_lp = ref_lp_t1 = None
        if s.ref is not None:
            ref_lp, _, _, ref_lp_t1 = reference_logprobs(s, batch, temperature=cfg.temperature)
    timings["perf/ref_forward_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    rewards = score(s, batch, prompts_g, refs_g, ref_lp_t1)
    timings["perf/reward_s"] = time.perf_counter() - t0
    # inference-mode tensors cannot enter autograd; clones are ordinary tensors
    return dict(batch=batch, prompts=prompts_g, refs=refs_g, old_lp=_clone(old_lp), entropy=_clone(entropy),
                old_values=_clone(old_values), ref_lp=_clone(ref_lp), rewards=rewards, timings=timings)


def _clone(t: Tensor | None) -> Tensor | None:
    return None if t is None else t.clone()


def backward_and_step(s: Session, loss: Tensor) -> None:
    """rmcore.optim_step.optimizer_step: a NaN or inf loss or gradient norm ends the run before
    the step, so the weights (and the last checkpoint) stay as they were."""
    optimizer_step(s.optimizer, loss, s.cfg.max_grad_norm, s.device, lambda what, value: non_finite_error(s, what, value))


def non_finite_error(s: Session, what: str, value: float) -> TrainingError:
    """The error that ends a run whose loss or gradient norm is NaN or inf, with the likely cause.

    Before the first update (AdamW holds no state yet) the learning rate cannot be the
    cause: the backbone's weights are non-finite already, or a loss term overflowed on
    finite ones. After updates, too large a step is the usual cause.
    """
    fp32 = " or --precision fp32" if s.cfg.precision != "fp32" and s.device.type == "cuda" else ""
    if s.optimizer.state:
        clip = " or gradient clipping (--max-grad-norm 1)" if what != "loss" and s.cfg.max_grad_norm == 0 else ""
        hint = f"try a smaller learning rate{clip}{fp32}"
    elif not all(bool(torch.isfinite(p).all()) for p in s.policy.parameters()):
        hint = "before any update, and the backbone's weights already hold NaN or inf: its checkpoint is corrupt"
    else:
        hint = (f"before any update, so not from the learning rate: the {s.algo.name} loss overflowed on finite "
                f"weights; try smaller kl_coef, entropy_coef or vf_coef{fp32}")
    return TrainingError(f"non-finite {what} at step {s.step} ({value}); {hint}.")


def rollout_metrics(s: Session, r: dict, kl_tok: Tensor | None) -> dict[str, float]:
    """Reward per term, KL, entropy and length of a scored rollout (no grad)."""
    mask = r["batch"].response_mask
    totals = torch.tensor(r["rewards"].total)
    m = {REWARD_TOTAL: totals.mean().item(),
         REWARD_TOTAL_STD: totals.std(unbiased=False).item() if len(totals) > 1 else 0.0,
         POLICY_ENTROPY: ((r["entropy"] * mask).sum() / mask.sum().clamp(min=1)).item(),
         RESPONSE_LENGTH: mask.sum(-1).mean().item(),
         DISTINCT_N: distinct_n(r["batch"].completions, s.cfg.distinct_n)}
    if s.step <= 1 or s.step % SELF_BLEU_EVERY == 0 or s.step == s.cfg.steps:
        m[SELF_BLEU] = self_bleu(r["batch"].completions)
    for term, values in r["rewards"].terms.items():
        m[f"reward/{term}"] = sum(values) / len(values)
    if kl_tok is not None:
        m[POLICY_KL] = kl_tok.sum(-1).mean().item()
    elif r["ref_lp"] is not None:
        m[POLICY_KL] = (kl_estimate(r["old_lp"], r["ref_lp"], s.cfg.kl_estimator) * mask).sum(-1).mean().item()
    return m


def finish(s: Session, r: dict, metrics: dict[str, float]) -> StepResult:
    rewards = r["rewards"]
    samples = {"total": list(rewards.total), **{k: list(v) for k, v in rewards.terms.items()}}
    gens = [{"split": "train", "prompt": r["prompts"][i], "completion": r["batch"].completions[i],
             "reference": r["refs"][i], "reward": rewards.total[i],
             "terms": {k: v[i] for k, v in rewards.terms.items()}}
            for i in range(min(s.cfg.log_generations, len(rewards.total)))]
    return StepResult(metrics=metrics, sample_rewards=samples, generations=gens)
