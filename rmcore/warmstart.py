"""Build the built-in `tiny-gpt2`: tokenizer, random GPT-2, then an MLE warm-start.

A random model's samples are noise, and RL from noise on a CPU teaches nothing in a class
hour; so the built-in backbone is first fitted by maximum likelihood on synth-news
summaries (loss on the summary tokens only, like SFT), which makes its samples readable
and leaves ROUGE headroom for the RL losses to climb. The result and its greedy eval
ROUGE-L are written beside the weights (`warmstart.json`).
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Callable

import torch

from rmcore.backbones import TINY_GPT2_SHAPE, count_parameters, new_gpt2, train_tokenizer
from rmcore.events import ProgressReport

WARMSTART_STEPS = 150
WARMSTART_BATCH = 32
WARMSTART_LR = 2e-3


def build_tiny_gpt2(out_dir: Path, *, on_progress: Callable | None = None, seed: int = 0,
                    steps: int = WARMSTART_STEPS, shape: dict | None = None) -> dict:
    """Train tokenizer and model, save both to out_dir (safetensors); return the build report."""
    from rmcore.data import load_task

    report = on_progress or (lambda r: None)
    started = time.time()
    report(ProgressReport("build-backbone", 0.0, "Building tiny-gpt2: training the tokenizer"))
    task = load_task("synth-news", seed=seed)
    texts = [e.prompt for e in task.train] + [e.reference for e in task.train]
    shape = {**TINY_GPT2_SHAPE, **(shape or {})}
    tokenizer = train_tokenizer(texts, vocab_size=shape.pop("vocab_size"))
    model = new_gpt2(tokenizer, seed=seed, **shape)

    def on_fraction(frac: float) -> None:
        report(ProgressReport("warm-start", frac, f"Building tiny-gpt2: warm-start {frac:.0%}"))

    mle_fit(model, tokenizer, task.train, steps=steps, seed=seed, on_fraction=on_fraction)
    report(ProgressReport("warm-start", 1.0, "Building tiny-gpt2: measuring eval ROUGE-L"))
    rouge_l = greedy_rouge(model, tokenizer, task.eval[:100])
    info = {"parameters": count_parameters(model), "warmstart_steps": steps, "batch": WARMSTART_BATCH,
            "eval_rougeL_greedy": round(rouge_l, 4), "build_seconds": round(time.time() - started, 1),
            "seed": seed}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    (out_dir / "warmstart.json").write_text(json.dumps(info, indent=2))
    report(ProgressReport("build-backbone", 1.0, f"Built tiny-gpt2 (eval ROUGE-L {rouge_l:.3f})"))
    return info


def mle_fit(model, tokenizer, examples, *, steps: int, seed: int, batch_size: int = WARMSTART_BATCH,
            lr: float = WARMSTART_LR, on_fraction: Callable[[float], None] | None = None) -> list[float]:
    """Cosine-scheduled AdamW on -log p(reference | prompt); returns the loss per step."""
    from rmcore.losses import mle_loss
    from rmcore.rollout import encode_pairs, response_logprobs

    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps))))
    model.train()
    losses = []
    for step in range(steps):
        idx = torch.randint(len(examples), (batch_size,), generator=gen).tolist()
        batch = encode_pairs(tokenizer, [examples[i].prompt for i in idx],
                             [examples[i].reference for i in idx], model=model)
        logprobs, *_ = response_logprobs(model, batch)
        loss, _ = mle_loss(logprobs, batch.response_mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if on_fraction and (step % 10 == 0 or step == steps - 1):
            on_fraction((step + 1) / steps)
    model.eval()
    return losses


def greedy_rouge(model, tokenizer, examples, *, max_new_tokens: int = 48, batch_size: int = 50) -> float:
    """Mean ROUGE-L F1 of greedy completions against the references."""
    from rmcore.rewards import Rouge
    from rmcore.rollout import encode_prompts, sample

    rouge, scores = Rouge("rougeL"), []
    for i in range(0, len(examples), batch_size):
        chunk = examples[i:i + batch_size]
        ids, mask = encode_prompts(tokenizer, [e.prompt for e in chunk], max_new_tokens=max_new_tokens,
                                   model=model)
        out = sample(model, tokenizer, ids, mask, max_new_tokens=max_new_tokens, greedy=True)
        scores += rouge([e.prompt for e in chunk], out.completions, [e.reference for e in chunk])
    return sum(scores) / max(1, len(scores))
