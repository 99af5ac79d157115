"""rmcore against TRL's GRPOTrainer on the same work, in one process, side by side (issue 6).

Both engines get the same policy folder, the same synth-news prompt pool, the same reward
callable (ROUGE-L against the reference, rmcore.rewards.Rouge) and the same settings:
8 prompts × 8 samples, 32 new tokens, GRPO (group-normalised advantages, clipped ratio,
token-mean loss), KL β = 0.04 in the loss (k3), one AdamW step per batch (lr 1e-5, no
weight decay, grad clip 1.0), temperature 1, no dropout, fp32 on CPU (bf16 on CUDA).
TRL defaults that would make it do other work are set to rmcore's: gradient checkpointing
off (TRL's default recomputes the forward in backward), bf16 off on CPU.

Equal lengths: the bench copy of the model gets a new EOS token whose id is one past the
model's output vocabulary, so no engine can ever sample it and every completion is exactly
`--new-tokens` long (the script checks the mean length each engine reports).

Timing: a step is the wall time between two consecutive end-of-step callbacks (rmcore's
on_step, TRL's on_step_end), so each engine's own loop overhead counts; steps before
`--warmup` and rmcore's final step (which runs the greedy eval) are not timed. Rounds
alternate rmcore, TRL, rmcore, ... and the figures are medians over all timed steps.

Figures per engine: completions/s, response tokens/s, peak memory (on CUDA the peak of
torch.cuda.max_memory_allocated above what was held when the engine started; on CPU only the
process-wide peak RSS) and MFU (bench/flops.py; 'n/a' on CPU or a GPU not in its table). On
CUDA both engines run bf16 the same way, fp32 weights under bf16 autocast, and TRL also runs
in its vLLM colocate mode when vllm imports (a third row after the alternating rounds).

    python bench/vs_trl.py --model tiny-gpt2                         # target: ratio >= 2.0 on a 2-core CPU
    python bench/vs_trl.py --device cuda --shape gpt2-124m-shape     # target: ratio >= 1.5 on a GPU
    python bench/vs_trl.py --device cuda --shape qwen-0.5b-shape     # target: ratio >= 1.5 on a GPU
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import torch  # noqa: E402
from flops import mean_prompt_tokens, parameter_counts  # noqa: E402  (bench/, beside this file)
from shapes import SHAPES  # noqa: E402
from vs_trl_report import load_average, print_run, report  # noqa: E402

BENCH_EOS = "<|bench_eos|>"
MODELS = ("tiny-gpt2", *SHAPES)


@dataclass
class EngineTimes:
    """Timed steps of one engine over all rounds."""
    step_s: list[float] = field(default_factory=list)               # wall time per step
    cpu_s: list[float] = field(default_factory=list)                # this process's CPU time per step
    lengths: list[float] = field(default_factory=list)          # mean completion length per step
    split: dict[str, list[float]] = field(default_factory=dict)  # rmcore's perf/* phases per step
    peak_mib: float | None = None                                # CUDA only: max over its runs
    skipped: str | None = None                                   # why this engine has no figures


# --------------------------------------------------------------------------- the shared model
def prepare_model(name: str, out_dir: Path, seed: int = 0) -> Path:
    """Save the bench copy of the policy: weights unchanged, EOS moved out of reach.

    name: 'tiny-gpt2' (the built-in model), a shape in bench/shapes.py, or a local model folder.
    The folder is hub-style (config, safetensors, tokenizer) so vLLM can load it too.
    """
    from rmcore.backbones import ensure_builtin, load_causal_lm, model_cache_dir

    if name in SHAPES:
        model, tokenizer = SHAPES[name](seed)
    else:
        source = str(ensure_builtin(model_cache_dir())) if name == "tiny-gpt2" else name
        if name not in MODELS and not Path(name).is_dir():
            raise SystemExit(f"--model must be one of {', '.join(MODELS)} or a local folder; got {name!r}.")
        model, tokenizer = load_causal_lm(source, device=torch.device("cpu"))
    sentinel = len(tokenizer)
    if sentinel < model.config.vocab_size:
        raise SystemExit(f"tokenizer ({sentinel}) is smaller than the model's vocabulary ({model.config.vocab_size}).")
    tokenizer.add_special_tokens({"eos_token": BENCH_EOS})
    assert tokenizer.eos_token_id == sentinel >= model.config.vocab_size  # logits never reach this id
    model.config.eos_token_id = model.generation_config.eos_token_id = sentinel
    path = out_dir / "policy"
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


# --------------------------------------------------------------------------- rmcore
def run_rmcore(path: Path, args, times: EngineTimes) -> None:
    import rmcore
    from rmcore.config import TrainConfig

    cfg = TrainConfig(backbone=str(path), task="synth-news", loss="grpo", alpha=1.0, beta=0.0, gamma=0.0,
                      kl_coef=0.04, kl_estimator="k3", kl_placement="loss", loss_norm="token_mean",
                      clip_eps=0.2, ppo_epochs=1, minibatches=1, lr=1e-5, max_grad_norm=1.0, temperature=1.0,
                      batch_size=args.prompts, samples_per_prompt=args.samples, max_new_tokens=args.new_tokens,
                      steps=args.warmup + args.steps + 1, eval_every=0, eval_prompts=args.prompts,
                      log_generations=4, seed=args.seed, device=args.device, **rmcore_precision(args))
    ends: list[tuple[float, float]] = []

    def on_step(report) -> None:
        ends.append(clock(args))
        if args.warmup < report.step <= args.warmup + args.steps:  # timed steps
            m = report.metrics
            times.step_s.append(ends[-1][0] - ends[-2][0])
            times.cpu_s.append(ends[-1][1] - ends[-2][1])
            times.lengths.append(m["policy/response_length"])
            phases = ("perf/generate_s", "perf/ref_forward_s", "perf/reward_s", "perf/update_s")
            for key in phases:
                times.split.setdefault(key, []).append(m[key])
            times.split.setdefault("other", []).append(times.step_s[-1] - sum(m[k] for k in phases))

    rmcore.train(cfg, on_step=on_step)


def rmcore_precision(args) -> dict:
    """precision='bf16' on CUDA: fp32 weights and AdamW state, bf16 autocast forwards, which is
    what TRL's bf16=True does with the fp32 weights it loads. A TrainConfig from before the
    precision field put the weights themselves in bf16 on CUDA (backbones.model_dtype)."""
    from rmcore.config import TrainConfig

    if args.device == "cuda" and "precision" in TrainConfig.__dataclass_fields__:
        return {"precision": "bf16"}
    return {}


def clock(args) -> tuple[float, float]:
    """(wall, CPU) time at the end of a step; on CUDA after the queued kernels have run, so the
    optimizer step's kernels count in its own step, not the next one."""
    if args.device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter(), time.process_time()


# --------------------------------------------------------------------------- TRL
def run_trl(path: Path, args, times: EngineTimes, workdir: Path, vllm: bool = False, timed: int = 0) -> None:
    """TRL's GRPOTrainer on `timed` (default --steps) steps after --warmup; vllm: generation by
    vLLM in colocate mode (same process and GPU) instead of model.generate()."""
    from datasets import Dataset
    from transformers import PrinterCallback, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from rmcore.data import load_task
    from rmcore.rewards import Rouge

    task = load_task("synth-news", seed=args.seed)
    dataset = Dataset.from_list([{"prompt": e.prompt, "reference": e.reference} for e in task.train])
    rouge = Rouge("rougeL")

    def rouge_l(prompts, completions, reference, **_):  # TRL passes dataset columns by name
        return rouge(prompts, completions, reference)

    cuda = args.device == "cuda"
    config = GRPOConfig(output_dir=str(workdir / "trl"), per_device_train_batch_size=args.prompts * args.samples,
                        num_generations=args.samples, gradient_accumulation_steps=1, num_iterations=1,
                        max_completion_length=args.new_tokens, beta=0.04, epsilon=0.2, loss_type="dapo",
                        scale_rewards="group", temperature=1.0, top_p=1.0, learning_rate=1e-5, weight_decay=0.0,
                        lr_scheduler_type="constant", warmup_steps=0, optim="adamw_torch", max_grad_norm=1.0,
                        max_steps=args.warmup + (timed or args.steps), logging_strategy="no", save_strategy="no",
                        report_to="none", disable_tqdm=True, use_cpu=not cuda, bf16=cuda, seed=args.seed,
                        dataloader_num_workers=0, gradient_checkpointing=False, disable_dropout=True,
                        # the correction re-scores every batch with the policy (an extra forward) to
                        # weigh vLLM's sampling against it: work rmcore's on-policy step does not do
                        use_vllm=vllm, vllm_mode="colocate", vllm_importance_sampling_correction=False)

    ends: list[tuple[float, float]] = []

    class Timer(TrainerCallback):
        def on_step_end(self, _args, state, control, **kw):
            ends.append(clock(args))
            if state.global_step > args.warmup:
                times.step_s.append(ends[-1][0] - ends[-2][0])
                times.cpu_s.append(ends[-1][1] - ends[-2][1])
                lengths = trainer._metrics["train"].get("completions/mean_length", [float("nan")])
                times.lengths.append(lengths[-1])

    trainer = GRPOTrainer(model=str(path), reward_funcs=rouge_l, args=config, train_dataset=dataset,
                          callbacks=[Timer()])
    trainer.remove_callback(PrinterCallback)  # logging is off; it would still print the final summary
    trainer.train()


# --------------------------------------------------------------------------- TRL + vLLM, memory
def run_vllm_row(path: Path, args, times: EngineTimes, workdir: Path) -> None:
    """The third row, after the alternating rounds (vLLM's engine is built once per trainer and
    keeps its GPU memory and process groups, so one trainer runs all rounds x steps timed steps)."""
    times.skipped = vllm_unavailable(args)
    if times.skipped:
        return
    try:
        measured(lambda: run_trl(path, args, times, workdir, vllm=True, timed=args.rounds * args.steps), times, args)
    except Exception as e:  # a failed third row must not lose the two measured ones
        times.step_s, times.cpu_s, times.lengths = [], [], []
        times.skipped = f"failed: {one_line(e)}"
        return
    print_run("all rounds trl-vllm", times, 0)


def vllm_unavailable(args) -> str | None:
    if args.device != "cuda":
        return "vLLM's colocate mode needs --device cuda"
    if args.skip_vllm:
        return "--skip-vllm"
    try:
        import vllm  # noqa: F401
    except Exception as e:  # ImportError, or a CUDA/torch build mismatch raised at import
        return f"vllm does not import ({one_line(e)}); pip install vllm on the GPU machine to add this row"
    return None


def measured(run, times: EngineTimes, args) -> None:
    """run() with CUDA's peak allocation recorded above what was allocated when it started
    (left-overs of an earlier engine are not charged to this one)."""
    if args.device != "cuda":
        return run()
    gc.collect()
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    try:
        run()
    finally:
        torch.cuda.synchronize()
        times.peak_mib = max(times.peak_mib or 0.0, (torch.cuda.max_memory_allocated() - base) / 2**20)
        gc.collect()


def one_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0] if lines else ''}"[:300]


def parse_args(argv: list[str] | None = None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", "--shape", dest="model", default="tiny-gpt2",
                   help=f"{', '.join(MODELS)} (random init from config, no download), or a local model folder")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds per engine")
    p.add_argument("--steps", type=int, default=5, help="timed steps per round")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps at the start of each round (>= 1: a step is "
                                                         "timed from the end of the one before)")
    p.add_argument("--prompts", type=int, default=8)
    p.add_argument("--samples", type=int, default=8)
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) - 1),
                   help="torch.set_num_threads for both; default: cores - 1, as the app's runner uses")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"), help="auto: cuda if visible, else cpu")
    p.add_argument("--engines", default="both", choices=("both", "rmcore", "trl"),
                   help="trl includes the vLLM row on CUDA")
    p.add_argument("--skip-vllm", action="store_true", help="no TRL + vLLM colocate row on CUDA")
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="the device's peak for MFU (default: bench/flops.py's bf16 table by GPU name; none on CPU)")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    for name in ("rounds", "steps", "warmup", "prompts", "samples", "new_tokens", "threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.peak_tflops is not None and not args.peak_tflops > 0:
        p.error("--peak-tflops must be positive")
    if args.json and not Path(args.json).resolve().parent.is_dir():  # found out before the run, not after
        p.error(f"--json: the folder of {args.json} does not exist")
    return args


def resolve_device(name: str) -> str:
    """The engine's own device rule (rmcore.placement), as a bench exit rather than a ConfigError."""
    from rmcore.errors import ConfigError
    from rmcore.placement import torch_device

    try:
        return str(torch_device(name))
    except ConfigError as exc:
        raise SystemExit(f"vs_trl: {exc}") from None


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.device = resolve_device(args.device)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    import transformers

    trl_version = "absent"
    if args.engines != "rmcore":
        import trl
        trl_version = trl.__version__
    cuda = args.device == "cuda"
    machine = {"device": args.device, "device_name": torch.cuda.get_device_name() if cuda else "CPU",
               "cpus": os.cpu_count(), "torch": torch.__version__, "transformers": transformers.__version__,
               "trl": trl_version}
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; torch {torch.__version__}, "
          f"transformers {transformers.__version__}, trl {trl_version}; load average before: {load_average()}")
    if cuda:
        precision = ("bf16: fp32 weights, bf16 autocast" if rmcore_precision(args)
                     else "its CUDA default, bf16 weights (this TrainConfig has no precision field)")
        print(f"device: {machine['device_name']}; rmcore precision {precision}; TRL bf16=True (fp32 weights, autocast)")
    engines = {"rmcore": EngineTimes(), "trl": EngineTimes(), "trl-vllm": EngineTimes()}
    with tempfile.TemporaryDirectory(prefix="vs-trl-") as tmp:
        workdir = Path(tmp)
        path = prepare_model(args.model, workdir, seed=args.seed)
        counts = parameter_counts(transformers.AutoConfig.from_pretrained(path))
        prompt_tokens = mean_prompt_tokens(path, args.seed)
        for round_no in range(1, args.rounds + 1):
            for engine in ("rmcore", "trl"):
                if args.engines not in ("both", engine):
                    continue
                torch.set_num_threads(args.threads)  # the same for both, whatever the other set
                t = engines[engine]
                before = len(t.step_s)
                run = (lambda: run_rmcore(path, args, t)) if engine == "rmcore" else \
                    (lambda: run_trl(path, args, t, workdir))
                measured(run, t, args)
                print_run(f"round {round_no} {engine:6s}", t, before)
        if args.engines != "rmcore":
            torch.set_num_threads(args.threads)
            run_vllm_row(path, args, engines["trl-vllm"], workdir)
    for name, t in engines.items():
        if t.lengths and any(abs(x - args.new_tokens) > 1e-6 for x in t.lengths):
            print(f"warning: {name} completions were not all {args.new_tokens} tokens long: {t.lengths}")
    summary = report(args, machine, counts, prompt_tokens, engines)
    if args.json:
        try:
            Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
        except OSError as e:
            raise SystemExit(f"vs_trl: could not write --json {args.json}: {e.strerror}.")


if __name__ == "__main__":
    main()
