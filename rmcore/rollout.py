"""Batches of prompt + response tokens: sampling with a KV cache, and scoring them.

Sampling is our own loop rather than `generate()`: the position ids and masks it uses are
exactly those `response_logprobs` uses afterwards, so on-policy log-probs recomputed for the
loss match the sampling distribution (PPO's ratio is 1 before the first update), and the
loop costs little beyond the model calls. Layout of every batch:

    input_ids  = [left-padded prompt (P) | right-padded response (T)]     # (N, P + T)
    response_mask is 1 on response tokens up to and including the first EOS  # (N, T)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from rmcore.chunked_logprobs import backbone_and_head, fits_one_chunk, head_logprobs, logits_logprobs
from rmcore.context import context_limit
from rmcore.errors import ConfigError

# Sampling checks whether every row has ended once per this many tokens: each check is a
# host-device sync, which per token stalls a GPU's queue of kernels.
DONE_CHECK_EVERY = 8


@dataclass
class Rollout:
    input_ids: Tensor       # (N, P+T)
    attention_mask: Tensor  # (N, P+T), 0 on prompt padding and after EOS
    response_mask: Tensor   # (N, T) float
    prompt_len: int         # P
    completions: list[str]  # decoded responses, EOS and padding removed

    @property
    def response_ids(self) -> Tensor:
        return self.input_ids[:, self.prompt_len:]  # (N, T)


def text_mask(batch: Rollout, eos_token_id: int | None) -> Tensor:
    """(N, T) response_mask without the EOS that ended each finished sample: the tokens of the
    completion's text. The loss trains the EOS (when to stop is learnt), but a text score such
    as fluency must not count it: an EOS-only answer would earn p_ref(EOS | x) for saying nothing."""
    if eos_token_id is None:
        return batch.response_mask
    return batch.response_mask * (batch.response_ids != eos_token_id)


def encode_prompts(tokenizer, prompts: list[str], *, max_new_tokens: int, model=None,
                   device: torch.device | None = None) -> tuple[Tensor, Tensor]:
    """Left-padded prompt ids and mask, (B, P); long prompts keep their end (the 'TL;DR:')."""
    limit = context_limit(model) if model is not None else None
    if limit is not None and max_new_tokens >= limit:
        raise ConfigError(f"max_new_tokens ({max_new_tokens}) must be below the model's context "
                          f"length ({limit}) to leave room for the prompt.")
    max_prompt = (limit - max_new_tokens) if limit is not None else None
    rows = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    if max_prompt is not None:
        rows = [r[-max_prompt:] for r in rows]
    return _pad(rows, tokenizer.pad_token_id, left=True, device=device)


def encode_pairs(tokenizer, prompts: list[str], completions: list[str], *, model=None,
                 max_new_tokens: int = 64, device: torch.device | None = None) -> Rollout:
    """Teacher-forcing batch: prompt + ' completion' + EOS (MLE references, DPO pairs)."""
    prompt_ids, prompt_mask = encode_prompts(tokenizer, prompts, max_new_tokens=max_new_tokens,
                                             model=model, device=device)
    eos = tokenizer.eos_token_id
    rows = [(tokenizer(" " + c.strip(), add_special_tokens=False)["input_ids"])[: max_new_tokens - 1] + [eos]
            for c in completions]
    resp_ids, resp_mask = _pad(rows, tokenizer.pad_token_id, left=False, device=device)
    return Rollout(input_ids=torch.cat([prompt_ids, resp_ids], 1),
                   attention_mask=torch.cat([prompt_mask, resp_mask], 1),
                   response_mask=resp_mask.float(), prompt_len=prompt_ids.shape[1],
                   completions=[c.strip() for c in completions])


@torch.no_grad()  # not inference_mode: these tensors feed the autograd update later
def sample(model, tokenizer, prompt_ids: Tensor, prompt_mask: Tensor, *, max_new_tokens: int,
           temperature: float = 1.0, top_p: float = 1.0, greedy: bool = False,
           generator: torch.Generator | None = None) -> Rollout:
    """Sample one response per row of prompt_ids (repeat rows for G samples per prompt)."""
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    n = prompt_ids.shape[0]
    attn = prompt_mask.clone()
    positions = (attn.cumsum(-1) - 1).clamp(min=0)                       # (N, P)
    shared = distinct_prompts(prompt_ids, prompt_mask)
    if shared is None:
        out = model(input_ids=prompt_ids, attention_mask=attn, position_ids=positions, use_cache=True,
                    logits_to_keep=1)
        next_logits, cache = out.logits, out.past_key_values               # (N, 1, V)
    else:  # G samples per prompt: each distinct prompt runs once
        first, cache = prefill(model, shared)
        next_logits = first.logits                                         # (N, 1, V)
    next_pos = positions[:, -1:] + 1                                       # (N, 1)
    done = torch.zeros(n, dtype=torch.bool, device=prompt_ids.device)
    rng = None if greedy else _sampling_rng(generator, prompt_ids.device)
    tokens, all_done, rng_states = [], [], []  # the last two since the last check
    for step in range(max_new_tokens):
        logits = next_logits[:, -1, :].float()                             # (N, V)
        tok = logits.argmax(-1) if greedy else _sample_top_p(logits / temperature, top_p, generator)
        tok = torch.where(done, torch.full_like(tok, pad), tok)
        tokens.append(tok)
        in_response = (~done).long()[:, None]  # the token just drawn, EOS included, is attended to
        done |= tok == eos
        all_done.append(done.all())                                        # stays on the device
        rng_states += [rng.get_state()] if rng is not None else []
        if (step + 1) % DONE_CHECK_EVERY == 0 or step + 1 == max_new_tokens:
            # One host sync per DONE_CHECK_EVERY tokens instead of per token. The steps drawn
            # after every row was done are dropped, and the RNG goes back to where it stood
            # then: the same rollout, and the same generator state, as stopping at once.
            finished = torch.stack(all_done).nonzero()
            if len(finished):
                stop = int(finished[0])                                    # index in this window
                del tokens[len(tokens) - len(all_done) + stop + 1:]
                if rng is not None:
                    rng.set_state(rng_states[stop])
                break
            all_done, rng_states = [], []
        if step + 1 == max_new_tokens:  # nothing reads the logits after the last token
            break
        attn = torch.cat([attn, in_response], 1)
        out = model(input_ids=tok[:, None], attention_mask=attn, position_ids=next_pos,
                    past_key_values=cache, use_cache=True)
        next_logits, cache = out.logits, out.past_key_values
        next_pos = next_pos + 1
    resp = torch.stack(tokens, 1)                                          # (N, T)
    resp_mask = response_mask_from_ids(resp, eos)
    completions = tokenizer.batch_decode(resp.masked_fill(resp_mask == 0, pad), skip_special_tokens=True)
    return Rollout(input_ids=torch.cat([prompt_ids, resp], 1),
                   attention_mask=torch.cat([prompt_mask, resp_mask.long()], 1),
                   response_mask=resp_mask, prompt_len=prompt_ids.shape[1],
                   completions=[c.strip() for c in completions])


def _sampling_rng(generator: torch.Generator | None, device: torch.device) -> torch.Generator | None:
    """The generator torch.multinomial draws from: the one given, else the device's default."""
    if generator is not None:
        return generator
    if device.type == "cpu":
        return torch.default_generator
    if device.type == "cuda":
        return torch.cuda.default_generators[device.index if device.index is not None else torch.cuda.current_device()]
    return None  # another backend's default RNG: left as the extra draws leave it


def response_mask_from_ids(resp: Tensor, eos_id: int) -> Tensor:
    """1.0 on tokens up to and including the first EOS, 0 after it.  (N, T)"""
    is_eos = (resp == eos_id).long()
    after_eos = (is_eos.cumsum(1) - is_eos) > 0  # strictly after the first EOS
    return (~after_eos).float()


def response_logprobs(model, batch: Rollout, *, temperature: float = 1.0, with_entropy: bool = False,
                      with_hidden: bool = False):
    """Per-token log π(y_t | x, y_<t) of the batch's response tokens under `model`.

    Logits are divided by the sampling temperature, so the log-probs are those of the
    distribution the tokens were drawn from (as TRL does for GRPO/PPO ratios).
    Returns (logprobs (N,T), entropy (N,T) or None, hidden (N,T,H) or None, logits_t1 (N,T)).
    The last item is log-probs at temperature 1 (fluency is a property of the text).
    On a big vocabulary the backbone gives the last hidden states and the LM head scores them
    a chunk at a time (rmcore.chunked_logprobs): the (N, T, V) logits never exist at once.
    """
    parts = backbone_and_head(model)
    n, t = batch.response_ids.shape
    kwargs = dict(temperature=temperature, with_entropy=with_entropy)
    # Logits that fit in one chunk take the model's own forward, the path this always was
    # (same numbers, bit for bit); so does a model whose logits are not head(hidden).
    if parts is None or fits_one_chunk(parts[1], n * t):
        logits, hidden = _response_logits(model, batch, with_hidden=with_hidden)
        logprobs, entropy, logprobs_t1 = logits_logprobs(logits, batch.response_ids, **kwargs)
        return logprobs, entropy, hidden, logprobs_t1
    backbone, head = parts
    hidden = _response_hidden(backbone, batch)                                # (N, T, H)
    logprobs, entropy, logprobs_t1 = head_logprobs(head, hidden, batch.response_ids, **kwargs)
    return logprobs, entropy, hidden if with_hidden else None, logprobs_t1


def _response_hidden(backbone, batch: Rollout) -> Tensor:
    """The backbone's last-layer hidden states at the positions that predict y_0 … y_{T-1}: (N, T, H)."""
    positions = (batch.attention_mask.cumsum(-1) - 1).clamp(min=0)
    p, t = batch.prompt_len, batch.input_ids.shape[1] - batch.prompt_len
    mask = batch.attention_mask
    shared = distinct_prompts(batch.input_ids[:, :p], mask[:, :p])
    if shared is None:
        out = backbone(input_ids=batch.input_ids, attention_mask=mask, position_ids=positions, use_cache=False)
        return out.last_hidden_state[:, p - 1:-1, :]
    # G samples per prompt: the prompt runs once per distinct prompt and the responses read
    # its keys and values from the cache; same numbers as the full forward, and gradients
    # reach the prompt positions through the cache.
    first = _distinct_forward(backbone, shared)
    hidden = [first.last_hidden_state[:, -1:, :].index_select(0, shared.inverse)]  # (N, 1, H)
    if t > 1:  # y_0 … y_{T-2} predict y_1 … y_{T-1}; the last token predicts nothing we score
        out = backbone(input_ids=batch.input_ids[:, p:-1], attention_mask=mask[:, :-1],
                       position_ids=positions[:, p:-1], past_key_values=first.past_key_values, use_cache=True)
        hidden.append(out.last_hidden_state)
    return torch.cat(hidden, 1)


def _response_logits(model, batch: Rollout, *, with_hidden: bool) -> tuple[Tensor, Tensor | None]:
    """Full logits (N, T, V) predicting y_t, and the hidden states (N, T, H) when asked for."""
    positions = (batch.attention_mask.cumsum(-1) - 1).clamp(min=0)
    p, t = batch.prompt_len, batch.input_ids.shape[1] - batch.prompt_len
    mask = batch.attention_mask
    shared = distinct_prompts(batch.input_ids[:, :p], mask[:, :p])
    if shared is None:
        # Vocabulary logits only where they are read (positions P-1 … P+T-2): on a small model
        # the LM head over every prompt position costs as much as the rest of the forward pass.
        out = model(input_ids=batch.input_ids, attention_mask=mask, position_ids=positions,
                    output_hidden_states=with_hidden, use_cache=False, logits_to_keep=t + 1)
        logits = [out.logits[:, :-1, :]]
        hidden = [out.hidden_states[-1][:, p - 1:-1, :]] if with_hidden else []
    else:  # G samples per prompt: see _response_hidden
        first, cache = prefill(model, shared, with_hidden=with_hidden)
        logits, hidden = [first.logits], [first.hidden] if with_hidden else []
        if t > 1:
            out = model(input_ids=batch.input_ids[:, p:-1], attention_mask=mask[:, :-1],
                        position_ids=positions[:, p:-1], past_key_values=cache, use_cache=True,
                        output_hidden_states=with_hidden)
            logits.append(out.logits)
            hidden += [out.hidden_states[-1]] if with_hidden else []
    return torch.cat(logits, 1), torch.cat(hidden, 1) if with_hidden else None


@dataclass
class SharedPrompts:
    """The distinct rows of a prompt batch, and which of them each row is."""
    ids: Tensor      # (U, P) distinct prompts, left-padded
    mask: Tensor     # (U, P)
    inverse: Tensor  # (N,) row i of the batch is distinct prompt inverse[i]


@dataclass
class Prefill:
    logits: Tensor         # (N, 1, V) at the last prompt position: predicts the first response token
    hidden: Tensor | None  # (N, 1, H) last-layer hidden state there, when asked for


def distinct_prompts(prompt_ids: Tensor, prompt_mask: Tensor) -> SharedPrompts | None:
    """The batch's distinct prompts, or None when no two rows share one. prompt_ids, mask: (N, P)."""
    rows = torch.cat([prompt_ids, prompt_mask], 1)                         # (N, 2P)
    distinct, inverse = torch.unique(rows, dim=0, return_inverse=True)     # (U, 2P), (N,)
    if distinct.shape[0] == rows.shape[0]:
        return None
    p = prompt_ids.shape[1]
    return SharedPrompts(ids=distinct[:, :p], mask=distinct[:, p:], inverse=inverse)


def prefill(model, prompts: SharedPrompts, *, with_hidden: bool = False) -> tuple[Prefill, Any]:
    """Run each distinct prompt once; return next-token logits and a KV cache with one entry per row.

    A rollout repeats each prompt G times (prompt-major), and running the copies through the
    model is G× the work for the same keys and values. The distinct prompts' cache is
    index-selected back to the N rows: a differentiable gather, so the gradients of the G rows
    sum into their shared prompt exactly as they would over G separate copies.
    """
    out = _distinct_forward(model, prompts, logits_to_keep=1, output_hidden_states=with_hidden)
    logits = out.logits.index_select(0, prompts.inverse)                   # (N, 1, V)
    hidden = out.hidden_states[-1][:, -1:, :].index_select(0, prompts.inverse) if with_hidden else None
    return Prefill(logits=logits, hidden=hidden), out.past_key_values


def _distinct_forward(net, prompts: SharedPrompts, **kwargs):
    """`net` (the model or its backbone) over the distinct prompts, its cache gathered to N rows."""
    positions = (prompts.mask.cumsum(-1) - 1).clamp(min=0)                 # (U, P)
    out = net(input_ids=prompts.ids, attention_mask=prompts.mask, position_ids=positions, use_cache=True,
              **kwargs)
    out.past_key_values.reorder_cache(prompts.inverse)                     # U → N rows
    return out


def _sample_top_p(logits: Tensor, top_p: float, generator: torch.Generator | None) -> Tensor:
    probs = torch.softmax(logits, -1)                                      # (N, V)
    if top_p < 1.0:
        sorted_p, order = probs.sort(-1, descending=True)
        # drop a token once the mass before it already reaches top_p (the first always stays)
        drop = (sorted_p.cumsum(-1) - sorted_p) >= top_p
        sorted_p = sorted_p.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def _pad(rows: list[list[int]], pad_id: int, *, left: bool, device) -> tuple[Tensor, Tensor]:
    width = max(1, max(len(r) for r in rows))
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if r:
            sl = slice(width - len(r), width) if left else slice(0, len(r))
            ids[i, sl] = torch.tensor(r, dtype=torch.long)
            mask[i, sl] = 1
    return ids.to(device), mask.to(device)
