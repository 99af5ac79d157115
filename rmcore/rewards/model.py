"""Reward terms that need a model: fluency under the frozen reference LM, and a reward model.

    Fluency(y) = exp( (1/|y|) Σ_t log π_ref(y_t | x, y_<t) )      (inverse perplexity, (0, 1])
    RM(x, y)   = scalar head of a sequence-classification model on x + y

Both scorers wrap models that are already loaded (loading is the backbone/store's job),
put them in eval mode (a frozen scorer must not apply dropout), and batch under
``torch.inference_mode``. Sequences are right-padded, sorted by length so a batch wastes
little padding, and the scores are returned in the caller's order.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import Tensor

from rmcore.context import context_limit
from rmcore.errors import ConfigError

Scorer = Callable[[list[str], list[str]], list[float]]


def fluency_from_logprobs(ref_logprobs: Tensor, mask: Tensor) -> list[float]:
    """Fluency from per-token log-probs the caller already has: exp of the masked token mean.

        Fluency_b = exp( Σ_t mask_bt · ref_logprobs_bt / Σ_t mask_bt )

    ref_logprobs: (B, T) log π_ref of each response token; mask: (B, T), 1 on response tokens.
    Returns B floats in (0, 1]; a row with no response token scores 0.0 (no credit for
    saying nothing). The trainer passes the reference log-probs it computed for the KL
    term, so fluency costs no second forward pass.
    """
    if ref_logprobs.shape != mask.shape or ref_logprobs.dim() != 2:
        raise ValueError(f"ref_logprobs and mask must both be (B, T); got {tuple(ref_logprobs.shape)} "
                         f"and {tuple(mask.shape)}.")
    keep = mask.bool()
    # where(), not multiply: padded positions may hold -inf or NaN, and 0 · -inf is NaN.
    logprobs = torch.where(keep, ref_logprobs.detach().double(), 0.0)  # (B, T)
    counts = keep.sum(dim=1)                                             # (B,)
    means = logprobs.sum(dim=1) / counts.clamp(min=1)                    # (B,)
    fluency = torch.where(counts > 0, means.exp(), 0.0)                  # (B,)
    return [float(value) for value in fluency.tolist()]


class Fluency:
    """Fluency of each completion under a frozen LM: exp(mean token log-prob), in (0, 1].

        r(y) = exp( (1/|y|) Σ_t log p(y_t | x, y_<t) )  = 1 / perplexity(y | x)

    ``scorer(prompts, completions)`` returns the mean token log-prob of each completion given
    its prompt (e.g. ``LMScorer``); a completion with no token gets -inf there, hence 0.0.

    Example:
        >>> Fluency(lambda prompts, completions: [-0.5] * len(prompts))(["p"], ["y"], ["r"])
        [0.6065306597126334]
    """

    def __init__(self, scorer: Scorer) -> None:
        self.scorer = scorer

    def __call__(self, prompts: list[str], completions: list[str], references: list[str]) -> list[float]:
        return [math.exp(mean_logprob) for mean_logprob in self.scorer(prompts, completions)]


def _length_sorted_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (longest first), to waste little padding."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


def _pad_right(sequences: list[list[int]], pad_id: int, device: Any) -> tuple[Tensor, Tensor]:
    """Right-pad token id lists into (B, L) input_ids and attention_mask tensors.

    Right padding keeps absolute position ids correct (GPT-2) without passing position_ids.
    """
    width = max(len(seq) for seq in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)  # (B, L)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)    # (B, L)
    for row, seq in enumerate(sequences):
        input_ids[row, :len(seq)] = torch.tensor(seq, dtype=torch.long)
        attention_mask[row, :len(seq)] = 1
    return input_ids.to(device), attention_mask.to(device)


class LMScorer:
    """Mean token log-prob of each completion given its prompt, under a causal LM.

        s(x, y) = (1/|y|) Σ_t log p(y_t | x, y_<t)

    Token boundary: the prompt and the completion are tokenised separately and their ids
    concatenated (prompt with the tokenizer's special tokens, e.g. a BOS; completion without),
    exactly as the trainer builds its rollouts. Tokenising the joined text instead could merge
    the last prompt token with the first completion token and score a different split.
    An empty prompt is given the BOS (else EOS) token as context, so the first completion
    token has something to be predicted from. A sequence longer than the model's context
    loses prompt tokens from the left (the completion is what we score); a completion that
    alone exceeds the context is cut to fit. A completion with no token scores -inf.

    model: a transformers causal LM (``logits`` of shape (B, L, V)); tokenizer: its tokenizer.
    Tokenizers without a pad token are padded with EOS (padding is masked out anyway).
    """

    def __init__(self, model: Any, tokenizer: Any, device: Any, batch_size: int = 16) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}.")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.device = device
        self.batch_size = batch_size
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.pad_id = pad_id if pad_id is not None else 0
        start_id = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        self.start_id = start_id if start_id is not None else self.pad_id

    def _join(self, prompt_ids: list[int], completion_ids: list[int]) -> tuple[list[int], int]:
        """Token ids of prompt + completion, and how many of them are prompt (context) tokens."""
        prompt_ids = prompt_ids or [self.start_id]
        limit = context_limit(self.model)
        if limit is not None and len(prompt_ids) + len(completion_ids) > limit:
            completion_ids = completion_ids[:limit - 1]
            prompt_ids = prompt_ids[len(prompt_ids) - (limit - len(completion_ids)):]
        return prompt_ids + completion_ids, len(prompt_ids)

    def __call__(self, prompts: list[str], completions: list[str]) -> list[float]:
        if len(prompts) != len(completions):
            raise ValueError(f"Got {len(prompts)} prompts but {len(completions)} completions.")
        if not prompts:
            return []
        prompt_ids = self.tokenizer(list(prompts))["input_ids"]
        completion_ids = self.tokenizer(list(completions), add_special_tokens=False)["input_ids"]
        encoded = [self._join(p, c) for p, c in zip(prompt_ids, completion_ids)]
        scores = [float("-inf")] * len(encoded)
        batches = _length_sorted_batches([len(ids) for ids, _ in encoded], self.batch_size)
        with torch.inference_mode():
            for batch in batches:
                input_ids, attention_mask = _pad_right([encoded[i][0] for i in batch], self.pad_id, self.device)
                logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits.float()  # (b, L, V)
                # Position j predicts token j + 1: log p = logit of that token - logsumexp.
                next_ids = input_ids[:, 1:]                                                     # (b, L-1)
                token_logits = logits[:, :-1].gather(-1, next_ids.unsqueeze(-1)).squeeze(-1)  # (b, L-1)
                logprobs = (token_logits - logits[:, :-1].logsumexp(dim=-1)).double()           # (b, L-1)
                for row, index in enumerate(batch):
                    ids, n_prompt = encoded[index]
                    # Completion tokens sit at positions n_prompt .. len(ids) - 1, predicted
                    # from positions n_prompt - 1 .. len(ids) - 2.
                    completion_logprobs = logprobs[row, n_prompt - 1:len(ids) - 1]
                    if completion_logprobs.numel() > 0:
                        scores[index] = float(completion_logprobs.mean())
        return scores


class RewardModelScorer:
    """Reward of each (prompt, completion) from a trained scalar-head reward model.

        r(x, y) = RM(x ⊕ y)  = the single logit of a ``*ForSequenceClassification`` (num_labels=1)

    The text scored is ``prompt + completion`` (joined as strings, tokenised with the model's
    tokenizer and its special tokens, truncated to the tokenizer's / model's maximum length),
    as reward models are trained on the full text. Batches are right-padded with the model's
    ``config.pad_token_id``, which is how the head finds the last real token; a model with
    no pad token id is scored one sequence at a time, as transformers requires.
    Ref: Ouyang et al. (2022), InstructGPT, arXiv:2203.02155 §3.5.

    Usage (``rm``, ``tok``: a loaded reward model and its tokenizer; the test builds a tiny one):
        RewardModelScorer(rm, tok, "cpu")(["Q: 2+2? A:"], [" 4"], [""])  ->  [one float]
    """

    def __init__(self, model: Any, tokenizer: Any, device: Any, batch_size: int = 16) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}.")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.device = device
        self.pad_id = model.config.pad_token_id
        self.batch_size = batch_size if self.pad_id is not None else 1
        fallback = [tokenizer.bos_token_id, tokenizer.eos_token_id, self.pad_id, 0]
        self.empty_id = next(token for token in fallback if token is not None)

    def _max_length(self) -> int | None:
        limits = [context_limit(self.model)]
        tokenizer_limit = getattr(self.tokenizer, "model_max_length", None)
        # Tokenizers without a known limit report a huge sentinel (int(1e30)); ignore it.
        if tokenizer_limit is not None and tokenizer_limit < 1_000_000:
            limits.append(tokenizer_limit)
        known = [limit for limit in limits if limit is not None]
        return min(known) if known else None

    def __call__(self, prompts: list[str], completions: list[str], references: list[str]) -> list[float]:
        texts = [prompt + completion for prompt, completion in zip(prompts, completions, strict=True)]
        max_length = self._max_length()
        if not texts:
            return []
        encoded = self.tokenizer(texts, truncation=max_length is not None, max_length=max_length)["input_ids"]
        # An empty text still needs one token for the model to read.
        encoded = [ids or [self.empty_id] for ids in encoded]
        scores = [0.0] * len(texts)
        pad_id = self.pad_id if self.pad_id is not None else 0
        with torch.inference_mode():
            for batch in _length_sorted_batches([len(ids) for ids in encoded], self.batch_size):
                input_ids, attention_mask = _pad_right([encoded[i] for i in batch], pad_id, self.device)
                logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits  # (b, 1)
                for row, index in enumerate(batch):
                    scores[index] = float(logits[row, 0].float())
        return scores
