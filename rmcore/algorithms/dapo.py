"""DAPO (Yu et al. 2025, arXiv:2503.14476): GRPO with four changes for long, sparse-reward RL.

    A_i = (R_i − mean_group) / (std_group + 1e-4)                   over each prompt's G samples
    L   = Σ_i Σ_t −min(ρ_t A_i, clip(ρ_t, 1 − ε_low, 1 + ε_high) A_i) / Σ_i |y_i|      eq. 8

1. Clip-higher (§3.1): ε_high = 0.28 > ε_low = 0.2, so a low-probability token can gain more
   before the clip stops it; entropy collapses less.
2. Dynamic sampling (§3.2): a group whose rewards all tie has A = 0 everywhere and only
   dilutes the batch. Such groups are dropped (policy/zero_std_frac: their share in the batch
   as first sampled), and up to dapo_oversample_rounds rounds of fresh prompts refill the
   batch to batch_size groups (policy/refill_rounds; policy/kept_groups: groups learnt from /
   batch_size). The reward charts read every sample drawn, refills included.
3. Token-level loss (§3.3): every token of the batch weighs the same (loss_norm token_mean).
4. Soft over-length punishment (§3.4, eq. 13), with L_max = max_new_tokens and a buffer
   L_cache = dapo_overlong_buffer · L_max, added to the reward as the term reward/overlong
   with weight dapo_overlong_coef:
       R_len(y) = 0 if |y| ≤ L_max − L_cache;  (L_max − L_cache − |y|) / L_cache if |y| ≤ L_max;  −1 beyond
   Groups tie or not on the task reward, before this term, as the paper filters on accuracy.
The paper drops the KL term: set kl_coef 0 to match it. Options: dapo_clip_low, dapo_clip_high,
dapo_oversample_rounds, dapo_overlong_buffer, dapo_overlong_coef, ppo_epochs, minibatches (G ≥ 2).
"""
import torch
from torch import Tensor

from rmcore import advantages as adv
from rmcore.algorithms.base import Algorithm
from rmcore.losses import clipped_surrogate_loss
from rmcore.metrics import APPROX_KL, CLIPFRAC_HIGH, CLIPFRAC_LOW, ZERO_STD_FRAC
from rmcore.online_step import online_step
from rmcore.policy_step import Session, rollout_and_score
from rmcore.rewards import RewardBreakdown
from rmcore.scored_rollouts import concat_scored, select_rows, tied_groups
from rmcore.step_inputs import AdvantageInputs, LossInputs

REFILL_ROUNDS = "policy/refill_rounds"
KEPT_GROUPS = "policy/kept_groups"
OVERLONG = "overlong"  # the reward term's name (reward/overlong)


def overlong_penalty(lengths: Tensor, max_len: int, buffer: float) -> Tensor:
    """DAPO's soft over-length penalty (eq. 13) of responses of `lengths` tokens, (N,) -> (N,) in [−1, 0]."""
    cache = buffer * max_len
    if cache <= 0:
        return torch.zeros_like(lengths, dtype=torch.float32)
    start = max_len - cache
    lengths = lengths.float()
    ramp = (start - lengths) / cache
    return torch.where(lengths <= start, torch.zeros_like(ramp), torch.where(lengths <= max_len, ramp, -1.0))


def dynamic_sampling(s: Session, r: dict, n_prompts: int) -> tuple[dict, list[int], dict[str, float]]:
    """Every sample drawn this step (refills appended), the rows of at most n_prompts groups
    with a reward spread to learn from, and the sampling diagnostics."""
    G = s.cfg.samples_per_prompt
    parts = [r]
    kept = [g for g, tied in enumerate(tied_groups(r["rewards"].total, G)) if not tied]
    zero_std_frac = 1 - len(kept) / n_prompts
    rounds = 0
    while len(kept) < n_prompts and rounds < s.cfg.dapo_oversample_rounds and s.draw is not None:
        rounds += 1
        more = s.draw(rounds, n_prompts)
        part = rollout_and_score(s, [e.prompt for e in more], [e.reference for e in more], G)
        kept += [n_prompts * rounds + g for g, tied in enumerate(tied_groups(part["rewards"].total, G)) if not tied]
        parts.append(part)
    kept = kept[:n_prompts]
    rows = [g * G + j for g in kept for j in range(G)]
    return (concat_scored(parts, s.tokenizer.pad_token_id), rows,
            {ZERO_STD_FRAC: zero_std_frac, REFILL_ROUNDS: float(rounds), KEPT_GROUPS: len(kept) / n_prompts})


def with_overlong_term(s: Session, r: dict) -> dict:
    """r with the over-length penalty as a reward term of its own (in the total, and logged)."""
    cfg, rewards = s.cfg, r["rewards"]
    if cfg.dapo_overlong_buffer == 0 or cfg.dapo_overlong_coef == 0:
        return r
    penalty = overlong_penalty(r["batch"].response_mask.sum(-1), cfg.max_new_tokens, cfg.dapo_overlong_buffer).tolist()
    coef = cfg.dapo_overlong_coef
    return {**r, "rewards": RewardBreakdown(total=[t + coef * p for t, p in zip(rewards.total, penalty)],
                                            terms={**rewards.terms, OVERLONG: penalty},
                                            weights={**rewards.weights, OVERLONG: coef})}


def filter_rollout(s: Session, r: dict, examples: list):
    everything, rows, metrics = dynamic_sampling(s, r, len(examples))
    everything = with_overlong_term(s, everything)
    return everything, select_rows(everything, rows), metrics


def advantages(x: AdvantageInputs):
    return adv.group_normalized_advantages(x.rewards, x.cfg.samples_per_prompt), None


def loss(x: LossInputs):
    loss, stats = clipped_surrogate_loss(x.logprobs, x.old_logprobs, x.advantages, x.mask,
                                         clip_eps=x.cfg.dapo_clip_low, clip_eps_high=x.cfg.dapo_clip_high, **x.norm())
    return loss, {**stats, "loss/dapo": loss.item()}


ALGORITHM = Algorithm(
    name="dapo", label="DAPO", order=64, min_samples=2, multi_epoch=True, loss_norm="token_mean",
    description="Yu et al. (2025): GRPO with clip-higher (0.2 / 0.28), dynamic sampling that drops groups whose "
                "rewards tie, a token-level loss and a soft over-length penalty.",
    step=online_step, filter_rollout=filter_rollout, advantages=advantages, loss=loss,
    options=("dapo_clip_low", "dapo_clip_high", "dapo_oversample_rounds", "dapo_overlong_buffer",
             "dapo_overlong_coef", "ppo_epochs", "minibatches"),
    diagnostics=(ZERO_STD_FRAC, REFILL_ROUNDS, KEPT_GROUPS, CLIPFRAC_LOW, CLIPFRAC_HIGH, APPROX_KL))
