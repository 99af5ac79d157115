"""One optimizer step of an online algorithm: sample, score, make advantages, update.

    rollout → reward → [algo.filter_rollout] → aggregate the terms (sum, or z-scored per term)
    (− β·KL if placed in the reward) → algo.advantages → epochs × minibatches of algo.loss
    + shared KL (if placed in the loss) and entropy terms → optimizer step → [adapt β]

The algorithm (rmcore.algorithms.<name>) supplies only its advantage estimator and its loss;
everything else here is shared by all of them, so one KL, one entropy bonus, one reduction
and one optimizer step serve every online algorithm.
"""
from __future__ import annotations

import time

import torch
from torch import Tensor

from rmcore.kl import adaptive_kl_coef, kl_estimate
from rmcore.losses import reduce_loss
from rmcore.metrics import KL_COEF, POLICY_KL, REWARD_WITH_KL, SIGNAL_SHARE, ZERO_STD_FRAC
from rmcore.policy_step import (Session, StepResult, backward_and_step, finish, reference_logprobs,
                                rollout_and_score, rollout_metrics, score)
from rmcore.rewards.aggregate import aggregate_rewards, signal_shares
from rmcore.rollout import Rollout, encode_prompts, response_logprobs, sample
from rmcore.scored_rollouts import tied_groups
from rmcore.step_inputs import AdvantageInputs, LossInputs


def online_step(s: Session, examples: list) -> StepResult:
    """One batch of prompts (rmcore.data.Example) → G samples each → one or more updates."""
    cfg = s.cfg
    prompts, refs = [e.prompt for e in examples], [e.reference for e in examples]
    G = cfg.samples_per_prompt
    one_pass = single_on_policy_pass(s, len(prompts) * G)
    r = rollout_and_score(s, prompts, refs, G, policy_forward=not one_pass)
    metrics: dict[str, float] = {}
    learn = r  # the rows the update learns from: all of them, or those the algorithm's filter keeps
    if s.algo.filter_rollout is not None:
        r, learn, metrics = s.algo.filter_rollout(s, r, examples)
    if s.algo.is_group and ZERO_STD_FRAC not in metrics:
        tied = tied_groups(r["rewards"].total, G)
        metrics[ZERO_STD_FRAC] = sum(tied) / len(tied)

    t0 = time.perf_counter()
    if learn["batch"].input_ids.shape[0]:
        metrics.update(learn_from(s, learn))
    metrics.update({**r["timings"], "perf/update_s": time.perf_counter() - t0})
    kl_tok = token_kl(s, r)  # after the update on the single on-policy pass, whose forward filled old_lp
    metrics.update(rollout_metrics(s, r, kl_tok))
    if cfg.kl_target > 0 and POLICY_KL in metrics:
        metrics[KL_COEF] = s.kl_coef  # the coefficient this step used; the next one moves it
        s.kl_coef = adaptive_kl_coef(s.kl_coef, metrics[POLICY_KL], cfg.kl_target, len(r["prompts"]), cfg.kl_horizon)
    return finish(s, r, metrics)


def learn_from(s: Session, r: dict) -> dict[str, float]:
    """Advantages of a scored rollout (the reward aggregated, minus β·KL when placed in the
    reward) and the algorithm's updates on them; returns the update's stats."""
    cfg = s.cfg
    G = cfg.samples_per_prompt
    prompts, refs = r["prompts"][::G], r["refs"][::G]  # one per prompt, in group order
    R = aggregate_rewards(r["rewards"], G,
                          cfg.reward_aggregation if s.algo.is_group else "sum").to(s.device)  # (N,)
    kl_tok = token_kl(s, r)                                                                     # (N, T) or None
    kl_in_reward = kl_tok is not None and cfg.kl_placement == "reward"
    R_seq = R - s.kl_coef * kl_tok.sum(-1) if kl_in_reward else R
    advantages, returns = s.algo.advantages(AdvantageInputs(
        session=s, rewards=R_seq, raw_rewards=R, token_kl=kl_tok, mask=r["batch"].response_mask,
        old_values=r["old_values"], prompts=prompts, refs=refs, kl_coef=s.kl_coef))
    stats = update(s, r, advantages, returns)
    if s.algo.is_group:
        mode = cfg.reward_aggregation
        stats.update({f"{SIGNAL_SHARE}{k}": v for k, v in signal_shares(r["rewards"], G, mode).items()})
    if kl_in_reward:  # the composite reward minus the penalty, whatever the aggregation
        total = torch.tensor(r["rewards"].total, dtype=torch.float32, device=s.device)
        stats[REWARD_WITH_KL] = (total - s.kl_coef * kl_tok.sum(-1)).mean().item()
    return stats


def single_on_policy_pass(s: Session, n: int) -> bool:
    """True when the update is one pass over the whole batch and nothing reads the old log-probs before it.

    Then the old log-probs are the update pass's own, detached (the policy has not moved yet;
    PPO/GRPO's ratio is exactly 1 with its gradient intact, as in TRL when num_iterations=1),
    and the separate no-grad policy forward is skipped. Not so with several epochs or
    minibatches, a value head (GAE reads old values), KL placed in the reward, or a rollout
    filter (it may drop rows, and the metrics still read every row's log-probs).
    """
    cfg = s.cfg
    passes = cfg.ppo_epochs * min(cfg.minibatches, n) if s.algo.multi_epoch else 1
    kl_in_reward = s.ref is not None and s.kl_coef > 0 and cfg.kl_placement == "reward"
    return passes == 1 and s.value_head is None and not kl_in_reward and s.algo.filter_rollout is None


def token_kl(s: Session, r: dict) -> Tensor | None:
    """Per-token KL estimate to the reference on response tokens, (N, T); None when unused or not yet known."""
    if r["ref_lp"] is None or s.kl_coef <= 0 or r["old_lp"] is None:
        return None
    return kl_estimate(r["old_lp"], r["ref_lp"], s.cfg.kl_estimator) * r["batch"].response_mask


def greedy_rewards(s: Session, prompts: list[str], refs: list[str]) -> Tensor:
    """The reward of each prompt's greedy completion, (num_prompts,): a self-critical baseline."""
    ids, mask = encode_prompts(s.tokenizer, prompts, max_new_tokens=s.cfg.max_new_tokens, model=s.policy,
                               device=s.device)
    batch = sample(s.policy, s.tokenizer, ids, mask, max_new_tokens=s.cfg.max_new_tokens, greedy=True)
    ref_t1 = None
    if s.ref is not None:
        with torch.inference_mode():
            ref_t1 = reference_logprobs(s, batch)[3]
    return torch.tensor(score(s, batch, prompts, refs, ref_t1).total, device=s.device)


def update(s: Session, r: dict, advantages: Tensor | None, returns: Tensor | None) -> dict[str, float]:
    """Epochs × minibatches (multi-epoch algorithms) or one pass; returns the mean of each stat."""
    cfg = s.cfg
    batch = r["batch"]
    n = batch.input_ids.shape[0]
    epochs, chunks = (cfg.ppo_epochs, cfg.minibatches) if s.algo.multi_epoch else (1, 1)
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
    """The algorithm's loss on one minibatch, plus the shared KL-in-loss and entropy terms."""
    cfg = s.cfg
    mask = mb.response_mask
    fill_old = r["old_lp"] is None  # the single on-policy pass: see single_on_policy_pass
    logprobs, entropy, hidden, _ = response_logprobs(s.policy, mb, temperature=cfg.temperature,
                                                     with_entropy=cfg.entropy_coef > 0 or fill_old,
                                                     with_hidden=s.value_head is not None)
    if fill_old:  # back into rollout order (idx is a permutation of every row)
        r["old_lp"] = torch.empty_like(logprobs).index_copy_(0, idx, logprobs.detach())
        r["entropy"] = torch.empty_like(entropy).index_copy_(0, idx, entropy.detach())
    values = s.value_head(hidden.float()).float().squeeze(-1) if s.value_head is not None else None  # fp32 under autocast

    def rows(t: Tensor | None) -> Tensor | None:
        return None if t is None else t[idx]

    loss, stats = s.algo.loss(LossInputs(cfg=cfg, logprobs=logprobs, mask=mask, old_logprobs=rows(r["old_lp"]),
                                         advantages=rows(advantages), values=values,
                                         old_values=rows(r["old_values"]), returns=rows(returns)))
    stats = dict(stats)
    reduction = {"mode": cfg.loss_norm, "max_len": cfg.max_new_tokens}
    if r["ref_lp"] is not None and s.kl_coef > 0 and cfg.kl_placement == "loss":
        kl_loss = reduce_loss(kl_estimate(logprobs, r["ref_lp"][idx], cfg.kl_estimator), mask, **reduction)
        loss = loss + s.kl_coef * kl_loss
        stats["loss/kl"] = kl_loss.item()
    if cfg.entropy_coef > 0:
        ent = reduce_loss(entropy, mask, **reduction)
        loss = loss - cfg.entropy_coef * ent
        stats["loss/entropy_bonus"] = ent.item()
    stats["loss/total"] = loss.item()
    return loss, stats
