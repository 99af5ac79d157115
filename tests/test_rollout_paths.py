"""The two log-prob paths agree (full logits vs the LM head a chunk at a time), the chunked one
uses far less memory, and the decode loop's sparse all-done check changes nothing it returns."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import rmcore.chunked_logprobs as chunked
from rmcore.rollout import Rollout, encode_prompts, response_logprobs, response_mask_from_ids, sample

ROOT = Path(__file__).resolve().parents[1]


def big_vocab_model(vocab: int = 5000, dtype=torch.float64):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=vocab, n_embd=16, n_layer=2, n_head=2, n_positions=64, resid_pdrop=0.0,
                     embd_pdrop=0.0, attn_pdrop=0.0)
    return GPT2LMHeadModel(cfg).to(dtype).eval()


def batch_of(vocab: int, *, shared: bool, seed: int = 0) -> Rollout:
    g = torch.Generator().manual_seed(seed)
    n, p, t = 6, 5, 7
    prompt = torch.randint(0, vocab, (n // 3 if shared else n, p), generator=g)
    if shared:
        prompt = prompt.repeat_interleave(3, 0)              # G = 3 samples per prompt
    prompt_mask = torch.ones(n, p, dtype=torch.long)
    prompt_mask[0, :2] = 0                                   # left padding on some rows
    prompt_mask[1 if not shared else 0:3, :1] = 0
    resp = torch.randint(0, vocab, (n, t), generator=g)
    resp_mask = torch.ones(n, t)
    resp_mask[2, 4:] = 0
    return Rollout(input_ids=torch.cat([prompt, resp], 1),
                   attention_mask=torch.cat([prompt_mask, resp_mask.long()], 1),
                   response_mask=resp_mask, prompt_len=p, completions=[""] * n)


def naive(model, batch: Rollout, temperature: float):
    """log-softmax over the full logits of the whole sequence, in the model's dtype."""
    positions = (batch.attention_mask.cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=positions).logits
    p = batch.prompt_len
    logits = logits[:, p - 1:-1] / temperature
    logp = torch.log_softmax(logits, -1)
    ent = -(logp.exp() * logp).sum(-1)
    return logp.gather(-1, batch.response_ids[..., None]).squeeze(-1), ent


def scores_and_grads(model, batch, temperature):
    model.zero_grad()
    lp, ent, _, lp1 = response_logprobs(model, batch, temperature=temperature, with_entropy=True)
    mask = batch.response_mask
    ((lp * mask).sum() + 0.3 * (ent * mask).sum() + 0.1 * (lp1 * mask).sum()).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return (lp.detach(), ent.detach(), lp1.detach()), grads


@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_chunked_path_equals_the_full_logits_path_values_and_gradients(shared, temperature, monkeypatch):
    model = big_vocab_model()
    batch = batch_of(model.config.vocab_size, shared=shared)
    plain, plain_grads = scores_and_grads(model, batch, temperature)            # one chunk: full logits
    monkeypatch.setattr(chunked, "LOGIT_CHUNK_BYTES", 5 * 5000 * 8)              # 5 positions a chunk
    assert not chunked.fits_one_chunk(model.get_output_embeddings(), 42)
    chunks, chunk_grads = scores_and_grads(model, batch, temperature)
    mask = batch.response_mask.bool()
    for a, b in zip(plain, chunks):
        assert torch.allclose(a[mask], b[mask], atol=1e-6, rtol=0)
    assert plain_grads.keys() == chunk_grads.keys()
    for name in plain_grads:
        assert torch.allclose(plain_grads[name], chunk_grads[name], atol=1e-6, rtol=0), name


@pytest.mark.parametrize("budget", [None, 3 * 5000 * 8])
def test_float64_gradients_are_exact_against_a_naive_reference(budget, monkeypatch):
    """response_logprobs keeps float64 (no cast down to float32), so it can be gradient-checked."""
    if budget:
        monkeypatch.setattr(chunked, "LOGIT_CHUNK_BYTES", budget)
    model = big_vocab_model()
    batch = batch_of(model.config.vocab_size, shared=False)
    lp, ent, _, _ = response_logprobs(model, batch, temperature=0.8, with_entropy=True)
    assert lp.dtype == torch.float64
    mask = batch.response_mask
    grads = torch.autograd.grad(((lp + ent) * mask).sum(), list(model.parameters()))
    ref_lp, ref_ent = naive(model, batch, 0.8)
    ref_grads = torch.autograd.grad(((ref_lp + ref_ent) * mask).sum(), list(model.parameters()))
    assert torch.allclose(lp[mask.bool()], ref_lp[mask.bool()], atol=1e-9, rtol=0)
    for g, r in zip(grads, ref_grads):
        assert torch.allclose(g, r, atol=1e-9, rtol=0)


@pytest.mark.slow
def test_chunked_path_needs_far_less_memory():
    """Peak memory of forward + backward at vocab 151,936, each path in its own process
    (bench/logprob_memory.py; its default size, 16 x 128, measured 10.3 GB full vs 0.57 GB chunked)."""
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "logprob_memory.py"), "--rows", "16", "--tokens", "64",
                          "--chunk-mb", "16"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    print(out.stdout)
    ratio = float(out.stdout.strip().splitlines()[-1].split(":")[-1])
    assert ratio < 0.4


# ----------------------------------------------------------------- decode loop
def old_sample(model, tokenizer, prompt_ids, prompt_mask, *, max_new_tokens, temperature=1.0, top_p=1.0,
               greedy=False, generator=None):
    """The loop before the sparse check: one host sync (`bool(done.all())`) per token."""
    from rmcore.rollout import _sample_top_p, distinct_prompts, prefill

    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    attn = prompt_mask.clone()
    positions = (attn.cumsum(-1) - 1).clamp(min=0)
    shared = distinct_prompts(prompt_ids, prompt_mask)
    if shared is None:
        out = model(input_ids=prompt_ids, attention_mask=attn, position_ids=positions, use_cache=True,
                    logits_to_keep=1)
        next_logits, cache = out.logits, out.past_key_values
    else:
        first, cache = prefill(model, shared)
        next_logits = first.logits
    next_pos = positions[:, -1:] + 1
    done = torch.zeros(prompt_ids.shape[0], dtype=torch.bool)
    tokens = []
    for _ in range(max_new_tokens):
        logits = next_logits[:, -1, :].float()
        tok = logits.argmax(-1) if greedy else _sample_top_p(logits / temperature, top_p, generator)
        tok = torch.where(done, torch.full_like(tok, pad), tok)
        tokens.append(tok)
        in_response = (~done).long()[:, None]
        done |= tok == eos
        if bool(done.all()):
            break
        attn = torch.cat([attn, in_response], 1)
        out = model(input_ids=tok[:, None], attention_mask=attn, position_ids=next_pos, past_key_values=cache,
                    use_cache=True)
        next_logits, cache = out.logits, out.past_key_values
        next_pos = next_pos + 1
    resp = torch.stack(tokens, 1)
    return resp, response_mask_from_ids(resp, eos)


@pytest.mark.parametrize("max_new_tokens", [3, 8, 13, 48])
@pytest.mark.parametrize("mode", ["greedy", "t1", "t0.7-top_p", "global-rng"])
def test_sparse_done_check_gives_the_same_tokens_and_rng_state(mode, max_new_tokens, tiny_lm_path):
    from rmcore.backbones import load_causal_lm

    model, tok = load_causal_lm(tiny_lm_path, device=torch.device("cpu"))
    prompts = ["Fenora Motors reported record sales in Lisbon.", "The cup final ended 3-1.", "Rain is due."]
    ids, mask = encode_prompts(tok, prompts, max_new_tokens=max_new_tokens, model=model)
    ids, mask = ids.repeat_interleave(2, 0), mask.repeat_interleave(2, 0)
    kwargs = dict(max_new_tokens=max_new_tokens, greedy=mode == "greedy",
                  temperature=0.7 if "top_p" in mode else 1.0, top_p=0.9 if "top_p" in mode else 1.0)
    for seed in range(4):
        gens = [torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)]
        if mode == "global-rng":
            gens = [None, None]
        torch.manual_seed(seed)
        with torch.no_grad():
            want, want_mask = old_sample(model, tok, ids, mask, generator=gens[0], **kwargs)
        want_state = (gens[0] or torch.default_generator).get_state()
        torch.manual_seed(seed)
        got = sample(model, tok, ids, mask, generator=gens[1], **kwargs)
        assert torch.equal(got.response_ids, want) and torch.equal(got.response_mask, want_mask)
        assert torch.equal((gens[1] or torch.default_generator).get_state(), want_state)
