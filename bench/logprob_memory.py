"""Peak memory of scoring responses on a big vocabulary: full logits vs the chunked LM head.

One training-style call of rmcore.rollout.response_logprobs (log-probs at temperature 0.7,
their temperature-1 copy, entropy) and the backward of a loss over all three, on a random
GPT-2 with a small hidden size and Qwen2.5-0.5B's vocabulary (151,936), so that the logits
are nearly all the memory. Each path runs in a fresh subprocess:

    full     every position's logits at once (LOGIT_CHUNK_BYTES raised above the batch's logits)
    chunked  the LM head a chunk at a time (rmcore.chunked_logprobs, the shipped budget)

Peak: on CPU the process's peak RSS during the call above its RSS just before (Linux VmHWM,
reset through /proc/self/clear_refs; tracemalloc does not see torch's allocations); on CUDA
torch.cuda.max_memory_allocated above what was allocated before. glibc keeps freed blocks
below its mmap threshold (dynamic, up to 32 MB) in the heap, where fragmentation can hold
RSS well above the live bytes when chunks are small (--chunk-mb 16 measured 2.45 GB vs 0.20
GB), so the children run with MALLOC_MMAP_THRESHOLD_=65536 (unless the environment sets it):
RSS then follows the live bytes, as a GPU's caching allocator's peak does. The shipped 64 MB
chunks are above the threshold either way.

    python bench/logprob_memory.py                              # CPU: 16 rows x 128 tokens
    python bench/logprob_memory.py --device cuda --rows 64 --tokens 128
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

QWEN_VOCAB = 151_936


def random_batch(*, vocab: int, rows: int, tokens: int, prompt: int, group: int, device, seed: int = 0):
    """A rollout-shaped batch: left-padded prompts repeated `group` times, right-padded responses."""
    import torch

    from rmcore.rollout import Rollout, response_mask_from_ids

    g = torch.Generator().manual_seed(seed)
    prompts = torch.randint(1, vocab, (rows // group, prompt), generator=g)
    prompt_mask = torch.ones_like(prompts)
    prompt_mask[::2, : prompt // 2] = 0                                   # every other prompt is short
    prompts, prompt_mask = prompts.repeat_interleave(group, 0), prompt_mask.repeat_interleave(group, 0)
    resp = torch.randint(1, vocab, (rows, tokens), generator=g)
    resp[torch.arange(rows), torch.randint(tokens // 2, tokens, (rows,), generator=g)] = 0  # EOS = 0
    resp_mask = response_mask_from_ids(resp, 0)
    return Rollout(input_ids=torch.cat([prompts, resp], 1).to(device),
                   attention_mask=torch.cat([prompt_mask, resp_mask.long()], 1).to(device),
                   response_mask=resp_mask.to(device), prompt_len=prompt, completions=[""] * rows)


def random_gpt2(*, vocab: int, hidden: int, layers: int, positions: int, dtype, device, seed: int = 0):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=vocab, n_embd=hidden, n_layer=layers, n_head=2, n_positions=positions,
                        bos_token_id=0, eos_token_id=0, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return GPT2LMHeadModel(config).to(device=device, dtype=dtype)


def _vm(field: str) -> int:
    """A VmXXX line of /proc/self/status, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def measure(args) -> dict:
    """Peak memory (bytes) and wall time of one forward + backward of one path, in this process."""
    import gc

    import torch

    from rmcore import chunked_logprobs

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model = random_gpt2(vocab=args.vocab, hidden=args.hidden, layers=2, positions=args.prompt + args.tokens,
                        dtype=torch.float32, device=device)
    batch = random_batch(vocab=args.vocab, rows=args.rows, tokens=args.tokens, prompt=args.prompt,
                         group=args.group, device=device)
    if args.path == "full":
        chunked_logprobs.LOGIT_CHUNK_BYTES = 1 << 62
    elif args.chunk_mb:
        chunked_logprobs.LOGIT_CHUNK_BYTES = int(args.chunk_mb * 2**20)
    # A 2-row warm-up first, so lazy imports, kernel set-up and the parameters' .grad
    # (which a training step holds anyway) are not counted as the path's memory.
    warm = random_batch(vocab=args.vocab, rows=2, tokens=4, prompt=args.prompt, group=1, device=device)
    score(model, warm)
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        Path("/proc/self/clear_refs").write_text("5")                   # VmHWM := VmRSS
        before = _vm("VmRSS")
    t0 = time.perf_counter()
    logprobs = score(model, batch)
    if device.type == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - before
    else:
        peak = _vm("VmHWM") - before
    seconds = time.perf_counter() - t0
    checksum = float(sum(p.grad.double().abs().sum() for p in model.parameters() if p.grad is not None))
    return dict(path=args.path, peak_bytes=peak, seconds=seconds, grad_abs_sum=checksum,
                logprob_sum=float((logprobs * batch.response_mask).sum()))


def score(model, batch):
    """The measured work: a training call of response_logprobs and the backward of a loss on it."""
    from rmcore.rollout import response_logprobs

    logprobs, entropy, _, logprobs_t1 = response_logprobs(model, batch, temperature=0.7, with_entropy=True)
    ((logprobs + 0.01 * entropy + 0.1 * logprobs_t1) * batch.response_mask).sum().backward()
    return logprobs.detach()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vocab", type=int, default=QWEN_VOCAB)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--rows", type=int, default=16, help="N: responses in the batch (full path: 10 GB at 16 x 128)")
    ap.add_argument("--tokens", type=int, default=128, help="T: response tokens per row")
    ap.add_argument("--prompt", type=int, default=16, help="P: prompt tokens per row")
    ap.add_argument("--group", type=int, default=1, help="G: rows per distinct prompt (>1: the shared-prompt path)")
    ap.add_argument("--chunk-mb", type=float, default=0.0, help="chunked path's budget in MB (0: the shipped one)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--path", choices=("full", "chunked"), help=argparse.SUPPRESS)  # a child's one measurement
    args = ap.parse_args()
    if args.path:
        print(json.dumps(measure(args)))
        return
    results = {}
    env = {"MALLOC_MMAP_THRESHOLD_": "65536", **os.environ}
    for path in ("full", "chunked"):
        out = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--path", path],
                             capture_output=True, text=True, check=True, env=env)
        results[path] = json.loads(out.stdout.strip().splitlines()[-1])
    logits_gb = args.rows * args.tokens * args.vocab * 4 / 1e9
    print(f"vocab {args.vocab:,}, hidden {args.hidden}, {args.rows} rows x {args.tokens} tokens "
          f"(G={args.group}), {args.device}; one fp32 (N, T, V) logits tensor = {logits_gb:.2f} GB; "
          f"MALLOC_MMAP_THRESHOLD_={env['MALLOC_MMAP_THRESHOLD_']}")
    for path, r in results.items():
        print(f"{path:8s} peak {r['peak_bytes'] / 1e9:7.3f} GB   {r['seconds']:6.2f} s   "
              f"grad |sum| {r['grad_abs_sum']:.6e}   logprob sum {r['logprob_sum']:.6e}")
    ratio = results["chunked"]["peak_bytes"] / results["full"]["peak_bytes"]
    print(f"ratio chunked/full peak: {ratio:.3f}")


if __name__ == "__main__":
    main()
