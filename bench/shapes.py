"""Random-init models with the shapes of real ones, for bench/vs_trl.py: no download, no hub.

Each shape is a function `seed -> (model, tokenizer)` in SHAPES. The tokenizer is a byte-level
BPE trained on synth-news and filled up to exactly the model's vocabulary, so every id a random
model samples decodes to text (ROUGE needs words) and the bench can put its EOS one past the
vocabulary. Throughput depends on the shapes, not on what the tokens mean.
"""
from __future__ import annotations

import json

import torch


def gpt2_124m_shape(seed: int):
    """GPT2Config() (124M: 12 layers x 768, 50,257 tokens), random init, no download."""
    from transformers import GPT2Config, GPT2LMHeadModel

    size = GPT2Config().vocab_size
    tokenizer = gpt2_like_tokenizer(size, seed)
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=size, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                        pad_token_id=tokenizer.pad_token_id, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return GPT2LMHeadModel(config), tokenizer


def qwen_0_5b_config(vocab_size: int = 151_936, pad_token_id: int = 0, eos_token_id: int = 0):
    """The dimensions of Qwen/Qwen2.5-0.5B's config.json (494M parameters, 136M of them the tied embedding).

    transformers 5 moved `rope_theta` into `rope_parameters`; q/k/v biases are built into Qwen2
    itself. Sliding-window attention is off in the real model too.
    """
    from transformers import Qwen2Config

    return Qwen2Config(vocab_size=vocab_size, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                       num_attention_heads=14, num_key_value_heads=2, hidden_act="silu",
                       max_position_embeddings=32_768, rms_norm_eps=1e-6, tie_word_embeddings=True,
                       rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0},
                       use_sliding_window=False, attention_dropout=0.0,
                       bos_token_id=eos_token_id, eos_token_id=eos_token_id, pad_token_id=pad_token_id)


def qwen_0_5b_shape(seed: int):
    """Qwen2.5-0.5B's shape, random init. The tokenizer is filled to the full 151,936 ids (the
    real tokenizer has 151,665 plus padding rows): a random model samples from all of them, and
    each must decode to text."""
    from transformers import Qwen2ForCausalLM

    tokenizer = gpt2_like_tokenizer(151_936, seed)
    torch.manual_seed(seed)
    config = qwen_0_5b_config(len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                              eos_token_id=tokenizer.eos_token_id)
    return Qwen2ForCausalLM(config), tokenizer


SHAPES = {"gpt2-124m-shape": gpt2_124m_shape, "qwen-0.5b-shape": qwen_0_5b_shape}


def gpt2_like_tokenizer(size: int, seed: int = 0):
    """A byte-level BPE trained on synth-news, filled up to exactly `size` tokens.

    The corpus runs out of merges long before GPT-2's 50,257 tokens, so the vocabulary is
    filled with concatenations of learnt tokens: they decode to text like any token, so every
    id a random model samples turns into words (encoding never produces them).
    """
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    from rmcore.backbones import EOS, PAD, train_tokenizer
    from rmcore.data import load_task

    task = load_task("synth-news", seed=seed)
    base = train_tokenizer([e.prompt for e in task.train] + [e.reference for e in task.train], vocab_size=size)
    spec = json.loads(base.backend_tokenizer.to_str())
    vocab = spec["model"]["vocab"]
    learnt = [t for t in sorted(vocab, key=vocab.get) if t not in (EOS, PAD)]
    pairs = (a + b for a in learnt for b in learnt)
    while len(vocab) < size:
        vocab.setdefault(next(pairs), len(vocab))
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(json.dumps(spec)), bos_token=EOS,
                                   eos_token=EOS, pad_token=PAD)
