"""The built-in tiny-gpt2's definition: its name, shape, recipe version, tokenizer and model.

Kept apart from rmcore.backbones (loading any model) and rmcore.warmstart (building this one)
so that both can read it without importing each other. Heavy imports stay inside functions.
"""
from __future__ import annotations

from pathlib import Path

BUILTIN = "tiny-gpt2"
EOS, PAD = "<|endoftext|>", "<|pad|>"

# Shape of the built-in model: 4 layers × 192 wide, MLP 512 wide, 1k BPE vocabulary, 256
# positions (synth-news prompts are ≤ ~135 tokens; with up to 64 new tokens that leaves room).
# A 1k vocabulary splits the generated names into syllable tokens that recur in every
# document, so the model learns to copy them within its warm-start (with 4k most names are
# one rare token each, and copying came far later); copying is attention's work, so the MLP
# is narrower than GPT-2's 4× (768), which made the build a fifth cheaper and copied as well.
# The measured table is in the README (The built-in model and the one-click experiments).
TINY_GPT2_SHAPE = dict(n_layer=4, n_embd=192, n_head=4, n_inner=512, n_positions=256, vocab_size=1024)
# Bumped whenever the shape or the warm-start changes: the cache folder is named after it,
# so a machine holding an older build makes the new one instead of reusing the old.
BUILTIN_RECIPE = 2


def builtin_dir(cache_dir: str | Path) -> Path:
    """Folder of the current built-in model's build inside a model cache."""
    return Path(cache_dir) / f"{BUILTIN}-v{BUILTIN_RECIPE}"


def train_tokenizer(texts: list[str], vocab_size: int):
    """Byte-level BPE (GPT-2's scheme) trained on `texts`, wrapped for transformers."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=2, special_tokens=[EOS, PAD],
                            show_progress=False)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token=EOS, eos_token=EOS, pad_token=PAD)
    tokenizer.padding_side = "left"
    return tokenizer


def new_gpt2(tokenizer, *, n_layer: int, n_embd: int, n_head: int, n_positions: int, n_inner: int | None = None,
             seed: int = 0):
    """A randomly initialised GPT-2 whose bos/eos/pad ids are the tokenizer's own."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=len(tokenizer), n_layer=n_layer, n_embd=n_embd, n_head=n_head,
                        n_positions=n_positions, n_inner=n_inner, bos_token_id=tokenizer.bos_token_id,
                        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return GPT2LMHeadModel(config)


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())
