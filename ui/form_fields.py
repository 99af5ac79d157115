"""How each config field looks on the forms: its choices, label, +/- step and number format.

Fields not named here get a widget by type, a label made from the field name, a step of 0.05
and three decimals (ui.forms.field_input).
"""
from __future__ import annotations

from rmcore.config import (BASELINES, DEVICES, KL_ESTIMATORS, KL_PLACEMENTS, LOSS_NORMS, PRECISIONS,
                           REWARD_AGGREGATIONS, ROUGE_TYPES)

CHOICES: dict[str, tuple[str, ...]] = {
    "kl_estimator": KL_ESTIMATORS, "kl_placement": KL_PLACEMENTS, "loss_norm": LOSS_NORMS,
    "rouge_type": ROUGE_TYPES, "baseline": BASELINES, "device": DEVICES, "precision": PRECISIONS,
    "reward_aggregation": REWARD_AGGREGATIONS}
LABELS = {
    "alpha": "α · ROUGE", "beta": "β · fluency", "gamma": "γ · diversity", "delta": "δ · reward model",
    "kl_coef": "KL coefficient", "kl_estimator": "KL estimator", "kl_placement": "KL placement",
    "entropy_coef": "Entropy bonus", "lr": "Learning rate", "steps": "Steps", "batch_size": "Prompts per step",
    "samples_per_prompt": "Samples per prompt (G)", "max_new_tokens": "Max new tokens",
    "temperature": "Temperature", "seed": "Seed", "name": "Run name (optional)",
    "bleu_weight": "BLEU weight", "rouge_type": "ROUGE type", "distinct_n": "Distinct-n (n)",
    "loss_norm": "Loss normalisation", "clip_eps": "Clip ε", "value_clip": "Value clip", "vf_coef": "Value-loss coef",
    "gae_gamma": "GAE γ", "gae_lambda": "GAE λ", "ppo_epochs": "PPO epochs", "dpo_beta": "DPO β",
    "top_p": "Top-p", "max_grad_norm": "Max grad norm", "eval_every": "Eval every (steps)",
    "checkpoint_every": "Checkpoint every (steps)", "trust_remote_code": "Trust remote code",
    "precision": "Precision", "reward_aggregation": "Combine the terms", "kl_target": "KL target (0 = fixed)",
    "kl_horizon": "KL horizon (samples)", "dapo_clip_low": "DAPO ε_low", "dapo_clip_high": "DAPO ε_high",
    "dapo_oversample_rounds": "Refill rounds", "dapo_overlong_buffer": "Over-length buffer",
    "dapo_overlong_coef": "Over-length weight", "gspo_clip_low": "GSPO ε_low", "gspo_clip_high": "GSPO ε_high",
    "cispo_clip_high": "CISPO ε_high", "ipo_tau": "IPO τ", "slic_beta": "SLiC β", "simpo_beta": "SimPO β",
    "simpo_gamma": "SimPO γ"}
# Steps of the +/- buttons; the rest move by 0.05.
FLOAT_STEPS = {"lr": 1e-5, "kl_coef": 0.01, "entropy_coef": 0.001, "dpo_beta": 0.05, "top_p": 0.05,
               "baseline_decay": 0.01, "gae_lambda": 0.01, "gae_gamma": 0.01, "gspo_clip_low": 1e-4,
               "gspo_clip_high": 1e-4, "dapo_clip_low": 0.01, "dapo_clip_high": 0.01, "kl_target": 0.5}
FLOAT_FORMATS = {"lr": "%.2e", "entropy_coef": "%.4f", "kl_coef": "%.3f", "gspo_clip_low": "%.1e",
                 "gspo_clip_high": "%.1e"}
