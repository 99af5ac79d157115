"""`train(config, on_step, should_stop)`: the policy training loop, read top to bottom.

    set-up:  validate → data → policy (+ frozen reference, value head) → reward → optimizer
    step 0:  greedy eval, so every curve starts from the untrained model
    loop:    batch → the algorithm's step (algo.step: rmcore.online_step or rmcore.offline_step)
             → timings → eval / checkpoint → report

It reports through callbacks only (rmcore.events) and knows nothing of the store or the UI.
Same config and seed on CPU give the same metrics (perf/* timings aside).
"""
from __future__ import annotations

import copy
import random
import time
from pathlib import Path

import torch

from rmcore.algorithms import get_algorithm
from rmcore.checkpoints import load_checkpoint, prune_checkpoints, save_checkpoint
from rmcore.backbones import load_causal_lm
from rmcore.placement import torch_device
from rmcore.config import TrainConfig
from rmcore.errors import ConfigError
from rmcore.events import OnProgress, OnStep, ShouldStop, StepReport
from rmcore.facts import fact_metrics
from rmcore.lora import add_adapter
from rmcore.metrics import EVAL_RESPONSE_LENGTH, EVAL_REWARD, RESPONSE_LENGTH
from rmcore.policy_step import Session, StepResult, reference_logprobs, score
from rmcore.precision import autocast, frozen_dtype, resolve_precision
from rmcore.rewards import Rouge, build_composite
from rmcore.rollout import encode_prompts, sample


def train(config: TrainConfig, on_step: OnStep | None = None, should_stop: ShouldStop | None = None,
          on_progress: OnProgress | None = None, run_dir: str | Path | None = None,
          resume_from: str | Path | None = None) -> dict[str, float]:
    """Train a policy; returns the last step's metrics (eval included).

    resume_from: a checkpoint folder of this run; training continues at the step after it
    and ends at config.steps, drawing the same batches and samples as an unbroken run.
    """
    cfg = config.validate().resolved()  # fields, reward weights, what the loss needs; "auto" made concrete
    algo = get_algorithm(cfg.loss)
    on_step, should_stop = on_step or (lambda r: None), should_stop or (lambda: False)

    # --- set-up
    torch.manual_seed(cfg.seed)
    device = torch_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)  # the policy's weights stay fp32 either way
    task, pool = load_pool(cfg)
    runs_dir = Path(run_dir).parent if run_dir else None  # its models/ folder caches the built-in backbone
    policy, tokenizer = load_causal_lm(cfg.backbone, device=device, trust_remote_code=cfg.trust_remote_code,
                                       runs_dir=runs_dir, on_progress=on_progress)
    encode_prompts(tokenizer, ["x"], max_new_tokens=cfg.max_new_tokens, model=policy)  # context check, early
    session = make_session(cfg, algo, policy, tokenizer, device, precision=precision)
    session.draw = lambda round_, n: draw_batch(pool, cfg.seed, session.step, n, round_)
    eval_set = task.eval[: cfg.eval_prompts] or task.train[: cfg.eval_prompts]

    # --- step 0 (the start of every eval curve), or the step a resumed run stopped at
    metrics: dict[str, float] = {}
    start = load_checkpoint(session, resume_from) if resume_from else 0
    if not resume_from:
        with autocast(precision, device):
            metrics, gens = evaluate(session, eval_set)
        on_step(StepReport(step=0, total_steps=cfg.steps, metrics=metrics, generations=gens))

    saved_at = start
    for step in range(start + 1, cfg.steps + 1):
        if should_stop():
            if run_dir and session.step > saved_at:  # keep the last finished step for Resume
                on_step(StepReport(step=session.step, total_steps=cfg.steps, metrics={},
                                   checkpoint=checkpoint_now(session, run_dir)))
            break
        session.step = step
        t0 = time.perf_counter()
        session.generator.manual_seed(cfg.seed * 1_000_003 + step)
        with autocast(precision, device):  # forward passes; the update leaves autocast (backward_and_step)
            result = algo.step(session, draw_batch(pool, cfg.seed, step, cfg.batch_size))
        add_throughput(result, time.perf_counter() - t0)

        gens = result.generations
        last = step == cfg.steps
        if last or (cfg.eval_every and step % cfg.eval_every == 0):
            with autocast(precision, device):
                eval_metrics, eval_gens = evaluate(session, eval_set)
            result.metrics.update(eval_metrics)
            gens = gens + eval_gens
        checkpoint = None
        if run_dir and (last or (cfg.checkpoint_every and step % cfg.checkpoint_every == 0)):
            checkpoint = checkpoint_now(session, run_dir)
            saved_at = step
        metrics = result.metrics
        on_step(StepReport(step=step, total_steps=cfg.steps, metrics=metrics,
                           sample_rewards=result.sample_rewards, generations=gens, checkpoint=checkpoint))
    return metrics


def draw_batch(pool: list, seed: int, step: int, n: int, round_: int = 0) -> list:
    """The n examples of a step: seeded by (seed, step), so a resumed run draws what the
    unbroken one did; round_ > 0 is a refill of the same step (DAPO's dynamic sampling)."""
    salt = f"{seed}-{step}" if round_ == 0 else f"{seed}-{step}-refill-{round_}"
    return [pool[i] for i in random.Random(salt).sample(range(len(pool)), n)]


def checkpoint_now(session: Session, run_dir: str | Path) -> str:
    folder = Path(run_dir) / "checkpoints"
    path = save_checkpoint(session, folder / f"step-{session.step:06d}")
    prune_checkpoints(folder)
    return path


def load_pool(cfg: TrainConfig):
    """(task, the examples or pairs this loss learns from), with the data checks of a run."""
    from rmcore.data import load_task

    algo = get_algorithm(cfg.loss)
    task = load_task(cfg.task, split=cfg.dataset_split, seed=cfg.seed, prompt_column=cfg.prompt_column,
                     reference_column=cfg.reference_column, chosen_column=cfg.chosen_column,
                     rejected_column=cfg.rejected_column)
    pool = task.pairs_train if algo.data == "pairs" else task.train
    if not pool:
        raise ConfigError(f"Task {cfg.task!r} has no {'preference pairs' if algo.data == 'pairs' else 'examples'} "
                          f"for {algo.label}.")
    if cfg.batch_size > len(pool):
        raise ConfigError(f"batch_size ({cfg.batch_size}) is larger than the dataset ({len(pool)} examples).")
    return task, pool


def preflight(config: TrainConfig) -> None:
    """Every check that needs the data or the model's shape, without loading weights.

    rmcore.preflight calls this (after the field, device and backbone-folder checks) before a
    run is written, so bad input changes nothing in the store.
    """
    from rmcore.backbones import BUILTIN, TINY_GPT2_SHAPE

    cfg = config.validate()
    load_pool(cfg)
    if cfg.backbone == BUILTIN:
        limit = TINY_GPT2_SHAPE["n_positions"]
    else:
        from transformers import AutoConfig

        from rmcore.backbones import _from_pretrained
        from rmcore.context import context_limit

        model_cfg = _from_pretrained(AutoConfig, cfg.backbone, trust_remote_code=cfg.trust_remote_code)
        limit = context_limit(model_cfg)
    if limit is not None and cfg.max_new_tokens >= limit:
        raise ConfigError(f"max_new_tokens ({cfg.max_new_tokens}) must be below the model's context "
                          f"length ({limit}) to leave room for the prompt.")


def make_session(cfg: TrainConfig, algo, policy, tokenizer, device, precision: str = "fp32") -> Session:
    """Reference copy only when something reads it: KL, fluency, or DPO's implicit reward; never
    for a reference-free algorithm (SimPO), whose resolved config has β and KL at 0.

    At bf16 the frozen models (reference, δ's reward model) are stored in bf16, half the
    memory; the policy and value head keep fp32 weights so AdamW's small updates land.
    """
    needs_ref = not algo.reference_free and (cfg.kl_coef > 0 or cfg.beta != 0 or algo.needs_reference)
    if cfg.lora_r:  # base frozen, adapters train; the reference is this model with them off
        policy = add_adapter(policy, r=cfg.lora_r, alpha=cfg.lora_alpha, targets=cfg.lora_targets)
    ref = None
    if needs_ref:
        ref = policy if cfg.lora_r else copy.deepcopy(policy).to(frozen_dtype(precision)).eval().requires_grad_(False)
    value_head = None
    params = [p for p in policy.parameters() if p.requires_grad]
    if algo.value_head:
        value_head = torch.nn.Linear(policy.config.hidden_size if hasattr(policy.config, "hidden_size")
                                     else policy.config.n_embd, 1).to(device)
        torch.nn.init.zeros_(value_head.weight)  # V ≡ bias at start: a neutral critic
        params += list(value_head.parameters())
    rm_scorer = load_reward_model_scorer(cfg, device, frozen_dtype(precision)) if cfg.delta != 0 else None
    reward = build_composite(cfg.reward_weights(), rouge_type=cfg.rouge_type, distinct_n=cfg.distinct_n,
                             target_length=cfg.target_length, rm_scorer=rm_scorer)
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    # Dropout stays off for the whole run (TRL's disable_dropout): with it on, the log-probs of
    # the rollout and of the update would come from different networks, and PPO's ratio ≠ 1.
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    policy.eval()
    return Session(cfg=cfg, algo=algo, policy=policy, tokenizer=tokenizer, ref=ref, value_head=value_head,
                   optimizer=optimizer, reward=reward, generator=generator, device=device, kl_coef=cfg.kl_coef)


def load_reward_model_scorer(cfg: TrainConfig, device, dtype=torch.float32):
    """The δ term: the reward model in the checkpoint folder cfg.reward_model (rmcore.rm_eval).

    A run id was resolved to its folder before training started (rmcore.run_refs, called by
    the runner and by rmcore.train), so the trainer never reads the run store.
    """
    from rmcore.rm_eval import load_scorer

    return load_scorer(cfg.reward_model, device=device, trust_remote_code=cfg.trust_remote_code, dtype=dtype)


@torch.no_grad()
def evaluate(s: Session, examples) -> tuple[dict[str, float], list[dict]]:
    """Greedy completions of the fixed eval prompts: eval/<term>, eval/reward, eval/rougeL, and
    eval/entity_acc, eval/number_acc where the task records each example's key facts."""
    prompts, refs = [e.prompt for e in examples], [e.reference for e in examples]
    ids, mask = encode_prompts(s.tokenizer, prompts, max_new_tokens=s.cfg.max_new_tokens, model=s.policy,
                               device=s.device)
    batch = sample(s.policy, s.tokenizer, ids, mask, max_new_tokens=s.cfg.max_new_tokens, greedy=True)
    ref_t1 = reference_logprobs(s, batch)[3] if s.ref is not None else None
    breakdown = score(s, batch, prompts, refs, ref_t1)
    n = len(prompts)
    metrics = {EVAL_REWARD: sum(breakdown.total) / n,
               EVAL_RESPONSE_LENGTH: batch.response_mask.sum(-1).mean().item()}
    for term, values in breakdown.terms.items():
        metrics[f"eval/{term}"] = sum(values) / n
    if "rouge" not in breakdown.terms or s.cfg.rouge_type != "rougeL":
        metrics["eval/rougeL"] = sum(Rouge("rougeL")(prompts, batch.completions, refs)) / n
    else:
        metrics["eval/rougeL"] = metrics["eval/rouge"]
    metrics.update(fact_metrics(batch.completions, [e.entity for e in examples], [e.number for e in examples]))
    gens = [{"split": "eval", "prompt": prompts[i], "completion": batch.completions[i], "reference": refs[i],
             "reward": breakdown.total[i], "terms": {k: v[i] for k, v in breakdown.terms.items()}}
            for i in range(n)]
    return metrics, gens


def add_throughput(result: StepResult, seconds: float) -> None:
    n = len(result.sample_rewards.get("total", []))
    tokens = result.metrics.get(RESPONSE_LENGTH, 0.0) * n
    result.metrics.update({"perf/step_time": seconds, "perf/samples_per_s": n / seconds,
                           "perf/tokens_per_s": tokens / seconds})
