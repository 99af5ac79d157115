"""Log-probs of the chosen tokens from last-layer hidden states, a chunk of positions at a time.

The (N, T, V) logits are what bound the batch on a real vocabulary: Qwen2.5-0.5B's 151,936
entries × 64 samples × 128 tokens are 5 GB in fp32, and the temperature copy, log_softmax,
entropy and their gradients each add as much again. So the LM head runs over a chunk of
positions at a time, and when gradients are needed each chunk is checkpointed: backward
recomputes that chunk's logits instead of keeping every chunk's (the idea of Liger-Kernel's
fused linear cross-entropy, in plain PyTorch). Logits that fit in one chunk never come here:
rollout.response_logprobs scores them from the model's own forward, as it always did.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

# fp32 logits per chunk. A chunk's temperature copies, log_softmax, entropy and their
# gradients hold about 8× this at their peak: bench/logprob_memory.py measured 0.57 GB for a
# whole forward + backward at 64 MB (16 × 128 tokens, 152k vocabulary; full logits 10.3 GB),
# 0.68 GB at 64 × 128. A chunk is still ~110 positions, one efficient head matmul.
LOGIT_CHUNK_BYTES = 64 * 2**20

# Config fields of models whose logits are not head(last hidden state): Gemma 2 soft-caps
# them (tanh), Cohere multiplies by logit_scale, Granite divides by logits_scaling. Log-probs
# computed from the bare head would be of another distribution, so those models take the
# full-logits path.
_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling")


def backbone_and_head(model) -> tuple[torch.nn.Module, torch.nn.Linear] | None:
    """(backbone, LM head) when the model's logits are exactly head(backbone(...).last_hidden_state).

    None for remote code (its forward may do anything after the head), for a head that is not
    an nn.Linear (a LoRA-wrapped head, say), and for a model without a separate backbone.
    A LoRA policy (rmcore.lora) is its base model with the adapters inside its modules, and
    its forward is the base model's, so its backbone is the base model's too.
    """
    from rmcore.lora import is_adapter_model

    if is_adapter_model(model) and not model.active_peft_config.is_prompt_learning:
        model = model.get_base_model()
    if type(model).__module__.split(".")[0] != "transformers":
        return None
    if any(getattr(model.config, name, None) for name in _LOGIT_TRANSFORMS):
        return None
    get_head = getattr(model, "get_output_embeddings", None)
    head = get_head() if get_head is not None else None
    backbone = getattr(model, "base_model", model)
    if type(head) is not torch.nn.Linear or backbone is model:
        return None
    return backbone, head


def logit_scores(logits: Tensor, tokens: Tensor, *, temperature: float, with_entropy: bool) -> list[Tensor]:
    """[log-probs at temperature, log-probs at 1 (only when temperature ≠ 1), entropy (when asked)].

    logits: (..., V) predicting tokens (...). In at least fp32 whatever the model's dtype: a
    bf16 head output (autocast) loses log_softmax's precision, and a float64 model keeps
    float64 so it can be gradient-checked.
    """
    from rmcore.losses import entropy_from_logits, token_logprobs

    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    scores = [token_logprobs(logits / temperature, tokens)]
    if temperature != 1.0:
        scores.append(token_logprobs(logits, tokens))
    if with_entropy:
        scores.append(entropy_from_logits(logits / temperature))
    return scores


def head_logprobs(head: torch.nn.Linear, hidden: Tensor, tokens: Tensor, *, temperature: float = 1.0,
                  with_entropy: bool = False):
    """Score tokens through the LM head without holding all (N, T, V) logits at once.

    hidden: (N, T, H) last-layer states, hidden[:, t] predicts tokens[:, t]; tokens: (N, T).
    Returns (logprobs (N,T), entropy (N,T) or None, logprobs at temperature 1 (N,T)), equal
    to logits_logprobs(head(hidden), ...). Chunks hold LOGIT_CHUNK_BYTES of logits at most.
    """
    n, t, h = hidden.shape
    flat_hidden, flat_tokens = hidden.reshape(n * t, h), tokens.reshape(n * t)   # (N·T, H), (N·T,)
    per_chunk = _positions_per_chunk(head)
    needs_grad = torch.is_grad_enabled() and (hidden.requires_grad or head.weight.requires_grad)

    def chunk_scores(h_chunk: Tensor, y_chunk: Tensor) -> Tensor:
        return torch.stack(logit_scores(head(h_chunk), y_chunk, temperature=temperature,
                                        with_entropy=with_entropy))              # (k, chunk)

    parts = []
    for start in range(0, n * t, per_chunk):
        h_chunk, y_chunk = flat_hidden[start:start + per_chunk], flat_tokens[start:start + per_chunk]
        parts.append(checkpoint(chunk_scores, h_chunk, y_chunk, use_reentrant=False) if needs_grad
                     else chunk_scores(h_chunk, y_chunk))
    scores = torch.cat(parts, 1)                                                  # (k, N·T)
    return _unpack(list(scores.reshape(-1, n, t)), temperature=temperature, with_entropy=with_entropy)


def fits_one_chunk(head: torch.nn.Linear, positions: int) -> bool:
    """Whether the logits of `positions` positions fit in LOGIT_CHUNK_BYTES."""
    return positions <= _positions_per_chunk(head)


def _positions_per_chunk(head: torch.nn.Linear) -> int:
    vocab_bytes = head.out_features * max(4, head.weight.element_size())        # one position's logits
    return max(1, LOGIT_CHUNK_BYTES // vocab_bytes)


def logits_logprobs(logits: Tensor, tokens: Tensor, *, temperature: float = 1.0, with_entropy: bool = False):
    """head_logprobs' triple from the full logits (N, T, V) predicting tokens (N, T)."""
    scores = logit_scores(logits, tokens, temperature=temperature, with_entropy=with_entropy)
    return _unpack(scores, temperature=temperature, with_entropy=with_entropy)


def _unpack(scores: list[Tensor], *, temperature: float, with_entropy: bool):
    logprobs = scores.pop(0)
    logprobs_t1 = scores.pop(0) if temperature != 1.0 else logprobs
    entropy = scores.pop(0) if with_entropy else None
    return logprobs, entropy, logprobs_t1
