"""Trainable parameters and peak memory of one policy step, full fine-tuning vs LoRA.

    python bench/lora_memory.py                       # gpt2-124m-shape, CPU
    python bench/lora_memory.py --device cuda         # the same on a GPU (bf16)

Each variant runs in a fresh subprocess (peak RSS is per process on CPU, and a GPU's peak
counter starts clean): build the random-init shape, make rmcore's session (policy, frozen
reference, optimizer), run `--steps` GRPO steps through rmcore.online_step.online_step, report
trainable parameters and peak memory. Full fine-tuning holds a second copy of the weights
(the reference) plus two AdamW moments and a gradient per weight; LoRA holds one copy (the
reference is the base with the adapter off) and optimizer state only for the adapters.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]


def child(args: argparse.Namespace) -> dict:
    import torch

    from rmcore.algorithms import get_algorithm
    from rmcore.config import TrainConfig
    from rmcore.data import load_task
    from rmcore.lora import trainable_parameters
    from rmcore.online_step import online_step
    from rmcore.precision import autocast, resolve_precision
    from rmcore.trainer import make_session
    from shapes import SHAPES

    device = torch.device(args.device)
    model, tokenizer = SHAPES[args.shape](0)
    tokenizer.padding_side = "left"
    model.to(device)
    precision = resolve_precision("auto", device)
    cfg = TrainConfig(loss="grpo", batch_size=args.prompts, samples_per_prompt=args.samples,
                      max_new_tokens=args.new_tokens, kl_coef=0.04, beta=0.0, device=args.device,
                      precision=precision, lora_r=args.lora_r)
    s = make_session(cfg, get_algorithm("grpo"), model, tokenizer, device, precision=precision)
    trainable, total = trainable_parameters(s.policy)
    pool = load_task("synth-news", seed=0).train
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    for step in range(1, args.steps + 1):
        s.step = step
        batch = pool[step * args.prompts:(step + 1) * args.prompts]
        with autocast(precision, device):
            online_step(s, batch)
    seconds = (time.perf_counter() - t0) / args.steps
    peak = (torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"lora_r": args.lora_r, "trainable": trainable, "total": total, "peak_mib": round(peak),
            "peak_kind": "max_memory_allocated" if device.type == "cuda" else "process peak RSS",
            "step_s": round(seconds, 2), "precision": precision}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="gpt2-124m-shape", choices=("gpt2-124m-shape", "qwen-0.5b-shape"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--lora-ranks", default="0,8", help="0 = full fine-tuning")
    parser.add_argument("--prompts", type=int, default=2)
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--lora-r", type=int, default=None, help=argparse.SUPPRESS)  # the child's
    args = parser.parse_args()
    if args.lora_r is not None:
        print(json.dumps(child(args)))
        return
    rows = []
    for r in (int(x) for x in args.lora_ranks.split(",")):
        cmd = [sys.executable, __file__, *sys.argv[1:], "--lora-r", str(r)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            sys.exit(f"lora_memory: the lora_r={r} run failed: {out.stderr.strip().splitlines()[-1]}")
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"{args.shape} on {args.device} ({rows[0]['precision']}), {args.prompts}x{args.samples} samples, "
          f"{args.new_tokens} tokens, {rows[0]['peak_kind']}")
    for row in rows:
        name = "full fine-tuning" if row["lora_r"] == 0 else f"LoRA r={row['lora_r']}"
        print(f"{name:18s} trainable {row['trainable']:>12,} of {row['total']:>12,}  "
              f"peak {row['peak_mib']:>7,} MiB  step {row['step_s']} s")
    if len(rows) > 1:
        print(f"ratio peak memory LoRA/full {rows[1]['peak_mib'] / rows[0]['peak_mib']:.2f}")


if __name__ == "__main__":
    main()
