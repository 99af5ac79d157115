"""The Loss Playground's bandit (section 7): exact and estimated policy gradients on K arms.

Estimates go through rmcore.advantages and policy_gradient_loss under autograd; the exact
gradient and the softmax score e_a − π (used by the 200-step learning loop for speed) are the
closed forms they are compared against. Re-exported by rmcore.playground.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from rmcore.advantages import baseline_advantages, reward_advantages, rloo_advantages
from rmcore.errors import ConfigError
from rmcore.losses import policy_gradient_loss
from rmcore.threads import one_thread

PG_ESTIMATORS = ("reinforce", "baseline", "rloo")


def expected_reward(logits: Tensor, rewards: Tensor) -> Tensor:
    """J(θ) = Σ_a π_θ(a) r_a with π_θ = softmax(θ). logits: (..., K); rewards: (K,) -> (...)."""
    return (torch.softmax(logits, -1) * rewards).sum(-1)


def exact_gradient(logits: Tensor, rewards: Tensor) -> Tensor:
    """∇_θ J = π ⊙ (r − J), from ∂π_a/∂θ_k = π_a(1[a=k] − π_k). (..., K) -> (..., K)."""
    probs = torch.softmax(logits, -1)
    return probs * (rewards - expected_reward(logits, rewards).unsqueeze(-1))


def bandit_advantages(estimator: str, observed: Tensor, values: Tensor) -> Tensor:
    """Advantages of N pulls in each of R replicas, from rmcore.advantages.

    reinforce: A = r.  baseline: A = r − V(π), the true value (what a critic or a moving
    average approximates; it does not depend on the sample, so the estimate stays unbiased).
    rloo: A_i = r_i − mean of the other N − 1 pulls. observed: (R, N); values: (R,) -> (R, N).
    """
    replicas, pulls = observed.shape
    flat = observed.reshape(-1)                                                    # (R·N,) replica-major
    if estimator == "reinforce":
        advantages = reward_advantages(flat)
    elif estimator == "baseline":
        advantages = baseline_advantages(flat, values.repeat_interleave(pulls))
    elif estimator == "rloo":
        advantages = rloo_advantages(flat, group_size=pulls)
    else:
        raise ConfigError(f"Unknown estimator '{estimator}'; valid: {', '.join(PG_ESTIMATORS)}.")
    return advantages.reshape(replicas, pulls)                                     # (R, N)


def score_function_gradient(logits: Tensor, actions: Tensor, advantages: Tensor) -> Tensor:
    """ĝ_r = 1/N Σ_i A_ri ∇_θ log π_θr(a_ri) for R independent replicas, by autograd.

    The loss is policy_gradient_loss over all R·N pulls (token mean), whose gradient for
    replica r is −ĝ_r / R, hence the rescaling. logits: (R, K); actions, advantages: (R, N).
    """
    leaf = logits.detach().clone().requires_grad_(True)
    logprobs = torch.log_softmax(leaf, -1).gather(1, actions)                     # (R, N)
    loss, _ = policy_gradient_loss(logprobs.reshape(-1, 1), advantages.reshape(-1),
                                   torch.ones(actions.numel(), 1, dtype=logits.dtype))
    (grad,) = torch.autograd.grad(loss, leaf)
    return -grad * logits.shape[0]                                                 # (R, K)


def softmax_score_gradient(probs: Tensor, actions: Tensor, advantages: Tensor) -> Tensor:
    """The same ĝ written out, using ∇_θ log softmax(θ)_a = e_a − π: 1/N Σ_i A_i (e_{a_i} − π).

    learning_curves runs it 200 times: autograd per step was 2/3 of the section's render
    time. tests/test_playground.py checks it against score_function_gradient (the engine's
    policy_gradient_loss under autograd). probs: (R, K); actions, advantages: (R, N) -> (R, K).
    """
    onehot = torch.nn.functional.one_hot(actions, probs.shape[-1]).to(probs.dtype)    # (R, N, K)
    return (advantages.unsqueeze(-1) * (onehot - probs.unsqueeze(1))).mean(1)      # (R, K)


def pull(probs: Tensor, rewards: Tensor, n: int, noise: float,
         generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """N pulls per replica: a ~ π, observed r_a + noise·ε. probs (R, K) -> (R, N) twice."""
    actions = torch.multinomial(probs, n, replacement=True, generator=generator)
    observed = rewards[actions]                                                    # (R, N)
    if noise > 0:
        observed = observed + noise * torch.randn(actions.shape, dtype=rewards.dtype, generator=generator)
    return actions, observed


def gradient_estimates(logits: list[float], rewards: list[float], *, n: int, repeats: int,
                       noise: float = 0.0, seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The exact ∇J (K,) and, per estimator, `repeats` independent N-pull estimates (M, K)."""
    if n < 2:
        raise ConfigError(f"RLOO needs at least 2 pulls per estimate, got {n}.")
    theta = torch.tensor(logits, dtype=torch.float64)
    r = torch.tensor(rewards, dtype=torch.float64)
    generator = torch.Generator().manual_seed(seed)
    replicated = theta.expand(repeats, -1)                                         # (M, K)
    values = expected_reward(replicated, r)                                        # (M,)
    out = {}
    with one_thread():
        for name in PG_ESTIMATORS:
            actions, observed = pull(torch.softmax(replicated, -1), r, n, noise, generator)  # (M, N)
            advantages = bandit_advantages(name, observed, values)
            out[name] = score_function_gradient(replicated, actions, advantages).numpy()
    return exact_gradient(theta, r).numpy(), out


def estimator_stats(exact: np.ndarray, estimates: dict[str, np.ndarray]) -> list[dict[str, float | str]]:
    """Per estimator: ‖mean − exact‖, the largest |bias| in standard errors, total variance
    Σ_k Var(ĝ_k), and that variance relative to plain REINFORCE's."""
    reference = estimates["reinforce"].var(0, ddof=1).sum()
    rows = []
    for name, values in estimates.items():
        bias = values.mean(0) - exact
        std_error = values.std(0, ddof=1) / math.sqrt(len(values))
        variance = values.var(0, ddof=1).sum()
        rows.append({"estimator": name, "|mean − exact|": float(np.linalg.norm(bias)),
                     "max |bias| / SE": float(np.max(np.abs(bias) / np.maximum(std_error, 1e-12))),
                     "total variance": float(variance), "variance vs REINFORCE": float(variance / reference)})
    return rows


def learning_curves(logits: list[float], rewards: list[float], *, n: int, steps: int, lr: float,
                    noise: float = 0.0, seeds: int = 16, seed: int = 0) -> dict[str, np.ndarray]:
    """Gradient ascent θ ← θ + lr·ĝ for `steps` steps with each estimator and the exact gradient.

    Every estimator runs `seeds` independent learners, all updated together at each step.
    Returns name -> (seeds, steps + 1) exact expected reward J(θ_t); "exact" has one row.
    """
    r = torch.tensor(rewards, dtype=torch.float64)
    start = torch.tensor(logits, dtype=torch.float64)
    generator = torch.Generator().manual_seed(seed)
    names = list(PG_ESTIMATORS)
    theta = start.expand(len(names) * seeds, -1).clone()                          # (E·S, K)
    exact_theta = start.clone()
    history, exact_history = [], []
    with one_thread():
        for _ in range(steps):
            probs = torch.softmax(theta, -1)                                       # (E·S, K)
            values = (probs * r).sum(-1)                                           # (E·S,) J(θ_t)
            history.append(values)
            exact_history.append(expected_reward(exact_theta, r))
            actions, observed = pull(probs, r, n, noise, generator)               # (E·S, N)
            advantages = torch.cat([
                bandit_advantages(name, observed[i * seeds:(i + 1) * seeds], values[i * seeds:(i + 1) * seeds])
                for i, name in enumerate(names)])                                  # (E·S, N)
            theta = theta + lr * softmax_score_gradient(probs, actions, advantages)
            exact_theta = exact_theta + lr * exact_gradient(exact_theta, r)
    history.append(expected_reward(theta, r))
    exact_history.append(expected_reward(exact_theta, r))
    curves = torch.stack(history, 1).reshape(len(names), seeds, steps + 1)        # (E, S, steps+1)
    out = {name: curves[i].numpy() for i, name in enumerate(names)}
    out["exact"] = torch.stack(exact_history).reshape(1, -1).numpy()
    return out
