"""The numbers behind the Loss Playground's policy sections 3–5: GRPO's successors and the
preference losses, each from the engine's own loss under autograd.

3. Length bias: the gradient that one token of a sample receives under GRPO's seq_mean, Dr.
   GRPO's fixed_sum and DAPO's token_mean, through clipped_surrogate_loss and reduce_loss.
4. Ratio clipping: the gradient with respect to one token's log π as its ratio moves, through
   clipped_surrogate_loss (GRPO), gspo_loss (GSPO) and cispo_loss (CISPO).
5. Preference losses: DPO, IPO and SLiC (dpo_loss) against the log-ratio margin h, SimPO
   (simpo_loss) against its own margin.
Nothing here writes a loss formula: the closed forms in the docstrings are what the tests
(tests/test_playground_policy.py) check the autograd numbers against.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from rmcore.advantages import group_normalized_advantages
from rmcore.losses import cispo_loss, clipped_surrogate_loss, dpo_loss, gspo_loss, simpo_loss
from rmcore.metrics import IMPLICIT_MARGIN
from rmcore.playground import curve, grid
from rmcore.threads import one_thread

DTYPE = torch.float64
LENGTH_POINTS = 64  # lengths drawn in section 3: every one up to 64, else 64 spread over 1..L_max

# Each algorithm's reduction as its paper writes it. Dr. GRPO's and DAPO's are also their
# registry defaults (a test checks); the engine's GRPO runs token_mean unless loss_norm says
# seq_mean, the 1/|o_i| of arXiv:2402.03300 eq. 3 that this section is about.
LENGTH_NORMS = {"grpo": "seq_mean", "dr_grpo": "fixed_sum", "dapo": "token_mean"}


# --------------------------------------------------------------------------- 3. length bias
def sample_gradient(length: int, *, other_length: int, group_size: int, max_len: int, advantage: float,
                    loss_norm: str) -> Tensor:
    """∂L/∂log π(y_t) for each token of one sample of `length` tokens, at ratio 1 (π = π_old).

    The batch is one group: this sample and group_size − 1 others of other_length tokens,
    reduced by reduce_loss(loss_norm, max_len) inside clipped_surrogate_loss. The others'
    advantages are 0: they change no gradient of this sample's tokens, only (through their
    lengths) token_mean's denominator. Hand values: −A/(G·|y|) for seq_mean, −A/(G·L_max) for
    fixed_sum, −A/(|y| + (G−1)·L_other) for token_mean. Returns (length,).
    """
    width = max(length, other_length)
    lengths = torch.tensor([length] + [other_length] * (group_size - 1))                     # (G,)
    mask = (torch.arange(width) < lengths.unsqueeze(1)).to(DTYPE)                             # (G, T)
    advantages = torch.zeros(group_size, dtype=DTYPE)
    advantages[0] = advantage
    logprobs = torch.zeros(group_size, width, dtype=DTYPE, requires_grad=True)              # (G, T)
    loss, _ = clipped_surrogate_loss(logprobs, torch.zeros_like(logprobs), advantages, mask, loss_norm=loss_norm,
                                     max_len=max_len)
    (grad,) = torch.autograd.grad(loss, logprobs)
    return grad[0, :length]


@dataclass(frozen=True)
class LengthBias:
    """|∂L/∂log π(y_t)| of one token, and the sum over the sample's tokens, against its length."""

    lengths: np.ndarray                  # (N,) |y|
    per_token: dict[str, np.ndarray]     # algorithm -> (N,)
    per_sequence: dict[str, np.ndarray]  # algorithm -> (N,) the whole sample's push, |y| × per token


def length_bias(*, max_len: int, other_length: int, group_size: int, advantage: float) -> LengthBias:
    """Section 3's curves: each of LENGTH_NORMS at |y| = 1 … max_len (at most LENGTH_POINTS lengths)."""
    lengths = np.unique(np.round(np.linspace(1, max_len, min(max_len, LENGTH_POINTS))).astype(int))
    per_token: dict[str, list[float]] = {name: [] for name in LENGTH_NORMS}
    per_sequence: dict[str, list[float]] = {name: [] for name in LENGTH_NORMS}
    with one_thread():
        for length in lengths:
            for name, norm in LENGTH_NORMS.items():
                grad = sample_gradient(int(length), other_length=other_length, group_size=group_size,
                                       max_len=max_len, advantage=advantage, loss_norm=norm)
                per_token[name].append(abs(grad[0].item()))
                per_sequence[name].append(abs(grad.sum().item()))
    return LengthBias(lengths, {k: np.array(v) for k, v in per_token.items()},
                      {k: np.array(v) for k, v in per_sequence.items()})


def one_right_advantages(group_size: int) -> dict[str, float]:
    """A wrong answer's advantage in a group where one of G answers is right (reward 1, the rest
    0): GRPO's (R − mean)/(std + 1e-4) and Dr. GRPO's R − mean, from rmcore.advantages."""
    rewards = torch.zeros(group_size, dtype=DTYPE)
    rewards[0] = 1.0
    return {"grpo": group_normalized_advantages(rewards, group_size)[1].item(),
            "dr_grpo": group_normalized_advantages(rewards, group_size, scale=False)[1].item()}


# --------------------------------------------------------------------------- 4. ratio clipping
RATIO_ALGORITHMS = ("grpo", "gspo", "cispo")


def ratio_gradients(ratios: np.ndarray, *, tokens: int, other_ratio: float, advantage: float, clip_eps: float,
                    gspo_eps_low: float, gspo_eps_high: float, cispo_eps_high: float) -> dict[str, np.ndarray]:
    """∂L/∂log π(y_1) of a sequence of `tokens` tokens whose first token has each ratio of
    `ratios` and the others `other_ratio`, under each of RATIO_ALGORITHMS.

    One sequence per ratio, N rows of a batch; every loss is a mean over sequences (GRPO and
    CISPO with seq_mean, the same as token_mean here as all rows have T tokens), so N times
    the batch gradient is each sequence's own. At ρ = 1 all three give REINFORCE's −A/T.
    ratios: (N,). Returns algorithm -> (N,).
    """
    n = len(ratios)
    log_ratio = torch.full((n, tokens), math.log(other_ratio), dtype=DTYPE)                   # (N, T)
    log_ratio[:, 0] = torch.log(torch.tensor(ratios, dtype=DTYPE))
    old, mask = torch.zeros_like(log_ratio), torch.ones_like(log_ratio)
    advantages = torch.full((n,), advantage, dtype=DTYPE)                                     # (N,)
    losses: dict[str, Callable[[Tensor], tuple[Tensor, dict]]] = {
        "grpo": lambda lp: clipped_surrogate_loss(lp, old, advantages, mask, clip_eps=clip_eps, loss_norm="seq_mean"),
        "gspo": lambda lp: gspo_loss(lp, old, advantages, mask, clip_eps_low=gspo_eps_low,
                                     clip_eps_high=gspo_eps_high),
        "cispo": lambda lp: cispo_loss(lp, old, advantages, mask, clip_eps_high=cispo_eps_high, loss_norm="seq_mean"),
    }
    grads = {}
    with one_thread():
        for name, loss_of in losses.items():
            logprobs = log_ratio.clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(loss_of(logprobs)[0] * n, logprobs)
            grads[name] = grad[:, 0].numpy()
    return grads


def ratio_grid(high: float, *, tokens: int, other_ratio: float, clip_eps: float, gspo_eps_low: float,
               gspo_eps_high: float, cispo_eps_high: float, low: float = 0.5) -> np.ndarray:
    """The first token's ratios for section 4 (161 points on [low, high]) with the corners on the
    grid: GRPO's 1 ± ε, CISPO's cap 1 + ε_high, and the ratios at which GSPO's sequence ratio
    s = (ρ·ρ_other^(T−1))^(1/T) meets 1 − ε_low and 1 + ε_high."""
    rest = other_ratio ** (tokens - 1)
    corners = (1 - clip_eps, 1 + clip_eps, 1 + cispo_eps_high, 1.0,
               (1 - gspo_eps_low) ** tokens / rest, (1 + gspo_eps_high) ** tokens / rest)
    # A point just either side of each corner too: the gradient's jump is then drawn upright,
    # and a zero region starts where the loss says, not at the next grid point.
    return grid(low, high, kinks=tuple(c * f for c in corners for f in (1 - 1e-9, 1.0, 1 + 1e-9)), n=161)


def zero_intervals(x: np.ndarray, values: np.ndarray) -> list[tuple[float, float]]:
    """The maximal runs of grid points where `values` is exactly 0, as (first x, last x)."""
    zero = np.r_[0, (values == 0).astype(int), 0]
    edges = np.flatnonzero(np.diff(zero))                      # starts and ends, interleaved
    return [(float(x[start]), float(x[end - 1])) for start, end in zip(edges[::2], edges[1::2])]


# --------------------------------------------------------------------------- 5. preference losses
def _log_ratio_loss(variant: str) -> Callable[..., Callable[[Tensor], Tensor]]:
    """dpo_loss(variant) as a function of h: the policy's log-probs are the reference's plus h on
    the chosen side, so the reference's own log-probs cancel."""
    def build(coef: float, gamma: float, lengths: tuple[int, int], ref_logps: tuple[float, float]):
        def loss_of(h: Tensor) -> Tensor:
            ref_chosen, ref_rejected = torch.full_like(h, ref_logps[0]), torch.full_like(h, ref_logps[1])
            return dpo_loss(ref_chosen + h, ref_rejected, ref_chosen, ref_rejected, beta=coef, variant=variant)[0]
        return loss_of
    return build


def _simpo_margin_loss(coef: float, gamma: float, lengths: tuple[int, int], ref_logps: tuple[float, float]):
    """simpo_loss as a function of its own margin r(y_c) − r(y_r), the one it reports as
    policy/implicit_reward_margin. A chosen log-prob of 1 (rejected 0) reports `unit`, so a
    chosen log-prob of x / unit gives margin x. SimPO reads no reference: ref_logps is unused."""
    chosen_len, rejected_len = (torch.tensor([n], dtype=DTYPE) for n in lengths)
    one, zero = torch.ones(1, dtype=DTYPE), torch.zeros(1, dtype=DTYPE)
    unit = simpo_loss(one, zero, chosen_len, rejected_len, beta=coef, gamma=gamma)[1][IMPLICIT_MARGIN]

    def loss_of(margin: Tensor) -> Tensor:
        size = margin.shape[0]
        return simpo_loss(margin / unit, torch.zeros_like(margin), chosen_len.expand(size),
                          rejected_len.expand(size), beta=coef, gamma=gamma)[0]
    return loss_of


# algorithm -> the builder of its loss against its margin: h for the three that compare with
# a reference (IPO's coefficient is its τ, SLiC's its β), SimPO's own margin for SimPO.
PREFERENCE_LOSSES = {"dpo": _log_ratio_loss("sigmoid"), "ipo": _log_ratio_loss("ipo"),
                     "slic": _log_ratio_loss("hinge"), "simpo": _simpo_margin_loss}


def preference_loss_of_margin(name: str, coef: float, *, gamma: float = 1.0, lengths: tuple[int, int] = (20, 20),
                              ref_logps: tuple[float, float] = (0.0, 0.0)) -> Callable[[Tensor], Tensor]:
    """The preference algorithm `name`'s loss as a function of its margin, a (B,) tensor.

    coef: DPO's β, IPO's τ, SLiC's β or SimPO's β. gamma and lengths: SimPO's target margin
    and response lengths (they only scale the log-probs behind its margin). ref_logps: the
    reference's log-probs of (y_c, y_r); no curve depends on them.
    """
    return PREFERENCE_LOSSES[name](coef, gamma, lengths, ref_logps)


def preference_kinks(coefs: dict[str, float], gamma: float) -> tuple[float, ...]:
    """Where the curves turn: IPO's target 1/(2τ), SLiC's corner 1/β, SimPO's γ, and 0."""
    tau, slic_beta = coefs.get("ipo"), coefs.get("slic")
    return (0.0, gamma, *([1 / (2 * tau)] if tau else []), *([1 / slic_beta] if slic_beta else []))


def preference_curves(coefs: dict[str, float], *, gamma: float, span: float,
                      lengths: tuple[int, int] = (20, 20)) -> tuple[np.ndarray, dict[str, tuple]]:
    """Section 5: the margin grid x (N,) on [−span, span], and for each algorithm of `coefs`
    (name -> coefficient) its loss and d loss / d margin there, two (N,) arrays."""
    x = grid(-span, span, kinks=preference_kinks(coefs, gamma))
    return x, {name: curve(preference_loss_of_margin(name, coef, gamma=gamma, lengths=lengths), x)
               for name, coef in coefs.items()}
