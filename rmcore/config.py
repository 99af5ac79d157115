"""Run configuration: one frozen dataclass per family, a help text and a range on every field.

The help text (``field(metadata={"help": ...})``) is the single source for the CLI's
``--help`` and the app's tooltips, and the whole config is saved verbatim with each run.
``validate()`` turns bad input into one ConfigError sentence before anything starts: every
number lies in its field's range (``metadata["bound"]``), which also keeps it inside what it
feeds (float32 tensors, SQLite INTEGER, torch's seed), and every text is short, UTF-8 and free
of control characters, since it becomes a path, a database value and a line of the CLI.
Those checks live in rmcore.config_checks; the choice fields' options and the device rule stay here.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any

from rmcore.config_checks import (DEVICES, Bound, OrDefault, _check_device, _check_fields,  # noqa: F401  (DEVICES)
                                  _choice, _from_dict)
from rmcore.errors import ConfigError

AUTO = "auto"              # loss_norm, kl_placement: the algorithm's own (TrainConfig.resolved)
LOSS_NORMS = (AUTO, "token_mean", "seq_mean", "fixed_sum")
KL_ESTIMATORS = ("k1", "k2", "k3")
KL_PLACEMENTS = (AUTO, "reward", "loss")
REWARD_AGGREGATIONS = ("sum", "normalize_per_term")  # = rmcore.rewards.aggregate.REWARD_AGGREGATIONS
ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
BASELINES = ("ema", "greedy")
PRECISIONS = ("auto", "fp32", "bf16")  # rmcore.precision
RM_FAMILIES = ("auto", "scalar", "embedding")  # rmcore.rm_family: SCALAR, EMBEDDING
MARGIN_DEFAULT = -1.0       # RewardModelConfig.margin not given: the loss's own (rmcore.rm_family)

# Ends of the ranges: each far past any useful value, and small enough that products of them
# stay finite in float32 (a weight of 1e6 on a reward of 1e3 is 1e9) and fit SQLite's 64-bit
# INTEGER (steps are stored as total_steps).
COEF_MAX = 1e6              # weights, coefficients, norms, margins, and the learning rate
MAX_STEPS = 1_000_000
MAX_BATCH = 100_000         # rows per batch or eval; the dataset bounds these further
MAX_TOKENS = 1_000_000      # the model's context bounds these further (preflight)
MAX_ROWS = 1_000_000        # = rmcore.data.files.MAX_ROWS
MAX_SEED = 2**32 - 1        # the trainer seeds torch with seed·1_000_003 + step, which must stay < 2**64
MIN_TEMPERATURE = 1e-3      # logits / temperature overflow float32 far below this


def _f(default: Any, help: str, low: float | None = None, high: float | None = None,
       open_low: bool = False) -> Any:
    bound = {} if low is None else {"bound": Bound(low, high, open_low)}
    return field(default=default, metadata={"help": help, **bound})


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
    alpha: float = _f(1.0, "α: weight of ROUGE F1 against the reference.", -COEF_MAX, COEF_MAX)
    beta: float = _f(0.2, "β: weight of fluency, exp(mean token log-prob under the frozen reference model).",
                     -COEF_MAX, COEF_MAX)
    gamma: float = _f(0.1, "γ: weight of diversity, distinct-n of the sample.", -COEF_MAX, COEF_MAX)
    delta: float = _f(0.0, "δ: weight of the learned reward model's score (needs --reward-model).", -COEF_MAX, COEF_MAX)
    reward_model: str = _f("", "Reward-model run id or checkpoint folder for the δ term.")
    bleu_weight: float = _f(0.0, "Weight of sentence BLEU (sacrebleu, 0..1) against the reference.", -COEF_MAX, COEF_MAX)
    length_weight: float = _f(0.0, "Weight of the length penalty -|words - target| / target.", -COEF_MAX, COEF_MAX)
    target_length: int = _f(20, "Target length in words for the length penalty.", 1, 10_000)
    rouge_type: str = _f("rougeL", "ROUGE variant for the α term: rouge1, rouge2 or rougeL.")
    reward_aggregation: str = _f("sum", "How group algorithms (GRPO, RLOO, Dr. GRPO, DAPO, GSPO, CISPO, REINFORCE++ "
                                        "baseline) combine the terms: 'sum' weighs and sums them, then the algorithm "
                                        "normalises; 'normalize_per_term' (GDPO) z-scores each term within its "
                                        "prompt's group first, so a term's scale no longer sets its influence.")
    distinct_n: int = _f(2, "n of distinct-n for the diversity term.", 1, 100)

    # --- regularisers shared by all policy losses
    kl_coef: float = _f(0.05, "KL coefficient to the frozen reference model (0 = off).", 0, COEF_MAX)
    kl_estimator: str = _f("k3", "KL estimator: k1 (log-ratio), k2 (squared log-ratio / 2) or k3 (ratio - 1 - log-ratio).")
    kl_placement: str = _f(AUTO, "Where the KL penalty goes: 'reward' (subtracted from the reward before the "
                                 "advantages; per token for PPO and REINFORCE++), 'loss', or 'auto': the "
                                 "algorithm's own (reward for REINFORCE++, loss for the others).")
    kl_target: float = _f(0.0, "Adaptive KL controller (Ziegler et al. 2019): the KL per sample to aim for; the "
                               "coefficient starts at kl_coef and is adjusted every step. 0 = a fixed coefficient. "
                               "Online algorithms only.", 0, COEF_MAX)
    kl_horizon: int = _f(10_000, "Horizon of the adaptive KL controller, in samples: each step moves the "
                                 "coefficient by at most ±20% × samples in the step / horizon.", 1, 10**9)
    entropy_coef: float = _f(0.0, "Entropy bonus coefficient (0 = off).", 0, COEF_MAX)
    loss_norm: str = _f(AUTO, "Loss reduction: token_mean, seq_mean, fixed_sum (sum / (batch × max_new_tokens)), or "
                              "'auto': the algorithm's own (fixed_sum for Dr. GRPO, seq_mean for GSPO, token_mean "
                              "for the others).")

    # --- algorithm options
    clip_eps: float = _f(0.2, "Ratio clip ε of PPO, GRPO, Dr. GRPO and REINFORCE++.", 0, COEF_MAX)
    value_clip: float = _f(0.2, "PPO value-function clip (0 = no clipping).", 0, COEF_MAX)
    vf_coef: float = _f(0.5, "Weight of the value loss (actor-critic, PPO).", 0, COEF_MAX)
    gae_gamma: float = _f(1.0, "GAE discount γ (PPO).", 0, 1)
    gae_lambda: float = _f(0.95, "GAE λ (PPO).", 0, 1)
    ppo_epochs: int = _f(2, "Optimisation epochs over each rollout batch (the algorithms with a ratio to the "
                            "rollout policy: PPO, GRPO and its successors, REINFORCE++).", 1, 1000)
    minibatches: int = _f(1, "Minibatches per epoch (as ppo_epochs).", 1, MAX_BATCH)
    baseline: str = _f("ema", "Baseline for reinforce_baseline: 'ema' (moving average) or 'greedy' (self-critical).")
    baseline_decay: float = _f(0.9, "Decay of the moving-average baseline.", 0, 1)
    dpo_beta: float = _f(0.1, "DPO β: strength of the implicit KL to the reference.", 0, COEF_MAX, open_low=True)
    dapo_clip_low: float = _f(0.2, "DAPO ε_low: the ratio's lower clip 1 − ε_low.", 0, 1)
    dapo_clip_high: float = _f(0.28, "DAPO ε_high (clip-higher): the ratio's upper clip 1 + ε_high.", 0, COEF_MAX)
    dapo_oversample_rounds: int = _f(3, "DAPO dynamic sampling: groups whose rewards all tie are dropped; up to this "
                                        "many extra rounds of prompts refill the batch (0 = drop only).", 0, 100)
    dapo_overlong_buffer: float = _f(0.2, "DAPO soft over-length penalty: the last share of max_new_tokens over which "
                                          "the penalty ramps from 0 to -1 (the paper: 4,096 of 20,480 tokens); "
                                          "0 = off.", 0, 1)
    dapo_overlong_coef: float = _f(1.0, "Weight of DAPO's over-length penalty in the reward.", 0, COEF_MAX)
    gspo_clip_low: float = _f(3e-4, "GSPO ε_low: lower clip of the sequence ratio (the paper's 3e-4).", 0, 1)
    gspo_clip_high: float = _f(4e-4, "GSPO ε_high: upper clip of the sequence ratio (the paper's 4e-4).", 0, COEF_MAX)
    cispo_clip_high: float = _f(4.0, "CISPO ε_high: the importance weight is truncated at 1 + ε_high (5, the "
                                     "ScaleRL bound); there is no lower bound.", 0, COEF_MAX)
    ipo_tau: float = _f(0.1, "IPO τ: the loss pulls the log-ratio margin h to 1/(2τ).", 0, COEF_MAX, open_low=True)
    slic_beta: float = _f(1.0, "SLiC β: hinge max(0, 1 − β·h), a margin of 1/β (SLiC-HF's δ = 1).", 0, COEF_MAX,
                          open_low=True)
    simpo_beta: float = _f(2.0, "SimPO β: scale of the length-normalised log-prob reward.", 0, COEF_MAX,
                           open_low=True)
    simpo_gamma: float = _f(1.0, "SimPO γ: target reward margin (γ/β = 0.5, the paper's advice).", 0, COEF_MAX)

    # --- optimisation and sampling
    lr: float = _f(5e-5, "Learning rate (AdamW).", 0, COEF_MAX, open_low=True)
    steps: int = _f(50, "Optimizer steps (one rollout batch each).", 1, MAX_STEPS)
    batch_size: int = _f(8, "Prompts per step.", 1, MAX_BATCH)
    samples_per_prompt: int = _f(4, "Completions sampled per prompt (G); RLOO and GRPO need ≥ 2.", 1, 1024)
    max_new_tokens: int = _f(48, "Longest completion in tokens (48 holds every synth-news summary on the built-in "
                                 "tokenizer: 25 tokens on average, 42 at most).", 1, MAX_TOKENS)
    temperature: float = _f(0.7, "Sampling temperature for rollouts. 0.7 by default: a small model's "
                                 "samples at 1.0 are mostly noise, and RL on them can lower its greedy answers' "
                                 "reward.", 0, 100, open_low=True)
    top_p: float = _f(1.0, "Nucleus sampling p for rollouts (1 = off).", 0, 1, open_low=True)
    max_grad_norm: float = _f(1.0, "Gradient clipping norm (0 = off).", 0, COEF_MAX)
    seed: int = _f(0, "Random seed: same config and seed on CPU give the same metrics.", 0, MAX_SEED)
    lora_r: int = _f(0, "LoRA rank r: train rank-r adapters (peft) instead of the whole policy; 0 = off "
                        "(full fine-tuning). The reference is then the base with the adapter off.", 0, 1024)
    lora_alpha: float = _f(16.0, "LoRA α: the adapters' update is scaled by α / r.", 0, COEF_MAX, open_low=True)
    lora_targets: str = _f("", "Modules LoRA adapts, comma-separated (empty = peft's default for the model "
                               "type: c_attn on GPT-2, q_proj,v_proj on Llama and Qwen).")

    # --- reporting
    eval_every: int = _f(10, "Greedy eval on the fixed eval prompts every N steps (0 = only at the end).",
                         0, MAX_STEPS)
    eval_prompts: int = _f(16, "Number of fixed eval prompts.", 1, MAX_BATCH)
    log_generations: int = _f(4, "Sampled generations stored per step for the app.", 0, MAX_BATCH)
    checkpoint_every: int = _f(25, "Save a checkpoint every N steps for Resume (0 = only at the end); the newest 2 "
                                   "are kept.", 0, MAX_STEPS)
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
        _check_fields(self)
        _choice(self, "kl_estimator", KL_ESTIMATORS)
        _choice(self, "kl_placement", KL_PLACEMENTS)
        _choice(self, "loss_norm", LOSS_NORMS)
        _choice(self, "rouge_type", ROUGE_TYPES)
        _choice(self, "baseline", BASELINES)
        _choice(self, "reward_aggregation", REWARD_AGGREGATIONS)
        _check_device(self.device)
        _choice(self, "precision", PRECISIONS)
        if self.temperature < MIN_TEMPERATURE:
            raise ConfigError(f"temperature must be at least {MIN_TEMPERATURE} (logits / temperature overflow "
                              f"float32 below it), got {self.temperature!r}.")
        if self.delta != 0 and not self.reward_model:
            raise ConfigError("delta is non-zero but no reward_model is given (a run id or a folder).")
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
        online = algo.advantages is not None
        if self.reward_aggregation != "sum" and online and not algo.is_group:
            raise ConfigError(f"reward_aggregation {self.reward_aggregation!r} z-scores each term within a prompt's "
                              f"group of samples, and {algo.label} has no groups; use 'sum', or a group algorithm "
                              "(GRPO, RLOO, Dr. GRPO, DAPO, GSPO, CISPO, REINFORCE++ baseline).")
        if self.kl_target > 0 and self.kl_coef == 0 and online and not algo.reference_free:
            raise ConfigError("kl_target is set but kl_coef is 0: the adaptive controller scales the KL coefficient "
                              "from kl_coef, so give it a starting value above 0.")

    def resolved(self) -> "TrainConfig":
        """The config as its run trains, saved with the run (so the store says which reduction ran):
        an 'auto' loss_norm or kl_placement becomes the algorithm's own, and a reference-free
        algorithm (SimPO), which loads no reference model, runs with the fluency weight β, the
        KL coefficient and its target at 0: only a reference model can measure those."""
        from rmcore.algorithms import get_algorithm

        algo = get_algorithm(self.loss)
        changes: dict[str, Any] = {}
        if self.loss_norm == AUTO:
            changes["loss_norm"] = algo.loss_norm or "token_mean"
        if self.kl_placement == AUTO:
            changes["kl_placement"] = algo.kl_placement or "loss"
        if algo.reference_free:
            changes.update(beta=0.0, kl_coef=0.0, kl_target=0.0)
        return self.replace(**changes) if changes else self

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
    margin: float = field(default=MARGIN_DEFAULT, metadata={
        "help": "Margin m of the Bradley-Terry, focal, hinge and triplet losses; -1 = the loss's own default: "
                "1 for hinge and triplet, 0 otherwise.",
        "bound": OrDefault(0, COEF_MAX, default=MARGIN_DEFAULT, meaning="the loss's own default")})
    focal_gamma: float = _f(2.0, "γ of the focal loss (0 = Bradley-Terry).", 0, 100)
    center_coef: float = _f(0.0, "Reward-centering coefficient: pushes mean scores towards 0.", 0, COEF_MAX)
    lr: float = _f(1e-4, "Learning rate (AdamW).", 0, COEF_MAX, open_low=True)
    steps: int = _f(200, "Optimizer steps.", 1, MAX_STEPS)
    batch_size: int = _f(16, "Preference pairs per step.", 1, MAX_BATCH)
    max_length: int = _f(256, "Longest prompt + response in tokens.", 1, MAX_TOKENS)
    max_grad_norm: float = _f(1.0, "Gradient clipping norm (0 = off).", 0, COEF_MAX)
    seed: int = _f(0, "Random seed.", 0, MAX_SEED)
    eval_every: int = _f(25, "Held-out evaluation every N steps (0 = only at the end).", 0, MAX_STEPS)
    eval_pairs: int = _f(200, "Held-out pairs used for evaluation.", 1, MAX_ROWS)
    device: str = _f("auto", "auto (cuda > mps > cpu; with several GPUs the least-loaded one), cpu, cuda, "
                             "cuda:N (one GPU of several) or mps.")
    precision: str = _f("auto", "auto (bf16 on a CUDA GPU that has it, else fp32), fp32, or bf16: mixed precision "
                                "with float32 weights and optimizer state and bf16 autocast forward passes.")
    trust_remote_code: bool = _f(False, "Allow a hub model to run its own code. Off unless you trust it.")

    to_dict = TrainConfig.to_dict
    replace = TrainConfig.replace

    def resolved(self) -> "RewardModelConfig":
        """As saved with the run; the margin's -1 stays (rmcore.rm_family reads the loss's default)."""
        return self

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RewardModelConfig":
        return _from_dict(cls, data)

    def validate(self) -> "RewardModelConfig":
        """Raise ConfigError with one sentence naming the bad field; return self if fine."""
        _check_fields(self)
        _check_device(self.device)
        _choice(self, "precision", PRECISIONS)
        _choice(self, "family", RM_FAMILIES)
        self._check_loss()
        return self

    def _check_loss(self) -> None:
        """The loss exists and fits the family and margin (rmcore.rm_family); imported here to
        keep this module light."""
        from rmcore.losses import get_reward_model_loss
        from rmcore.rm_family import loss_kwargs, reward_model_kind

        get_reward_model_loss(self.loss)
        reward_model_kind(self)
        loss_kwargs(self)


def field_help(cls: type, name: str) -> str:
    """The help text of one config field (CLI --help and app tooltips)."""
    return next(f.metadata.get("help", "") for f in fields(cls) if f.name == name)
