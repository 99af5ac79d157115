"""The numbers behind the Loss Playground page: every curve comes from the engine's own code.

Loss curves call rmcore.losses (the reward-model section's losses, sliders and formulas come
from its registry entries), KL samples go through rmcore.kl, the bandit's gradient
estimates are rmcore.advantages + policy_gradient_loss under autograd, and the composite reward
is rmcore.rewards. Nothing here re-implements a loss; the formulas written out are the closed
forms the estimates are compared against (exact KL, the exact bandit gradient) and the softmax
score e_a − π that the 200-step learning loop uses for speed (tested equal to the autograd path).

Loss values come from one call per grid point: the losses reduce over the batch, so a
batched call returns only the mean. Derivatives come from one batched call: each loss is a
mean of independent per-pair terms, L = 1/B Σ_b ℓ(x_b), hence B·∂L/∂x_b = ℓ'(x_b).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

from rmcore.advantages import baseline_advantages, reward_advantages, rloo_advantages
from rmcore.errors import ConfigError
from rmcore.kl import KL_ESTIMATORS, kl_estimate
from rmcore.losses import (REWARD_MODEL_LOSSES, Knob, RewardModelLoss, clipped_surrogate_loss, dpo_loss,
                           get_reward_model_loss, policy_gradient_loss)
from rmcore.losses.registry import DISTANCES
from rmcore.playground_bandit import (  # noqa: F401  (section 7, re-exported for the page)
    PG_ESTIMATORS, bandit_advantages, estimator_stats, exact_gradient, expected_reward, gradient_estimates,
    learning_curves, pull, score_function_gradient, softmax_score_gradient)
from rmcore.threads import one_thread

GRID_POINTS = 101


def parse_numbers(text: str, name: str, *, min_count: int = 2, max_count: int = 12) -> list[float]:
    """'1, 0.5, -2' -> [1.0, 0.5, -2.0]; ConfigError with one sentence for anything else."""
    parts = [part for part in text.replace(";", ",").replace(" ", ",").split(",") if part]
    try:
        values = [float(part) for part in parts]
    except ValueError:
        raise ConfigError(f"{name} must be numbers separated by commas, got {text!r}.") from None
    if not min_count <= len(values) <= max_count or not all(map(math.isfinite, values)):
        raise ConfigError(f"{name} needs {min_count} to {max_count} finite numbers, got {len(values)}.")
    return values


def grid(low: float, high: float, kinks: tuple[float, ...] = (), n: int = GRID_POINTS) -> np.ndarray:
    """n evenly spaced points on [low, high] plus the kinks inside it, so corners stay sharp."""
    points = np.concatenate([np.linspace(low, high, n), [k for k in kinks if low < k < high]])
    return np.unique(points)


def curve(loss_of: Callable[[Tensor], Tensor], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Values ℓ(x_i) and derivatives ℓ'(x_i) of a loss written as a function of one scalar.

    loss_of: maps a (B,) float64 tensor to the engine loss (a scalar mean over B).
    x: (N,) grid. Returns two (N,) arrays. See the module docstring for why values loop.
    """
    xs = torch.tensor(x, dtype=torch.float64)                         # (N,)
    with one_thread():
        with torch.no_grad():
            values = np.array([loss_of(xs[i:i + 1]).item() for i in range(len(xs))])
        leaf = xs.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(loss_of(leaf) * len(xs), leaf)
    return values, grad.numpy()


# --------------------------------------------------------------------------- 1. reward-model losses
def rm_losses() -> list[RewardModelLoss]:
    """The registered reward-model losses, in registry order: the section draws each of them,
    read on every call so that a newly registered loss appears with no ui edit."""
    return list(REWARD_MODEL_LOSSES.values())


def rm_knobs() -> dict[str, Knob]:
    """The section's sliders by URL key, one per key (the first entry to give a key sets its
    label and range), each with ``start`` filled in: the knob's own, else that loss's default."""
    knobs: dict[str, Knob] = {}
    for entry in rm_losses():
        for name, knob in entry.curve.knobs.items():
            start = entry.hyperparameters[name] if knob.start is None else knob.start
            knobs.setdefault(knob.key, replace(knob, start=start))
    return knobs


def rm_kwargs(entry: RewardModelLoss, values: dict[str, float]) -> dict[str, float]:
    """The loss's hyperparameters for its curve: each knob's value from ``values`` (URL key ->
    slider value), the loss's default for any hyperparameter without a knob."""
    knobs = entry.curve.knobs
    return {name: values[knobs[name].key] if name in knobs else default
            for name, default in entry.hyperparameters.items()}


def rm_loss_of_delta(name: str, **loss_kwargs: float) -> Callable[[Tensor], Tensor]:
    """The registered reward-model loss `name` as a function of the score margin Δ = r_c − r_r.

    loss_kwargs go to the loss unchanged (e.g. margin, gamma, chosen_target). Scores are
    r_c = Δ/2, r_r = −Δ/2: pairwise losses see only Δ, while MSE and cross-entropy score each
    response alone, so for them the split matters. A loss on distances (triplet): d_c = D − Δ/2,
    d_r = D + Δ/2, so d_r − d_c = Δ (the embedding reward is −d); D = 10 only keeps d ≥ 0.
    """
    entry = get_reward_model_loss(name)
    if entry.inputs == DISTANCES:
        return lambda delta: entry.fn(10.0 - delta / 2, 10.0 + delta / 2, **loss_kwargs)[0]
    return lambda delta: entry.fn(delta / 2, -delta / 2, **loss_kwargs)[0]


def rm_loss_curve(name: str, span: float, **loss_kwargs: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Δ grid on [−span, span] (with the loss's margin, where hinge and triplet have a corner),
    and the loss and d loss / dΔ there: three (N,) arrays."""
    x = grid(-span, span, kinks=(loss_kwargs.get("margin", 0.0),))
    return (x, *curve(rm_loss_of_delta(name, **loss_kwargs), x))


# --------------------------------------------------------------------------- 2. PPO; DPO against m
def ppo_objective_of_ratio(advantage: float, clip_eps: float) -> Callable[[Tensor], Tensor]:
    """L^CLIP(ρ) = −clipped_surrogate_loss for one token with ratio ρ and advantage A.

    ρ enters as log π − log π_old = log ρ (old log-prob 0); clip_eps = inf gives ρ·A.
    """
    def objective(ratio: Tensor) -> Tensor:
        logprobs = torch.log(ratio).unsqueeze(1)                           # (B, 1)
        advantages = torch.full_like(ratio, advantage)                     # (B,)
        loss, _ = clipped_surrogate_loss(logprobs, torch.zeros_like(logprobs), advantages,
                                         torch.ones_like(logprobs), clip_eps=clip_eps)
        return -loss
    return objective


def dpo_loss_of_margin(beta: float, variant: str) -> Callable[[Tensor], Tensor]:
    """dpo_loss as a function of the implicit reward margin m = β·h.

    h = (log π(y_c) − log π_ref(y_c)) − (log π(y_r) − log π_ref(y_r)) = m / β, put on the
    chosen log-prob with the other three at 0; the derivative is then d loss / d m.
    """
    def loss_of(margin: Tensor) -> Tensor:
        zeros = torch.zeros_like(margin)
        return dpo_loss(margin / beta, zeros, zeros, zeros, beta=beta, variant=variant)[0]
    return loss_of


# --------------------------------------------------------------------------- 6. KL estimators
@dataclass(frozen=True)
class KLSamples:
    """Per-sample k1, k2, k3 (each (N,)) for x ~ p, the exact KL(p‖q), and each E_p[k]."""

    estimates: dict[str, np.ndarray]
    exact_kl: float
    expected: dict[str, float]


def gaussian_kl(mu_p: float, sigma_p: float, mu_q: float, sigma_q: float) -> float:
    """KL(N(μp, σp²) ‖ N(μq, σq²)) = log(σq/σp) + (σp² + (μp − μq)²) / (2σq²) − 1/2."""
    return math.log(sigma_q / sigma_p) + (sigma_p ** 2 + (mu_p - mu_q) ** 2) / (2 * sigma_q ** 2) - 0.5


def categorical_kl(logits_p: list[float], logits_q: list[float]) -> float:
    """KL(p ‖ q) = Σ_i p_i (log p_i − log q_i), p = softmax(logits_p), q = softmax(logits_q)."""
    log_p = torch.log_softmax(torch.tensor(logits_p, dtype=torch.float64), 0)
    log_q = torch.log_softmax(torch.tensor(logits_q, dtype=torch.float64), 0)
    return float((log_p.exp() * (log_p - log_q)).sum())


def _estimates(log_p: Tensor, log_q: Tensor) -> dict[str, Tensor]:
    """rmcore.kl's three estimators at each point, p in the policy's seat, q the reference's."""
    return {name: kl_estimate(log_p, log_q, name) for name in KL_ESTIMATORS}


def kl_samples_gaussian(mu_p: float, sigma_p: float, mu_q: float, sigma_q: float, n: int,
                        seed: int) -> KLSamples:
    """Draw n samples x ~ p = N(μp, σp²) and estimate KL(p ‖ q), q = N(μq, σq²).

    E_p[k] is exact by Gauss-Hermite quadrature: log p − log q is quadratic in x, so k1 and
    k2 are polynomials of degree ≤ 4, integrated exactly by 10 nodes; E_p[k3] = KL because
    E_p[q/p] = 1 (quadrature of its exponential would only be approximate).
    """
    if sigma_p <= 0 or sigma_q <= 0:
        raise ConfigError(f"Standard deviations must be positive, got σp={sigma_p}, σq={sigma_q}.")
    p = torch.distributions.Normal(torch.tensor(mu_p, dtype=torch.float64), sigma_p)
    q = torch.distributions.Normal(torch.tensor(mu_q, dtype=torch.float64), sigma_q)
    generator = torch.Generator().manual_seed(seed)
    x = mu_p + sigma_p * torch.randn(n, dtype=torch.float64, generator=generator)        # (N,)
    nodes, weights = np.polynomial.hermite_e.hermegauss(10)
    z = torch.tensor(mu_p + sigma_p * nodes)                                                 # (10,)
    at_nodes = _estimates(p.log_prob(z), q.log_prob(z))
    exact = gaussian_kl(mu_p, sigma_p, mu_q, sigma_q)
    expected = {name: float((torch.tensor(weights) * at_nodes[name]).sum()) / math.sqrt(2 * math.pi)
                for name in ("k1", "k2")}
    expected["k3"] = exact
    with one_thread():
        samples = _estimates(p.log_prob(x), q.log_prob(x))
    return KLSamples({k: v.numpy() for k, v in samples.items()}, exact, expected)


def kl_samples_categorical(logits_p: list[float], logits_q: list[float], n: int, seed: int) -> KLSamples:
    """Draw n samples i ~ p = softmax(logits_p) and estimate KL(p ‖ q); E_p[k] = Σ_i p_i k(i)."""
    if len(logits_p) != len(logits_q):
        raise ConfigError(f"p and q need the same number of logits, got {len(logits_p)} and {len(logits_q)}.")
    log_p = torch.log_softmax(torch.tensor(logits_p, dtype=torch.float64), 0)             # (K,)
    log_q = torch.log_softmax(torch.tensor(logits_q, dtype=torch.float64), 0)             # (K,)
    generator = torch.Generator().manual_seed(seed)
    draws = torch.multinomial(log_p.exp(), n, replacement=True, generator=generator)      # (N,)
    per_category = _estimates(log_p, log_q)                                                # k -> (K,)
    expected = {name: float((log_p.exp() * values).sum()) for name, values in per_category.items()}
    samples = {name: values[draws].numpy() for name, values in per_category.items()}
    return KLSamples(samples, categorical_kl(logits_p, logits_q), expected)


def kl_summary(result: KLSamples) -> list[dict[str, float | str]]:
    """One row per estimator: exact KL, E_p[k] (true bias = E_p[k] − KL), sample mean, bias, std."""
    rows = []
    for name, values in result.estimates.items():
        std = float(values.std(ddof=1))
        rows.append({"estimator": name, "exact KL": result.exact_kl, "E_p[k]": result.expected[name],
                     "true bias": result.expected[name] - result.exact_kl, "sample mean": float(values.mean()),
                     "sample bias": float(values.mean()) - result.exact_kl, "std": std,
                     "std error": std / math.sqrt(len(values))})
    return rows


# --------------------------------------------------------------------------- 8. composite reward
FLUENT_BUT_EMPTY = "More details are expected at a briefing next week."


def hack_candidates(reference: str) -> dict[str, str]:
    """Candidates that game one term of the reward, built from the reference.

    repetition: its first words over and over (LMs love repeats; distinct-n catches them).
    copy the reference: ROUGE = 1 (on a real task the policy has no reference to copy).
    keyword salad: its words reversed: unigram overlap intact, order (ROUGE-L, fluency) gone.
    fluent but empty: a generic sentence with no facts.
    """
    words = reference.split()
    return {"repetition": " ".join((words[:4] or ["the"]) * 5),
            "copy the reference": reference,
            "keyword salad": " ".join(reversed(words)),
            "fluent but empty": FLUENT_BUT_EMPTY}


@lru_cache(maxsize=8)
def _text_terms(rouge_type: str, n: int) -> tuple[Callable, Callable]:
    from rmcore.rewards import Diversity, Rouge  # rouge_score loads nltk's stemmer: build once

    return Rouge(rouge_type), Diversity(n)


def composite_rows(reference: str, candidates: dict[str, str], weights: dict[str, float], *,
                   fluency: list[float] | None = None, rouge_type: str = "rougeL",
                   distinct_n: int = 2) -> list[dict[str, float | str]]:
    """Each candidate's ROUGE, fluency, diversity and weighted total, via rmcore.rewards.

    weights: {"rouge": α, "fluency": β, "diversity": γ}. fluency: precomputed values (one per
    candidate, e.g. Fluency(LMScorer)) or None when no model is loaded; then β counts as 0.
    """
    from rmcore.rewards import CompositeReward

    names, texts = list(candidates), list(candidates.values())
    blanks, references = [""] * len(texts), [reference] * len(texts)
    rouge, diversity = _text_terms(rouge_type, distinct_n)
    terms = {"rouge": rouge(blanks, texts, references), "diversity": diversity(blanks, texts, references)}
    if fluency is not None:
        terms["fluency"] = list(fluency)
    active = {name: (weight if name in terms else 0.0) for name, weight in weights.items()}
    total = CompositeReward(active, {})(blanks, texts, references, precomputed=terms).total
    return [{"candidate": name, "text": texts[b], "rouge": terms["rouge"][b],
             "fluency": terms["fluency"][b] if fluency is not None else float("nan"),
             "diversity": terms["diversity"][b], "total": total[b]} for b, name in enumerate(names)]
