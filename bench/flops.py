"""Model FLOPs utilisation (MFU) for bench/vs_trl.py: model FLOPs per second / the device's peak.

Model FLOPs count the work of one GRPO step, the same for every engine, with the usual
approximation of 2·N FLOPs per token for a forward pass and 6·N for forward + backward
(Kaplan et al. 2020, arXiv:2001.08361 §2.1; the MFU of PaLM, arXiv:2204.02311 App. B).
N is the non-embedding parameter count, so the attention scores (12·L·d·T per token) and the
LM head (d·V per token, 39M for GPT-2, 136M for Qwen2.5-0.5B) are left out: a conservative MFU.
"""
from __future__ import annotations

import re
import statistics
from pathlib import Path

import torch

# Dense bf16 tensor-core peaks from NVIDIA's datasheets (their "with sparsity" figures are
# twice these). First match wins, so the specific names come before the general ones.
PEAK_BF16_TFLOPS = (
    (r"H200 NVL", 835.0),
    (r"H200", 989.0),              # SXM (and GH200)
    (r"H100 NVL", 835.0),
    (r"H100.*PCIe", 756.0),
    (r"H100", 989.0),              # SXM (HBM3)
    (r"A100", 312.0),              # SXM and PCIe
    (r"L40S", 362.0),
    (r"\bL4\b", 121.0),
)


def peak_tflops(device_name: str) -> float | None:
    """Dense bf16 peak of a GPU by its torch.cuda.get_device_name(); None if not in the table."""
    for pattern, tflops in PEAK_BF16_TFLOPS:
        if re.search(pattern, device_name):
            return tflops
    return None


def model_flops_per_step(n_params: int, sequences: int, prompt_tokens: float, completion_tokens: float) -> float:
    """FLOPs of one GRPO step over `sequences` rows of prompt + completion tokens.

        F = (2 [sampling] + 2 [reference forward] + 6 [update forward + backward]) · N · B · (P + C)

    What each engine runs per step (vs_trl.py sets both so; KL β > 0 needs the reference):
      rmcore:          sampling (each distinct prompt prefilled once, its KV cache shared by its
                       G rows), the reference forward (prompt shared too), one update forward +
                       backward whose detached log-probs are the old ones (no extra pass);
      TRL, generate(): generate() over G copies of each prompt, the reference forward, the update
                       forward + backward (old log-probs skipped: num_iterations = 1 and one
                       generation per optimizer step);
      TRL, vLLM:       vLLM generation (its prefix cache shares prompts), then as above; its
                       importance-sampling correction is off, as it would add an old-log-prob pass.
    Prompt sharing and padding are how an engine does the work, not the work, so F is the
    same for all three and the ratio of MFUs equals the ratio of completions/s.
    """
    return (2 + 2 + 6) * n_params * sequences * (prompt_tokens + completion_tokens)


def mfu(flops_per_step: float, step_s: float, peak: float | None) -> float | None:
    """Fraction of the peak (in TFLOPs) that the model FLOPs reach; None without a peak."""
    if peak is None or not step_s > 0:
        return None
    return flops_per_step / step_s / (peak * 1e12)


def parameter_counts(config) -> tuple[int, int]:
    """(all parameters, non-embedding parameters) of a transformers config, built on the meta
    device (no memory, no init). Tied weights count once; token and position embeddings and an
    untied LM head are the embedding part."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    embedding = {id(p) for m in model.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters()}
    head = model.get_output_embeddings()
    if head is not None:
        embedding.add(id(head.weight))
    params = list(model.parameters())
    return sum(p.numel() for p in params), sum(p.numel() for p in params if id(p) not in embedding)


def mean_prompt_tokens(path: Path, seed: int) -> float:
    """Both engines draw their prompts from the whole synth-news train pool: its mean length."""
    from transformers import AutoTokenizer

    from rmcore.data import load_task

    prompts = [e.prompt for e in load_task("synth-news", seed=seed).train]
    ids = AutoTokenizer.from_pretrained(path)(prompts, add_special_tokens=False)["input_ids"]
    return statistics.fmean(len(x) for x in ids)
