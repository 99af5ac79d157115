"""One optimizer step of a policy algorithm, on one batch: the phases of the algorithm.

    online:  rollout → reward (− KL if placed in the reward) → advantages → loss → update
    sft:     references → MLE loss → update
    pairs:   preference pairs → DPO loss against the frozen reference → update

Every step returns a StepResult: metrics (namespaced), per-sample rewards by term, and the
sampled generations; the trainer adds timing and eval and reports it. Nothing here knows
about the store or the UI.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from rmcore import advantages as adv
from rmcore.errors import TrainingError
from rmcore.kl import kl_estimate
from rmcore.lora import reference_context
from rmcore.precision import no_autocast
from rmcore.losses import (actor_critic_loss, dpo_loss, grpo_loss, mle_loss, policy_gradient_loss,
                           ppo_loss, reduce_loss)
from rmcore.rewards import distinct_n, fluency_from_logprobs, self_bleu
from rmcore.rollout import Rollout, encode_pairs, encode_prompts, response_logprobs, sample, text_mask


# Self-BLEU is N·(N−1) sentence-BLEU comparisons: for 64 samples 0.25 s of CPU time, about
# a tenth of a whole step of the built-in model (issue 6), so it is logged on the first
# step, every SELF_BLEU_EVERY-th and the last, like an eval metric; each value is exact.
SELF_BLEU_EVERY = 10


@dataclass
class Session:
    """What persists across steps of one run (built by rmcore.trainer)."""
    cfg: Any                      # TrainConfig
    algo: Any                     # Algorithm
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


def single_on_policy_pass(s: Session, n: int) -> bool:
    """True when the update is one pass over the whole batch and nothing reads the old log-probs before it.

    Then the old log-probs are the update pass's own, detached (the policy has not moved yet;
    PPO/GRPO's ratio is exactly 1 with its gradient intact, as in TRL when num_iterations=1),
    and the separate no-grad policy forward is skipped. Not so with several epochs or
    minibatches, a value head (GAE reads old values), or KL placed in the reward.
    """
    cfg = s.cfg
    passes = cfg.ppo_epochs * min(cfg.minibatches, n) if s.algo.clipped else 1
    kl_in_reward = s.ref is not None and cfg.kl_coef > 0 and cfg.kl_placement == "reward"
    return passes == 1 and s.value_head is None and not kl_in_reward


def token_kl(s: Session, r: dict) -> Tensor | None:
    """Per-token KL estimate to the reference on response tokens, (N, T); None when unused or not yet known."""
    if r["ref_lp"] is None or s.cfg.kl_coef <= 0 or r["old_lp"] is None:
        return None
    return kl_estimate(r["old_lp"], r["ref_lp"], s.cfg.kl_estimator) * r["batch"].response_mask


def online_step(s: Session, prompts: list[str], refs: list[str]) -> StepResult:
    cfg = s.cfg
    G = cfg.samples_per_prompt
    one_pass = single_on_policy_pass(s, len(prompts) * G)
    r = rollout_and_score(s, prompts, refs, G, policy_forward=not one_pass)
    R = torch.tensor(r["rewards"].total, dtype=torch.float32, device=s.device)  # (N,)

    kl_tok = token_kl(s, r)                                                      # (N, T) or None
    R_seq = R - cfg.kl_coef * kl_tok.sum(-1) if (kl_tok is not None and cfg.kl_placement == "reward") else R

    advantages, returns = make_advantages(s, r, R, R_seq, kl_tok, prompts, refs)
    t0 = time.perf_counter()
    stats = update(s, r, advantages, returns)
    metrics = {**stats, **r["timings"], "perf/update_s": time.perf_counter() - t0}
    if one_pass:  # old_lp came from the update pass
        kl_tok = token_kl(s, r)
    metrics.update(rollout_metrics(s, r, kl_tok))
    if R_seq is not R:
        metrics["reward/with_kl_penalty"] = R_seq.mean().item()
    return finish(s, r, metrics)


def make_advantages(s: Session, r: dict, R: Tensor, R_seq: Tensor, kl_tok: Tensor | None,
                    prompts: list[str], refs: list[str]) -> tuple[Tensor | None, Tensor | None]:
    """(advantages, returns) for the algorithm: (N,) sequence-level or (N, T) token-level."""
    cfg, kind, G = s.cfg, s.algo.advantage, s.cfg.samples_per_prompt
    mask = r["batch"].response_mask
    if kind == "reward":
        return adv.reward_advantages(R_seq), None
    if kind == "rloo":
        return adv.rloo_advantages(R_seq, G), None
    if kind == "grpo":
        return adv.group_normalized_advantages(R_seq, G), None
    if kind == "baseline" and cfg.baseline == "greedy":
        greedy = greedy_rewards(s, prompts, refs)                               # (num_prompts,)
        return adv.self_critical_advantages(R_seq, greedy.repeat_interleave(G)), None
    if kind == "baseline":
        b = s.baseline if s.baseline is not None else R_seq.mean().item()  # first batch: its own mean
        s.baseline = adv.ema_baseline_update(s.baseline, R_seq.mean().item(), cfg.baseline_decay)
        return adv.baseline_advantages(R_seq, b), None
    if kind == "critic":  # terminal reward, γ = 1: the return from every token is R
        return None, R_seq[:, None].expand_as(mask) * mask
    if kind == "gae":  # InstructGPT-style: per-token −β·KL, the sequence reward on the last token
        token_rewards = adv.terminal_rewards(R, mask)
        if kl_tok is not None and cfg.kl_placement == "reward":
            token_rewards = token_rewards - cfg.kl_coef * kl_tok
        a, ret = adv.gae(token_rewards, r["old_values"], mask, cfg.gae_gamma, cfg.gae_lambda)
        return adv.whiten(a, mask), ret
    raise TrainingError(f"Algorithm {s.algo.name} has no advantage estimator {kind!r}.")


def greedy_rewards(s: Session, prompts: list[str], refs: list[str]) -> Tensor:
    """Self-critical baseline: the reward of each prompt's greedy completion."""
    ids, mask = encode_prompts(s.tokenizer, prompts, max_new_tokens=s.cfg.max_new_tokens, model=s.policy,
                               device=s.device)
    batch = sample(s.policy, s.tokenizer, ids, mask, max_new_tokens=s.cfg.max_new_tokens, greedy=True)
    ref_t1 = None
    if s.ref is not None:
        with torch.inference_mode():
            ref_t1 = reference_logprobs(s, batch)[3]
    return torch.tensor(score(s, batch, prompts, refs, ref_t1).total, device=s.device)


def update(s: Session, r: dict, advantages: Tensor | None, returns: Tensor | None) -> dict[str, float]:
    """Epochs × minibatches of loss + KL + entropy terms; returns the mean of each stat."""
    cfg, algo = s.cfg, s.algo
    batch = r["batch"]
    n = batch.input_ids.shape[0]
    epochs, chunks = (cfg.ppo_epochs, cfg.minibatches) if algo.clipped else (1, 1)
    totals: dict[str, float] = {}
    count = 0
    for _ in range(epochs):
        order = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed + s.step * 1000 + count))
        for idx in order.chunk(min(chunks, n)):
            idx = idx.to(s.device)
            mb = Rollout(batch.input_ids[idx], batch.attention_mask[idx], batch.response_mask[idx],
                         batch.prompt_len, [])
            loss, stats = minibatch_loss(s, r, mb, idx, advantages, returns)
            backward_and_step(s, loss)
            for k, v in stats.items():
                totals[k] = totals.get(k, 0.0) + v
            count += 1
    return {k: v / count for k, v in totals.items()}


def minibatch_loss(s: Session, r: dict, mb: Rollout, idx: Tensor, advantages, returns):
    cfg, name = s.cfg, s.algo.name
    mask = mb.response_mask
    norm = dict(loss_norm=cfg.loss_norm, max_len=cfg.max_new_tokens)
    fill_old = r["old_lp"] is None  # the single on-policy pass: see single_on_policy_pass
    logprobs, entropy, hidden, _ = response_logprobs(s.policy, mb, temperature=cfg.temperature,
                                                     with_entropy=cfg.entropy_coef > 0 or fill_old,
                                                     with_hidden=s.value_head is not None)
    if fill_old:  # back into rollout order (idx is a permutation of every row)
        r["old_lp"] = torch.empty_like(logprobs).index_copy_(0, idx, logprobs.detach())
        r["entropy"] = torch.empty_like(entropy).index_copy_(0, idx, entropy.detach())
    values = s.value_head(hidden.float()).float().squeeze(-1) if s.value_head is not None else None  # fp32 under autocast
    A = advantages[idx] if advantages is not None else None
    if name == "ppo":
        loss, stats = ppo_loss(logprobs, r["old_lp"][idx], A, values, r["old_values"][idx], returns[idx], mask,
                               clip_eps=cfg.clip_eps, value_clip=cfg.value_clip or None, vf_coef=cfg.vf_coef, **norm)
    elif name == "grpo":
        loss, stats = grpo_loss(logprobs, r["old_lp"][idx], A, mask, clip_eps=cfg.clip_eps, **norm)
    elif name == "actor_critic":
        loss, stats = actor_critic_loss(logprobs, values, returns[idx], mask, vf_coef=cfg.vf_coef, **norm)
    else:  # reinforce, reinforce_baseline, rloo: the REINFORCE estimator with their advantages
        loss, stats = policy_gradient_loss(logprobs, A, mask, **norm)
    stats = dict(stats)
    if r["ref_lp"] is not None and cfg.kl_coef > 0 and cfg.kl_placement == "loss":
        kl_loss = reduce_loss(kl_estimate(logprobs, r["ref_lp"][idx], cfg.kl_estimator), mask, **_norm(norm))
        loss = loss + cfg.kl_coef * kl_loss
        stats["loss/kl"] = kl_loss.item()
    if cfg.entropy_coef > 0:
        ent = reduce_loss(entropy, mask, **_norm(norm))
        loss = loss - cfg.entropy_coef * ent
        stats["loss/entropy_bonus"] = ent.item()
    stats["loss/total"] = loss.item()
    return loss, stats


def _norm(norm: dict) -> dict:
    return {"mode": norm["loss_norm"], "max_len": norm["max_len"]}


def backward_and_step(s: Session, loss: Tensor) -> None:
    """Backward, clip, step; a NaN or inf loss or gradient norm ends the run before the step,
    so the weights (and the last checkpoint) stay as they were."""
    if not math.isfinite(loss.item()):
        raise non_finite_error(s, "loss", loss.item())
    s.optimizer.zero_grad(set_to_none=True)
    with no_autocast(s.device):  # the step runs inside the trainer's autocast; backward leaves it
        loss.backward()
        params = [p for g in s.optimizer.param_groups for p in g["params"]]
        # Measured with clipping off too (max_grad_norm 0; the grads are then scaled by 1.0):
        # one inf gradient would make AdamW turn every weight it touches into NaN.
        grad_norm = torch.nn.utils.clip_grad_norm_(params, s.cfg.max_grad_norm or float("inf")).item()
        if not math.isfinite(grad_norm):
            raise non_finite_error(s, "gradient norm", grad_norm)
        s.optimizer.step()


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
    m = {"reward/total": totals.mean().item(),
         "reward/total_std": totals.std(unbiased=False).item() if len(totals) > 1 else 0.0,
         "policy/entropy": ((r["entropy"] * mask).sum() / mask.sum().clamp(min=1)).item(),
         "gen/response_length": mask.sum(-1).mean().item(),
         "batch/distinct_n": distinct_n(r["batch"].completions, s.cfg.distinct_n)}
    if s.step <= 1 or s.step % SELF_BLEU_EVERY == 0 or s.step == s.cfg.steps:
        m["batch/self_bleu"] = self_bleu(r["batch"].completions)
    for term, values in r["rewards"].terms.items():
        m[f"reward/{term}"] = sum(values) / len(values)
    if kl_tok is not None:
        m["policy/kl"] = kl_tok.sum(-1).mean().item()
    elif r["ref_lp"] is not None:
        m["policy/kl"] = (kl_estimate(r["old_lp"], r["ref_lp"], s.cfg.kl_estimator) * mask).sum(-1).mean().item()
    return m


def finish(s: Session, r: dict, metrics: dict[str, float]) -> StepResult:
    rewards = r["rewards"]
    samples = {"total": list(rewards.total), **{k: list(v) for k, v in rewards.terms.items()}}
    gens = [{"split": "train", "prompt": r["prompts"][i], "completion": r["batch"].completions[i],
             "reference": r["refs"][i], "reward": rewards.total[i],
             "terms": {k: v[i] for k, v in rewards.terms.items()}}
            for i in range(min(s.cfg.log_generations, len(rewards.total)))]
    return StepResult(metrics=metrics, sample_rewards=samples, generations=gens)


def sft_step(s: Session, prompts: list[str], refs: list[str]) -> StepResult:
    """MLE on references, then one sample per prompt to watch the reward (no gradient from it)."""
    t0 = time.perf_counter()
    batch = encode_pairs(s.tokenizer, prompts, refs, model=s.policy, max_new_tokens=s.cfg.max_new_tokens,
                         device=s.device)
    logprobs, *_ = response_logprobs(s.policy, batch)
    loss, stats = mle_loss(logprobs, batch.response_mask, loss_norm=s.cfg.loss_norm, max_len=s.cfg.max_new_tokens)
    backward_and_step(s, loss)
    metrics = {**stats, "loss/total": loss.item(), "perf/update_s": time.perf_counter() - t0}
    return monitor(s, prompts, refs, metrics)


def dpo_step(s: Session, pairs: list) -> StepResult:
    t0 = time.perf_counter()
    prompts = [p.prompt for p in pairs]
    chosen = encode_pairs(s.tokenizer, prompts, [p.chosen for p in pairs], model=s.policy,
                          max_new_tokens=s.cfg.max_new_tokens, device=s.device)
    rejected = encode_pairs(s.tokenizer, prompts, [p.rejected for p in pairs], model=s.policy,
                            max_new_tokens=s.cfg.max_new_tokens, device=s.device)

    def seq_logps(model, b: Rollout) -> Tensor:  # log π(y|x) summed over response tokens  (B,)
        return (response_logprobs(model, b)[0] * b.response_mask).sum(-1)

    with torch.inference_mode(), reference_context(s.ref, s.policy):
        ref_c, ref_r = seq_logps(s.ref, chosen).clone(), seq_logps(s.ref, rejected).clone()
    loss, stats = dpo_loss(seq_logps(s.policy, chosen), seq_logps(s.policy, rejected), ref_c, ref_r,
                           beta=s.cfg.dpo_beta)
    backward_and_step(s, loss)
    metrics = {**stats, "loss/total": loss.item(), "perf/update_s": time.perf_counter() - t0}
    refs = [getattr(p, "chosen") for p in pairs]
    return monitor(s, prompts, refs, metrics)


def monitor(s: Session, prompts: list[str], refs: list[str], metrics: dict[str, float]) -> StepResult:
    """One sampled completion per prompt, scored, so offline losses chart the same rewards."""
    r = rollout_and_score(s, prompts, refs, 1)
    metrics = {**metrics, **r["timings"]}
    metrics.update(rollout_metrics(s, r, None))
    return finish(s, r, metrics)
