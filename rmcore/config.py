"""Run configuration: one frozen dataclass per family, a help text on every field.

The help text (``field(metadata={"help": ...})``) is the single source for the CLI's
``--help`` and the app's tooltips, and the whole config is saved verbatim with each run.
``validate()`` turns bad input into one ConfigError sentence before anything starts.
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field, fields
from typing import Any

from rmcore.errors import ConfigError

LOSS_NORMS = ("token_mean", "seq_mean", "fixed_sum")
KL_ESTIMATORS = ("k1", "k2", "k3")
KL_PLACEMENTS = ("reward", "loss")
ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
BASELINES = ("ema", "greedy")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16")  # rmcore.precision
RM_FAMILIES = ("auto", "scalar", "embedding")  # rmcore.rm_eval: SCALAR, EMBEDDING


def _f(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class TrainConfig:
    """Everything a policy run needs; saved with the run, shown in the app's config table."""

    # --- what to train
    backbone: str = _f("tiny-gpt2", "Built-in 'tiny-gpt2', a hub model id (e.g. gpt2) or a local folder.")
    task: str = _f("synth-news", "Built-in 'synth-news', a hub dataset name, or a local CSV/JSONL/Parquet file.")
    loss: str = _f("grpo", "Policy loss: one of rmcore.algorithms.POLICY_LOSSES.")
    dataset_split: str = _f("train", "Split of a hub dataset to train on.")
    prompt_column: str = _f("", "Column holding the prompt (hub/file tasks; empty = guess).")
    reference_column: str = _f("", "Column holding the reference summary (hub/file tasks; empty = guess).")
    chosen_column: str = _f("", "Column holding the preferred response (DPO on hub/file tasks).")
    rejected_column: str = _f("", "Column holding the dispreferred response (DPO on hub/file tasks).")
    name: str = _f("", "Optional run name shown in the app; empty = made from loss and time.")

    # --- reward r(y) = α·ROUGE + β·Fluency + γ·Diversity (+ δ·RM + BLEU + length)
    alpha: float = _f(1.0, "α: weight of ROUGE F1 against the reference.")
    beta: float = _f(0.2, "β: weight of fluency, exp(mean token log-prob under the frozen reference model).")
    gamma: float = _f(0.1, "γ: weight of diversity, distinct-n of the sample.")
    delta: float = _f(0.0, "δ: weight of the learned reward model's score (needs --reward-model).")
    reward_model: str = _f("", "Reward-model run id or checkpoint folder for the δ term.")
    bleu_weight: float = _f(0.0, "Weight of sentence BLEU (sacrebleu, 0..1) against the reference.")
    length_weight: float = _f(0.0, "Weight of the length penalty -|words - target| / target.")
    target_length: int = _f(20, "Target length in words for the length penalty.")
    rouge_type: str = _f("rougeL", "ROUGE variant for the α term: rouge1, rouge2 or rougeL.")
    distinct_n: int = _f(2, "n of distinct-n for the diversity term.")

    # --- regularisers shared by all policy losses
    kl_coef: float = _f(0.05, "KL coefficient to the frozen reference model (0 = off).")
    kl_estimator: str = _f("k3", "KL estimator: k1 (log-ratio), k2 (squared log-ratio / 2) or k3 (ratio - 1 - log-ratio).")
    kl_placement: str = _f("loss", "Where the KL penalty goes: 'reward' (per sequence, before advantages) or 'loss'.")
    entropy_coef: float = _f(0.0, "Entropy bonus coefficient (0 = off).")
    loss_norm: str = _f("token_mean", "Loss reduction: token_mean, seq_mean, or fixed_sum (Dr. GRPO: sum / max_new_tokens).")

    # --- algorithm options
    clip_eps: float = _f(0.2, "PPO/GRPO ratio clip ε.")
    value_clip: float = _f(0.2, "PPO value-function clip (0 = no clipping).")
    vf_coef: float = _f(0.5, "Weight of the value loss (actor-critic, PPO).")
    gae_gamma: float = _f(1.0, "GAE discount γ (PPO).")
    gae_lambda: float = _f(0.95, "GAE λ (PPO).")
    ppo_epochs: int = _f(2, "Optimisation epochs over each rollout batch (PPO, GRPO).")
    minibatches: int = _f(1, "Minibatches per epoch (PPO, GRPO).")
    baseline: str = _f("ema", "Baseline for reinforce_baseline: 'ema' (moving average) or 'greedy' (self-critical).")
    baseline_decay: float = _f(0.9, "Decay of the moving-average baseline.")
    dpo_beta: float = _f(0.1, "DPO β: strength of the implicit KL to the reference.")

    # --- optimisation and sampling
    lr: float = _f(5e-5, "Learning rate (AdamW).")
    steps: int = _f(50, "Optimizer steps (one rollout batch each).")
    batch_size: int = _f(8, "Prompts per step.")
    samples_per_prompt: int = _f(4, "Completions sampled per prompt (G); RLOO and GRPO need ≥ 2.")
    max_new_tokens: int = _f(48, "Longest completion in tokens (48 holds every synth-news summary on the built-in "
                                 "tokenizer: 25 tokens on average, 42 at most).")
    temperature: float = _f(0.7, "Sampling temperature for rollouts. 0.7 by default: a small model's "
                                 "samples at 1.0 are mostly noise, and RL on them can lower its greedy answers' reward.")
    top_p: float = _f(1.0, "Nucleus sampling p for rollouts (1 = off).")
    max_grad_norm: float = _f(1.0, "Gradient clipping norm (0 = off).")
    seed: int = _f(0, "Random seed: same config and seed on CPU give the same metrics.")
    lora_r: int = _f(0, "LoRA rank r: train rank-r adapters (peft) instead of the whole policy; 0 = off "
                        "(full fine-tuning). The reference is then the base with the adapter off.")
    lora_alpha: float = _f(16.0, "LoRA α: the adapters' update is scaled by α / r.")
    lora_targets: str = _f("", "Modules LoRA adapts, comma-separated (empty = peft's default for the model "
                               "type: c_attn on GPT-2, q_proj,v_proj on Llama and Qwen).")

    # --- reporting
    eval_every: int = _f(10, "Greedy eval on the fixed eval prompts every N steps (0 = only at the end).")
    eval_prompts: int = _f(16, "Number of fixed eval prompts.")
    log_generations: int = _f(4, "Sampled generations stored per step for the app.")
    checkpoint_every: int = _f(25, "Save a checkpoint every N steps for Resume (0 = only at the end); the newest 2 are kept.")
    device: str = _f("auto", "auto (cuda > mps > cpu; with several GPUs the least-loaded one), cpu, cuda, "
                             "cuda:N (one GPU of several) or mps.")
    precision: str = _f("auto", "auto (bf16 on a CUDA GPU that has it, else fp32), fp32, or bf16: mixed precision "
                                "with float32 weights and optimizer state and bf16 autocast forward passes.")
    trust_remote_code: bool = _f(False, "Allow a hub model to run its own code. Off unless you trust it.")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        return _from_dict(cls, data)

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def validate(self) -> "TrainConfig":
        """Raise ConfigError with one sentence naming the bad field; return self if fine."""
        _check_types(self)
        for name in ("alpha", "beta", "gamma", "delta", "bleu_weight", "length_weight", "kl_coef",
                     "entropy_coef", "lr", "temperature", "top_p", "clip_eps", "dpo_beta"):
            if not math.isfinite(getattr(self, name)):
                raise ConfigError(f"{name} must be a finite number, got {getattr(self, name)!r}.")
        _choice(self, "kl_estimator", KL_ESTIMATORS)
        _choice(self, "kl_placement", KL_PLACEMENTS)
        _choice(self, "loss_norm", LOSS_NORMS)
        _choice(self, "rouge_type", ROUGE_TYPES)
        _choice(self, "baseline", BASELINES)
        _check_device(self.device)
        _choice(self, "precision", PRECISIONS)
        for name in ("steps", "batch_size", "samples_per_prompt", "max_new_tokens",
                     "ppo_epochs", "minibatches", "distinct_n", "eval_prompts", "target_length"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}.")
        for name in ("eval_every", "log_generations", "checkpoint_every", "kl_coef", "entropy_coef",
                     "max_grad_norm", "value_clip"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative, got {getattr(self, name)}.")
        if self.lr <= 0:
            raise ConfigError(f"lr must be positive, got {self.lr}.")
        if self.temperature <= 0:
            raise ConfigError(f"temperature must be positive, got {self.temperature}.")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p}.")
        if self.delta != 0 and not self.reward_model:
            raise ConfigError("delta is non-zero but no reward_model is given (a run id or a folder).")
        if self.dpo_beta <= 0:
            raise ConfigError(f"dpo_beta must be positive, got {self.dpo_beta}.")
        if not 0 <= self.lora_r <= 1024:
            raise ConfigError(f"lora_r must be between 0 (off) and 1024, got {self.lora_r}.")
        if not (math.isfinite(self.lora_alpha) and self.lora_alpha > 0):
            raise ConfigError(f"lora_alpha must be a positive number, got {self.lora_alpha!r}.")
        self._check_algorithm()
        return self

    def _check_algorithm(self) -> None:
        """Checks that need the loss's registry entry; imported here to keep this module light."""
        from rmcore.algorithms import get_algorithm
        from rmcore.rewards.composite import validate_weights

        algo = get_algorithm(self.loss)
        validate_weights(self.reward_weights(), needs_reward=algo.needs_reward)
        if self.samples_per_prompt < algo.min_samples:
            raise ConfigError(f"{algo.label} needs samples_per_prompt ≥ {algo.min_samples} (its baseline "
                              f"compares samples of one prompt); got {self.samples_per_prompt}.")

    def reward_weights(self) -> dict[str, float]:
        """Weights of the composite reward terms, by term name (REWARD_TERMS keys)."""
        return {"rouge": self.alpha, "fluency": self.beta, "diversity": self.gamma,
                "bleu": self.bleu_weight, "length": self.length_weight, "rm": self.delta}


@dataclass(frozen=True)
class RewardModelConfig:
    """A reward-model run: a backbone with a scalar head (or an embedding reward) trained on
    preference pairs."""

    backbone: str = _f("tiny-gpt2", "Built-in 'tiny-gpt2', a hub model id or a local folder (encoders too).")
    task: str = _f("synth-news", "Preference pairs: built-in 'synth-news', a hub dataset, or a local file.")
    loss: str = _f("bradley_terry", "Reward-model loss: one of rmcore.losses.REWARD_MODEL_LOSSES.")
    family: str = _f("auto", "Reward-model family: 'scalar' (a scalar head on the last token of prompt + "
                     "response), 'embedding' (minus the distance between the pooled prompt and response "
                     "embeddings), or 'auto' (embedding for triplet, scalar for the other losses).")
    dataset_split: str = _f("train", "Split of a hub dataset to train on.")
    prompt_column: str = _f("", "Column holding the prompt (empty = guess).")
    chosen_column: str = _f("", "Column holding the preferred response (empty = guess).")
    rejected_column: str = _f("", "Column holding the dispreferred response (empty = guess).")
    name: str = _f("", "Optional run name shown in the app.")
    margin: float = _f(0.0, "Margin m of Bradley-Terry, hinge and triplet losses.")
    focal_gamma: float = _f(2.0, "γ of the focal loss (0 = Bradley-Terry).")
    center_coef: float = _f(0.0, "Reward-centering coefficient: pushes mean scores towards 0.")
    lr: float = _f(1e-4, "Learning rate (AdamW).")
    steps: int = _f(200, "Optimizer steps.")
    batch_size: int = _f(16, "Preference pairs per step.")
    max_length: int = _f(256, "Longest prompt + response in tokens.")
    max_grad_norm: float = _f(1.0, "Gradient clipping norm (0 = off).")
    seed: int = _f(0, "Random seed.")
    eval_every: int = _f(25, "Held-out evaluation every N steps (0 = only at the end).")
    eval_pairs: int = _f(200, "Held-out pairs used for evaluation.")
    device: str = _f("auto", "auto (cuda > mps > cpu; with several GPUs the least-loaded one), cpu, cuda, "
                             "cuda:N (one GPU of several) or mps.")
    precision: str = _f("auto", "auto (bf16 on a CUDA GPU that has it, else fp32), fp32, or bf16: mixed precision "
                                "with float32 weights and optimizer state and bf16 autocast forward passes.")
    trust_remote_code: bool = _f(False, "Allow a hub model to run its own code. Off unless you trust it.")

    to_dict = TrainConfig.to_dict
    replace = TrainConfig.replace

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RewardModelConfig":
        return _from_dict(cls, data)

    def validate(self) -> "RewardModelConfig":
        _check_types(self)
        for name in ("margin", "focal_gamma", "center_coef", "lr"):
            if not math.isfinite(getattr(self, name)):
                raise ConfigError(f"{name} must be a finite number, got {getattr(self, name)!r}.")
        for name in ("steps", "batch_size", "max_length", "eval_pairs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if self.lr <= 0:
            raise ConfigError(f"lr must be positive, got {self.lr}.")
        if self.focal_gamma < 0 or self.center_coef < 0 or self.eval_every < 0:
            raise ConfigError("focal_gamma, center_coef and eval_every must not be negative.")
        _check_device(self.device)
        _choice(self, "precision", PRECISIONS)
        _choice(self, "family", RM_FAMILIES)
        return self


def field_help(cls: type, name: str) -> str:
    """The help text of one config field (CLI --help and app tooltips)."""
    return next(f.metadata.get("help", "") for f in fields(cls) if f.name == name)


def _from_dict(cls: type, data: dict[str, Any]) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"Unknown config field(s): {', '.join(unknown)}.")
    return cls(**data)


def _check_types(cfg: Any) -> None:
    """Coercion is the caller's job; here a wrong type (e.g. text for alpha) is an error."""
    for f in fields(cfg):
        value, kind = getattr(cfg, f.name), type(f.default)
        ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            raise ConfigError(f"{f.name} must be {kind.__name__}, got {value!r}.")


def _choice(cfg: Any, name: str, options: tuple[str, ...]) -> None:
    if getattr(cfg, name) not in options:
        raise ConfigError(f"{name} must be one of {', '.join(options)}; got {getattr(cfg, name)!r}.")


def _check_device(device: str) -> None:
    """DEVICES, or one GPU of several as cuda:N (rmcore.placement checks that GPU N is visible)."""
    if device not in DEVICES and not re.fullmatch(r"cuda:[0-9]+", device):
        raise ConfigError(f"device must be one of {', '.join(DEVICES)} or cuda:N (one GPU); got {device!r}.")
