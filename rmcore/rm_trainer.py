"""`train_reward_model(config, on_step, should_stop)`: the reward-model loop, top to bottom.

    set-up:  validate → preference pairs → backbone with a scalar head (or a bare encoder
             for the embedding family) → optimizer
    step 0:  held-out eval, so every curve starts from the untrained model
    loop:    batch of pairs → rewards of both sides → loss → step → eval → report
    end:     save_pretrained + tokenizer + rm_info.json, reported as the step's checkpoint

Reports through callbacks only (rmcore.events), like rmcore.trainer. A stopped run ends
its current step with an eval and a checkpoint, so what was learnt stays usable; a loss or
gradient norm that is NaN or inf fails the run before the optimizer step, naming the likely
cause. Loading a trained model back as the policy's δ term is rmcore.rm_eval's job
(``load_scorer``; rmcore.run_refs for a run id).
"""
from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from rmcore.backbones import (
    _from_pretrained,
    load_tokenizer,
    resolve_backbone_path,
)
from rmcore.placement import torch_device
from rmcore.config import RewardModelConfig
from rmcore.context import context_limit
from rmcore.errors import ConfigError, TrainingError
from rmcore.events import OnProgress, OnStep, ProgressReport, ShouldStop, StepReport
from rmcore.losses import get_reward_model_loss
from rmcore.optim_step import optimizer_step
from rmcore.precision import autocast, resolve_precision
from rmcore.rm_eval import EMBEDDING, INFO_FILE, SCALAR, evaluate, loss_inputs, pair_rewards
from rmcore.rm_family import (  # noqa: F401  (re-exported: the loss/family checks live there)
    EMBEDDING_LOSSES, MARGIN_LOSSES, SCALAR_LOSSES, loss_kwargs, reward_model_kind)


def train_reward_model(config: RewardModelConfig, on_step: OnStep | None = None,
                       should_stop: ShouldStop | None = None, on_progress: OnProgress | None = None,
                       run_dir: str | Path | None = None) -> dict[str, float]:
    """Train a reward model on preference pairs; returns the last step's metrics (eval included)."""
    cfg = config.validate()
    loss_fn, kwargs, kind = get_reward_model_loss(cfg.loss), loss_kwargs(cfg), reward_model_kind(cfg)

    def objective(chosen: torch.Tensor, rejected: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        return loss_fn(*loss_inputs(cfg.loss, chosen, rejected), **kwargs)
    on_step, should_stop = on_step or (lambda r: None), should_stop or (lambda: False)

    # --- set-up
    torch.manual_seed(cfg.seed)  # the fresh scalar head is drawn from this
    device = torch_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)  # fp32 weights either way
    if on_progress:
        on_progress(ProgressReport("load-data", 0.0, f"Loading preference pairs from {cfg.task}"))
    pool, held_out = load_pairs(cfg)
    model, tokenizer = load_backbone(cfg, kind, device, runs_dir=Path(run_dir).parent if run_dir else None,
                                     on_progress=on_progress)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    batches = pair_batches(len(pool), cfg.batch_size, random.Random(cfg.seed))

    def evaluate_now() -> tuple[dict[str, float], dict[str, list[float]]]:
        return evaluate(kind, model, tokenizer, held_out, device, objective, precision)

    # --- step 0: the starting point of every eval curve
    metrics, scores = evaluate_now()
    on_step(StepReport(step=0, total_steps=cfg.steps, metrics=metrics, sample_rewards=scores))

    if should_stop():  # stopped while loading: nothing learnt, nothing to save
        return metrics
    for step in range(1, cfg.steps + 1):
        t0 = time.perf_counter()
        batch = [pool[i] for i in next(batches)]
        model.train()
        with autocast(precision, device):
            chosen, rejected = pair_rewards(kind, model, tokenizer, [p.prompt for p in batch],
                                            [p.chosen for p in batch], [p.rejected for p in batch], device)  # (B,)
        loss, stats = objective(chosen, rejected)
        scores_finite = bool(torch.isfinite(chosen).all() and torch.isfinite(rejected).all())
        grad_norm = optimizer_step(optimizer, loss, cfg.max_grad_norm, device, lambda what, value: non_finite_error(
            cfg, precision, step, what, value, scores_finite))
        model.eval()
        seconds = time.perf_counter() - t0
        metrics = {**stats, "loss/total": loss.item(), "rm/grad_norm": float(grad_norm),
                   "rm/chosen_std": chosen.detach().std(unbiased=False).item(),
                   "rm/rejected_std": rejected.detach().std(unbiased=False).item(),
                   "perf/step_time": seconds, "perf/samples_per_s": len(batch) / seconds}

        last = step == cfg.steps or should_stop()  # a stop ends this step with eval and checkpoint
        scores, checkpoint = {}, None
        if last or (cfg.eval_every and step % cfg.eval_every == 0):
            eval_metrics, scores = evaluate_now()
            metrics.update(eval_metrics)
        if last and run_dir:
            checkpoint = save_checkpoint(model, tokenizer, Path(run_dir) / "checkpoints" / f"step-{step:06d}",
                                         {"kind": kind, "loss": cfg.loss, "backbone": cfg.backbone,
                                          "task": cfg.task, "step": step,
                                          "eval_accuracy": metrics.get("eval/accuracy")})
        on_step(StepReport(step=step, total_steps=cfg.steps, metrics=metrics, sample_rewards=scores,
                           checkpoint=checkpoint))
        if last:
            break
    return metrics


def non_finite_error(cfg: RewardModelConfig, precision: str, step: int, what: str, value: float,
                     scores_finite: bool) -> TrainingError:
    """The error that ends a run whose loss or gradient norm is NaN or inf, with the likely cause.

    Each step updates once, so at step 1 nothing has been updated yet and the learning rate
    cannot be the cause: the backbone's weights (scores already non-finite) or the loss's own
    numbers are. Later, non-finite scores mean the updates blew the weights up.
    """
    fp32 = " or try --precision fp32" if precision == "bf16" else ""
    if step == 1 and not scores_finite:
        cause = f"the untrained model already scores NaN or inf: check the backbone's weights{fp32}"
    elif step == 1:
        part = "loss" if what == "loss" else "loss's gradient"
        cause = (f"before any update and from finite scores, so the {cfg.loss} {part} itself overflowed: "
                 f"try a smaller margin, focal_gamma or center_coef{fp32}")
    elif not scores_finite:
        cause = "the updates made the model's scores NaN or inf: try a smaller learning rate"
    else:
        clip = " or gradient clipping (--max-grad-norm 1)" if cfg.max_grad_norm == 0 else ""
        cause = f"try a smaller learning rate{clip}{fp32}"
    return TrainingError(f"non-finite {what} at step {step} ({value}); {cause}.")


def load_pairs(cfg: RewardModelConfig) -> tuple[list, list]:
    """(training pairs, held-out pairs); without an eval split, the last 10% are held out."""
    from rmcore.data import load_task

    task = load_task(cfg.task, split=cfg.dataset_split, seed=cfg.seed, prompt_column=cfg.prompt_column,
                     chosen_column=cfg.chosen_column, rejected_column=cfg.rejected_column)
    pool, held_out = list(task.pairs_train), list(task.pairs_eval)
    if not pool:
        raise ConfigError(f"Task {cfg.task!r} has no preference pairs; a reward model needs prompt, chosen "
                          "and rejected columns.")
    if not held_out:
        n_held = min(cfg.eval_pairs, len(pool) // 10)
        if n_held < 1:
            raise ConfigError(f"Task {cfg.task!r} has {len(pool)} pairs: too few to hold some out for eval.")
        pool, held_out = pool[:-n_held], pool[-n_held:]
    if cfg.batch_size > len(pool):
        raise ConfigError(f"batch_size ({cfg.batch_size}) is larger than the training pairs ({len(pool)}).")
    return pool, held_out[:cfg.eval_pairs]


def pair_batches(n: int, batch_size: int, rng: random.Random) -> Iterator[list[int]]:
    """Shuffled passes over n pairs: each pass sees every pair at most once (the last,
    incomplete batch of a pass is dropped; the next pass reshuffles)."""
    while True:
        order = list(range(n))
        rng.shuffle(order)
        for start in range(0, n - batch_size + 1, batch_size):
            yield order[start:start + batch_size]


def load_backbone(cfg: RewardModelConfig, kind: str, device: torch.device, *, runs_dir=None,
                  on_progress: OnProgress | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) on device, fp32, dropout off; the tokenizer truncates as rm_eval says.

    Scalar: AutoModelForSequenceClassification with one label (a causal LM gets a fresh
    head over its last real token; an encoder over its pooled output). Embedding: AutoModel.
    """
    from transformers import (
        AutoModel,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )

    path = resolve_backbone_path(cfg.backbone, runs_dir=runs_dir, on_progress=on_progress)
    remote = cfg.trust_remote_code
    probe = load_tokenizer(path, trust_remote_code=remote)
    if kind == EMBEDDING:
        model = _from_pretrained(AutoModel, path, trust_remote_code=remote)
    else:
        model = _from_pretrained(AutoModelForSequenceClassification, path, trust_remote_code=remote,
                                 num_labels=1, pad_token_id=probe.pad_token_id)
    model.config.pad_token_id = probe.pad_token_id
    positions = context_limit(model) or cfg.max_length
    limit = min(cfg.max_length, positions, probe.model_max_length)
    # Loaded again with the two settings as init arguments: that is how they get saved in
    # tokenizer_config.json, so RewardModelScorer reloads the same truncation.
    tokenizer = _from_pretrained(AutoTokenizer, path, trust_remote_code=remote, truncation_side="left",
                                 model_max_length=limit)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    disable_dropout(model)
    return model.to(device=device, dtype=torch.float32), tokenizer


def disable_dropout(model: torch.nn.Module) -> None:
    """Dropout off, as TRL's RewardTrainer does: scores in training then equal the scores the
    frozen model gives as a reward, and Δ is not noise on a small model."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0


def save_checkpoint(model: Any, tokenizer: Any, path: Path, info: dict[str, Any]) -> str:
    """save_pretrained (safetensors) of model and tokenizer, and rm_info.json beside them."""
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    (path / INFO_FILE).write_text(json.dumps(info, indent=1))
    return str(path)


def trained_reward_models(store) -> list[dict[str, Any]]:
    """Reward-model runs that have a checkpoint, newest first, for a picker in the app:
    id, name, loss, status, eval_accuracy (last logged), checkpoint."""
    runs = store.list_runs()
    runs = runs[runs["kind"] == "reward_model"]
    # One aggregate query for every run's last accuracy, not one read of its rows per run.
    final = store.final_and_best(list(runs["id"]), ["eval/accuracy"]).set_index("run_id")["final"]
    out = []
    for row in runs.itertuples():
        checkpoint = store.latest_checkpoint(row.id)
        if checkpoint is None:
            continue
        out.append({"id": row.id, "name": row.name, "loss": row.loss, "status": row.status,
                    "eval_accuracy": float(final[row.id]) if row.id in final.index else None,
                    "checkpoint": checkpoint})
    return out
