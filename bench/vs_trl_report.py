"""The figures of bench/vs_trl.py: the console report (its CPU lines as before issue 12) and --json."""
from __future__ import annotations

import os
import resource
import statistics
from typing import TYPE_CHECKING

import torch
from flops import mfu, model_flops_per_step, peak_tflops

if TYPE_CHECKING:
    from vs_trl import EngineTimes

TARGET_GPU = 1.5  # issue 12: rmcore >= 1.5x TRL (HF generate) completions/s on a GPU, both shapes


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def print_run(label: str, t: EngineTimes, before: int) -> None:
    got = t.step_s[before:]
    print(f"{label}: median step {median(got):.3f} s, CPU {median(t.cpu_s[before:]):.3f} s "
          f"({', '.join(f'{x:.2f}' for x in got)}), length {statistics.fmean(t.lengths[before:] or [0.0]):.1f}, "
          f"load {load_average()}", flush=True)


def figures(t: EngineTimes, rows: int, new_tokens: int, flops: float, peak: float | None) -> dict:
    """One engine's figures from its median step: `rows` completions of `new_tokens` tokens each."""
    step = median(t.step_s)
    return {"completions_per_s": rows / step, "tokens_per_s": rows * new_tokens / step, "median_step_s": step,
            "median_cpu_s": median(t.cpu_s), "timed_steps": len(t.step_s), "mean_length": statistics.fmean(t.lengths),
            "peak_memory_mib": t.peak_mib, "model_tflops_per_s": flops / step / 1e12, "mfu": mfu(flops, step, peak)}


def report(args, machine: dict, counts: tuple[int, int], prompt_tokens: float,
           engines: dict[str, EngineTimes]) -> dict:
    """Print the figures (the CPU lines as before issue 12) and return them for --json."""
    n = args.prompts * args.samples
    cuda = args.device == "cuda"
    flops = model_flops_per_step(counts[1], n, prompt_tokens, args.new_tokens)
    peak = args.peak_tflops or (peak_tflops(machine["device_name"]) if cuda else None)
    print(f"\nmodel {args.model} ({counts[0] / 1e6:.1f}M parameters), {args.prompts} prompts x {args.samples} samples, "
          f"{args.new_tokens} new tokens, GRPO beta=0.04, 1 optimizer step per batch; {args.rounds} rounds x "
          f"({args.warmup} warm-up + {args.steps} timed steps) per engine; torch threads {torch.get_num_threads()}")
    rows: dict[str, dict] = {}
    for name, t in engines.items():
        if t.skipped:
            rows[name] = {"skipped": t.skipped}
            print(f"{name:7s} skipped: {t.skipped}")
        elif t.step_s:
            f = rows[name] = figures(t, n, args.new_tokens, flops, peak)
            print(f"{name:7s} completions/s {f['completions_per_s']:8.1f}   tokens/s {f['tokens_per_s']:8.0f}   "
                  f"median step {f['median_step_s']:.3f} s (CPU {f['median_cpu_s']:.3f} s) over {len(t.step_s)} "
                  f"steps   mean length {f['mean_length']:.1f} tokens")
    rm, trl, vllm = engines["rmcore"], engines["trl"], engines["trl-vllm"]
    if rm.step_s:
        s = rows["rmcore"]["split_s"] = {k: median(v) for k, v in rm.split.items()}
        print(f"rmcore time split (median s/step): generate {s['perf/generate_s']:.3f}  "
              f"reference forward {s['perf/ref_forward_s']:.3f}  reward {s['perf/reward_s']:.3f}  "
              f"update {s['perf/update_s']:.3f}  other (advantages, metrics, loop) {s['other']:.3f}")
    print(f"model FLOPs per step {flops:.3g} = 10 x {counts[1] / 1e6:.1f}M non-embedding parameters x {n} rows x "
          f"({prompt_tokens:.1f} mean prompt + {args.new_tokens} completion tokens); peak "
          f"{f'{peak:g} TFLOPs' if peak else 'unknown'} ({machine['device_name']})")
    for name, f in rows.items():
        if "mfu" in f:
            memory = f"{f['peak_memory_mib']:,.0f} MiB" if cuda else "n/a"
            util = "n/a" if f["mfu"] is None else f"{100 * f['mfu']:.1f}%"
            print(f"{name:7s} peak memory {memory}   model TFLOPs/s {f['model_tflops_per_s']:.3f}   MFU {util}")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    if not cuda:  # one figure: the process's high-water mark covers every engine and model it built
        print(f"peak RSS of the whole process (all engines, ru_maxrss): {rss:,.0f} MiB")
    elif vllm.step_s:
        print("trl-vllm peak memory includes vLLM's KV-cache reservation (vllm_gpu_memory_utilization)")
    print(f"load average after: {load_average()}")
    summary = {**machine, "settings": {k: v for k, v in vars(args).items() if k != "json"},
               "parameters": counts[0], "non_embedding_parameters": counts[1], "mean_prompt_tokens": prompt_tokens,
               "model_flops_per_step": flops, "peak_tflops": peak, "peak_rss_mib_process": rss, "engines": rows}
    if vllm.step_s and rm.step_s:
        summary["ratio_rmcore_trl_vllm"] = median(vllm.step_s) / median(rm.step_s)
        print(f"ratio rmcore/trl-vllm completions/s: {summary['ratio_rmcore_trl_vllm']:.2f}")
    if rm.step_s and trl.step_s:
        ratio = summary["ratio_rmcore_trl"] = median(trl.step_s) / median(rm.step_s)
        print(f"CPU-time ratio (trl CPU s/step / rmcore CPU s/step, less sensitive to other load): "
              f"{median(trl.cpu_s) / median(rm.cpu_s):.2f}")
        print(f"ratio rmcore/trl completions/s: {ratio:.2f}")
        if cuda:  # the last line on a GPU; on CPU the ratio stays last, as before
            summary["target"], summary["pass"] = TARGET_GPU, ratio >= TARGET_GPU
            print(f"target rmcore >= {TARGET_GPU}x trl (HF generate) on a GPU: {'PASS' if summary['pass'] else 'FAIL'}")
    return summary
