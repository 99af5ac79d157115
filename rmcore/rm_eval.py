"""Reward-model scores and their held-out evaluation, shared by training and use.

Two families of reward model, scored the same way in training, in evaluation and as the
policy's δ term (so the numbers a user reads are the numbers the policy gets):

    scalar     r(x, y) = head(h_last(x ⊕ y))          the text is the joined string prompt +
               completion, as rmcore.rewards.RewardModelScorer scores it (InstructGPT §3.5)
    embedding  r(x, y) = −‖pool(h(x)) − pool(h(y))‖₂  mean-pooled last hidden states of the
               prompt and of the response, each encoded alone (the triplet loss's family;
               Bradley-Terry, hinge and focal train it too, on r)

Tokenisation: the tokenizer saved with a reward model truncates on the left at its
``model_max_length``, so an over-long text loses the start of its prompt, never the end of
the response being judged. Batches are right-padded with the pad id, which is how a
``*ForSequenceClassification`` head finds the last real token.

Evaluation: pairwise accuracy (overall and per corruption type), score statistics, and a
reliability diagram of σ(Δ) against the observed win rate, with its expected calibration
error (Guo et al. 2017, arXiv:1706.04599, eq. 3).

Use: ``load_scorer`` turns a checkpoint folder back into the reward callable of the policy's
δ term, scoring exactly as the eval here did (a run id becomes a folder in rmcore.run_refs,
before a trainer starts, so nothing here reads the run store).
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from rmcore.errors import ConfigError
from rmcore.losses import embedding_distance
from rmcore.precision import autocast
from rmcore.rewards.model import (
    _pad_right,  # the scorer's own padding: identical inputs by construction
)
from rmcore.rm_family import EMBEDDING, SCALAR  # noqa: F401  (re-exported)

if TYPE_CHECKING:
    import pandas as pd

CALIBRATION_BINS = 10
EVAL_BATCH = 32


def encode(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    """Token ids of each text, truncated (left side, see module doc) at the tokenizer's limit.

    The call is RewardModelScorer's: with special tokens, ``truncation=True`` at
    ``model_max_length``. An empty text gets one token (BOS, else EOS, else pad, else 0).
    """
    limit = tokenizer.model_max_length
    ids = tokenizer(list(texts), truncation=limit < 1_000_000, max_length=limit)["input_ids"]
    fallback = [tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id, 0]
    empty_id = next(token for token in fallback if token is not None)
    return [row or [empty_id] for row in ids]


def scalar_rewards(model: Any, tokenizer: Any, texts: list[str], device: Any) -> Tensor:
    """The scalar head's logit for each text: (N,) float32, with gradients if enabled."""
    input_ids, attention_mask = _pad_right(encode(tokenizer, texts), model.config.pad_token_id, device)  # (N, L)
    return model(input_ids=input_ids, attention_mask=attention_mask).logits[:, 0].float()           # (N,)


def mean_pooled(model: Any, tokenizer: Any, texts: list[str], device: Any) -> Tensor:
    """Mean of the last hidden states over each text's real tokens: (N, H) float32.

    Mean pooling, as Sentence-BERT (Reimers & Gurevych 2019, arXiv:1908.10084 §3): unlike
    the last token, it sees the whole text in a causal model as well as in an encoder.
    """
    input_ids, attention_mask = _pad_right(encode(tokenizer, texts), tokenizer.pad_token_id, device)  # (N, L)
    hidden = model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state.float()      # (N, L, H)
    mask = attention_mask.unsqueeze(-1).float()                                                       # (N, L, 1)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)                                # (N, H)


def pair_rewards(kind: str, model: Any, tokenizer: Any, prompts: list[str], chosen: list[str],
                 rejected: list[str], device: Any) -> tuple[Tensor, Tensor]:
    """Rewards of the chosen and the rejected response of B pairs: two (B,) tensors.

    One forward over the 2B texts (chosen then rejected) so both sides share a batch; an
    embedding model encodes each prompt once.
    """
    n = len(prompts)
    if kind == EMBEDDING:
        anchors = mean_pooled(model, tokenizer, prompts, device)                      # (B, H)
        responses = mean_pooled(model, tokenizer, list(chosen) + list(rejected), device)  # (2B, H)
        rewards = -embedding_distance(anchors.repeat(2, 1), responses)                # (2B,)
    else:
        texts = [p + c for p, c in zip(prompts, chosen)] + [p + r for p, r in zip(prompts, rejected)]
        rewards = scalar_rewards(model, tokenizer, texts, device)                     # (2B,)
    return rewards[:n], rewards[n:]


class EmbeddingScorer:
    """Reward of each (prompt, completion) from an embedding reward model: −distance.

        r(x, y) = −‖pool(h(x)) − pool(h(y))‖₂

    A reward callable ``(prompts, completions, references) -> list[float]`` like
    RewardModelScorer; the model is frozen and scored under ``torch.inference_mode``.
    """

    def __init__(self, model: Any, tokenizer: Any, device: Any, batch_size: int = 16) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.device = device
        self.batch_size = max(1, batch_size)

    def __call__(self, prompts: list[str], completions: list[str], references: list[str]) -> list[float]:
        if len(prompts) != len(completions):
            raise ValueError(f"Got {len(prompts)} prompts but {len(completions)} completions.")
        scores: list[float] = []
        with torch.inference_mode():
            for start in range(0, len(prompts), self.batch_size):
                chunk = slice(start, start + self.batch_size)
                anchors = mean_pooled(self.model, self.tokenizer, prompts[chunk], self.device)       # (b, H)
                responses = mean_pooled(self.model, self.tokenizer, completions[chunk], self.device)  # (b, H)
                scores += [-float(d) for d in embedding_distance(anchors, responses)]
        return scores


def loss_inputs(loss: str, chosen: Tensor, rejected: Tensor) -> tuple[Tensor, Tensor]:
    """What the named loss takes (its registry entry's ``inputs``): distances d = −r for a loss
    defined on distances (triplet), the rewards for the others (Bradley-Terry on an embedding
    model sees r = −d: P(c ≻ r) = σ(d_r − d_c))."""
    from rmcore.losses.registry import DISTANCES, get_reward_model_loss

    return (-chosen, -rejected) if get_reward_model_loss(loss).inputs == DISTANCES else (chosen, rejected)


@torch.no_grad()
def evaluate(kind: str, model: Any, tokenizer: Any, pairs: list, device: torch.device,
             objective: Callable[[Tensor, Tensor], tuple[Tensor, dict]], precision: str = "fp32") -> tuple[dict[str, float], dict[str, list[float]]]:
    """Held-out metrics (pairwise_metrics + eval/loss) and every pair's two rewards;
    ``objective(chosen, rejected)`` is the training loss on rewards; forward passes at
    ``precision`` (rmcore.precision)."""
    model.eval()
    chosen, rejected = [], []
    for start in range(0, len(pairs), EVAL_BATCH):
        chunk = pairs[start:start + EVAL_BATCH]
        with autocast(precision, device):
            c, r = pair_rewards(kind, model, tokenizer, [p.prompt for p in chunk], [p.chosen for p in chunk],
                                [p.rejected for p in chunk], device)
        chosen.append(c)
        rejected.append(r)
    chosen_t, rejected_t = torch.cat(chosen), torch.cat(rejected)  # (N,)
    metrics = pairwise_metrics(chosen_t, rejected_t, [p.corruption for p in pairs])
    metrics["eval/loss"] = objective(chosen_t, rejected_t)[0].item()
    return metrics, {"chosen": chosen_t.tolist(), "rejected": rejected_t.tolist()}


def calibration_bins(chosen: Tensor, rejected: Tensor, n_bins: int = CALIBRATION_BINS) -> list[dict[str, float]]:
    """Reliability diagram of P(a ≻ b) = σ(r_a − r_b) against the observed win rate.

    Each pair is counted in both orders, so the outcomes are not all "first wins": (chosen,
    rejected) predicts p = σ(Δ) and was won, (rejected, chosen) predicts 1 − p and was lost.
    The 2N predictions fall into n_bins equal-width bins of [0, 1] (1.0 in the last); per
    non-empty bin: its index, mean prediction ``pred``, observed win rate ``obs`` and
    ``count``. The diagram is symmetric: bin i mirrors bin n_bins − 1 − i.
    chosen, rejected: (N,) rewards of the same N pairs.
    """
    p = torch.sigmoid((chosen - rejected).double())                   # (N,)
    preds = torch.cat([p, 1.0 - p])                                   # (2N,)
    wins = torch.cat([torch.ones_like(p), torch.zeros_like(p)])       # (2N,)
    index = (preds * n_bins).long().clamp(max=n_bins - 1)             # (2N,)
    bins = []
    for i in range(n_bins):
        inside = index == i
        count = int(inside.sum())
        if count:
            bins.append({"bin": i, "pred": float(preds[inside].mean()), "obs": float(wins[inside].mean()),
                         "count": count})
    return bins


def expected_calibration_error(bins: list[dict[str, float]]) -> float:
    """ECE = Σ_b (n_b / n) · |obs_b − pred_b| over the bins of calibration_bins."""
    total = sum(b["count"] for b in bins)
    return sum(b["count"] / total * abs(b["obs"] - b["pred"]) for b in bins) if total else 0.0


def pairwise_metrics(chosen: Tensor, rejected: Tensor, corruptions: list[str]) -> dict[str, float]:
    """Held-out metrics of N scored pairs, under eval/.

    eval/accuracy (share of r_c > r_r; a tie counts as wrong), eval/accuracy/<corruption>
    for each recorded corruption type, eval/margin (mean r_c − r_r), mean and std of each
    side, eval/ece and the calibration bins as eval/calibration/bin_<i>_{pred,obs,count}.
    chosen, rejected: (N,); corruptions: N names ("" = not recorded, left out of the split).
    """
    chosen, rejected = chosen.detach().double().cpu(), rejected.detach().double().cpu()
    correct = (chosen > rejected).double()                            # (N,)
    metrics = {"eval/accuracy": float(correct.mean()), "eval/margin": float((chosen - rejected).mean()),
               "eval/chosen_mean": float(chosen.mean()), "eval/rejected_mean": float(rejected.mean()),
               "eval/chosen_std": float(chosen.std(unbiased=False)),
               "eval/rejected_std": float(rejected.std(unbiased=False))}
    for kind in sorted(set(corruptions) - {""}):
        rows = torch.tensor([c == kind for c in corruptions])
        metrics[f"eval/accuracy/{kind}"] = float(correct[rows].mean())
    bins = calibration_bins(chosen, rejected)
    metrics["eval/ece"] = expected_calibration_error(bins)
    for b in bins:
        for field in ("pred", "obs", "count"):
            metrics[f"eval/calibration/bin_{b['bin']}_{field}"] = float(b[field])
    return metrics


def calibration_from_metrics(metrics: dict[str, float]) -> list[dict[str, float]]:
    """The bins back from eval/calibration/bin_<i>_* metrics (what the store keeps), by bin."""
    found: dict[int, dict[str, float]] = {}
    prefix = "eval/calibration/bin_"
    for key, value in metrics.items():
        if key.startswith(prefix):
            index, field = key[len(prefix):].split("_", 1)
            found.setdefault(int(index), {"bin": int(index)})[field] = float(value)
    return [found[i] for i in sorted(found)]


def eval_summary(metrics: pd.DataFrame) -> pd.DataFrame:
    """Each run's eval/* metrics at its last evaluated step, one row per run.

    metrics: long store frame [run_id, step, key, value, time] -> index run_id, columns
    ``step`` and every eval/* key logged at that step (runs never evaluated are left out).
    """
    evals = metrics[metrics["key"].str.startswith("eval/")]
    last_step = evals[evals["key"] == "eval/accuracy"].groupby("run_id")["step"].max()  # run_id -> step
    rows = evals[evals["step"].to_numpy() == evals["run_id"].map(last_step).to_numpy()]
    wide = rows.pivot_table(index="run_id", columns="key", values="value", aggfunc="last")
    wide.columns.name = None
    wide.insert(0, "step", last_step)
    return wide.loc[last_step.index]


# --------------------------------------------------------------------------- use as a reward
INFO_FILE = "rm_info.json"  # written beside each checkpoint by rmcore.rm_trainer.save_checkpoint


def saved_kind(folder: Path) -> str:
    """SCALAR or EMBEDDING, as rm_info.json records; SCALAR for a folder without one (a reward
    model saved by another tool). The file may be corrupt or replaced: anything but a small
    JSON object naming a known kind is a ConfigError."""
    path = Path(folder) / INFO_FILE
    if not path.is_file():
        return SCALAR
    try:
        info = json.loads(path.read_text(encoding="utf-8")) if path.stat().st_size <= 2**20 else None
    except (ValueError, RecursionError):  # bad JSON or bad UTF-8 (UnicodeDecodeError is a ValueError)
        info = None
    kind = info.get("kind", SCALAR) if isinstance(info, dict) else None
    if kind not in (SCALAR, EMBEDDING):
        raise ConfigError(f"{path} is unreadable or names no reward-model kind ({SCALAR} or {EMBEDDING}); "
                          "pass a checkpoint folder of a reward-model run.")
    return kind


def checkpoint_folder(ref: str | Path) -> Path:
    """``ref`` as a reward-model checkpoint folder; ConfigError if it is not one."""
    folder = Path(str(ref).strip()).expanduser()
    if not str(ref).strip():
        raise ConfigError("No reward model given: pass a reward-model run id or a checkpoint folder.")
    if not folder.is_dir():
        raise ConfigError(f"Reward model {str(ref)!r} is not a checkpoint folder (a run id is resolved to its "
                          "folder before training: rmcore.run_refs).")
    if not (folder / "config.json").is_file():
        raise ConfigError(f"{folder} holds no saved model (no config.json); pass a checkpoint folder.")
    return folder


def load_scorer(folder: str | Path, *, device: Any, trust_remote_code: bool = False, batch_size: int = 16,
                dtype: torch.dtype = torch.float32):
    """The reward callable ``(prompts, completions, references) -> list[float]`` of the reward
    model saved in ``folder``, frozen, stored as ``dtype``, scored in batches on ``device``."""
    from transformers import AutoModel, AutoModelForSequenceClassification

    from rmcore.backbones import _from_pretrained, load_tokenizer
    from rmcore.rewards import RewardModelScorer

    folder = checkpoint_folder(folder)
    kind = saved_kind(folder)
    device = torch.device(device)
    tokenizer = load_tokenizer(str(folder), trust_remote_code=trust_remote_code)
    auto_cls = AutoModel if kind == EMBEDDING else AutoModelForSequenceClassification
    model = _from_pretrained(auto_cls, str(folder), trust_remote_code=trust_remote_code, dtype=dtype)
    model.to(device).requires_grad_(False)
    if kind == EMBEDDING:
        return EmbeddingScorer(model, tokenizer, device, batch_size=batch_size)
    if model.config.num_labels != 1:
        raise ConfigError(f"{folder} has {model.config.num_labels} output labels; a reward model has one.")
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return RewardModelScorer(model, tokenizer, device, batch_size=batch_size)
