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

    python bench/vs_trl.py --model tiny-gpt2          # target: ratio >= 2.0 on a 2-core CPU
    python bench/vs_trl.py --model gpt2-124m-shape    # target on a GPU: ratio >= 1.5
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import torch  # noqa: E402

BENCH_EOS = "<|bench_eos|>"
MODELS = ("tiny-gpt2", "gpt2-124m-shape")


@dataclass
class EngineTimes:
    """Timed steps of one engine over all rounds."""
    step_s: list[float] = field(default_factory=list)               # wall time per step
    cpu_s: list[float] = field(default_factory=list)                # this process's CPU time per step
    lengths: list[float] = field(default_factory=list)          # mean completion length per step
    split: dict[str, list[float]] = field(default_factory=dict)  # rmcore's perf/* phases per step


# --------------------------------------------------------------------------- the shared model
def prepare_model(name: str, out_dir: Path, seed: int = 0) -> Path:
    """Save the bench copy of the policy: weights unchanged, EOS moved out of reach.

    name: 'tiny-gpt2' (the built-in model), 'gpt2-124m-shape', or a local model folder.
    """
    from rmcore.backbones import ensure_builtin, load_causal_lm, model_cache_dir

    if name == "gpt2-124m-shape":
        model, tokenizer = gpt2_124m_shape(seed)
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


def gpt2_124m_shape(seed: int):
    """GPT2Config() (124M: 12 layers x 768, 50,257 tokens), random init, no download."""
    from transformers import GPT2Config, GPT2LMHeadModel

    size = GPT2Config().vocab_size
    tokenizer = gpt2_like_tokenizer(size, seed)
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=size, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                        pad_token_id=tokenizer.pad_token_id, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return GPT2LMHeadModel(config), tokenizer


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


# --------------------------------------------------------------------------- rmcore
def run_rmcore(path: Path, args, times: EngineTimes) -> None:
    import rmcore
    from rmcore.config import TrainConfig

    cfg = TrainConfig(backbone=str(path), task="synth-news", loss="grpo", alpha=1.0, beta=0.0, gamma=0.0,
                      kl_coef=0.04, kl_estimator="k3", kl_placement="loss", loss_norm="token_mean",
                      clip_eps=0.2, ppo_epochs=1, minibatches=1, lr=1e-5, max_grad_norm=1.0, temperature=1.0,
                      batch_size=args.prompts, samples_per_prompt=args.samples, max_new_tokens=args.new_tokens,
                      steps=args.warmup + args.steps + 1, eval_every=0, eval_prompts=args.prompts,
                      log_generations=4, seed=args.seed, device=args.device)
    ends: list[tuple[float, float]] = []

    def on_step(report) -> None:
        ends.append((time.perf_counter(), time.process_time()))
        if args.warmup < report.step <= args.warmup + args.steps:  # timed steps
            m = report.metrics
            times.step_s.append(ends[-1][0] - ends[-2][0])
            times.cpu_s.append(ends[-1][1] - ends[-2][1])
            times.lengths.append(m["gen/response_length"])
            phases = ("perf/generate_s", "perf/ref_forward_s", "perf/reward_s", "perf/update_s")
            for key in phases:
                times.split.setdefault(key, []).append(m[key])
            times.split.setdefault("other", []).append(times.step_s[-1] - sum(m[k] for k in phases))

    rmcore.train(cfg, on_step=on_step)


# --------------------------------------------------------------------------- TRL
def run_trl(path: Path, args, times: EngineTimes, workdir: Path) -> None:
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
                        max_steps=args.warmup + args.steps, logging_strategy="no", save_strategy="no",
                        report_to="none", disable_tqdm=True, use_cpu=not cuda, bf16=cuda, seed=args.seed,
                        dataloader_num_workers=0, gradient_checkpointing=False, disable_dropout=True)

    ends: list[tuple[float, float]] = []

    class Timer(TrainerCallback):
        def on_step_end(self, _args, state, control, **kw):
            ends.append((time.perf_counter(), time.process_time()))
            if state.global_step > args.warmup:
                times.step_s.append(ends[-1][0] - ends[-2][0])
                times.cpu_s.append(ends[-1][1] - ends[-2][1])
                lengths = trainer._metrics["train"].get("completions/mean_length", [float("nan")])
                times.lengths.append(lengths[-1])

    trainer = GRPOTrainer(model=str(path), reward_funcs=rouge_l, args=config, train_dataset=dataset,
                          callbacks=[Timer()])
    trainer.remove_callback(PrinterCallback)  # logging is off; it would still print the final summary
    trainer.train()


# --------------------------------------------------------------------------- report
def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def report(args, params: int, rm: EngineTimes, trl: EngineTimes) -> None:
    n = args.prompts * args.samples
    print(f"\nmodel {args.model} ({params / 1e6:.1f}M parameters), {args.prompts} prompts x {args.samples} samples, "
          f"{args.new_tokens} new tokens, GRPO beta=0.04, 1 optimizer step per batch; {args.rounds} rounds x "
          f"({args.warmup} warm-up + {args.steps} timed steps) per engine; torch threads {torch.get_num_threads()}")
    for name, t in (("rmcore", rm), ("trl", trl)):
        if not t.step_s:
            continue
        step = median(t.step_s)
        print(f"{name:7s} completions/s {n / step:8.1f}   tokens/s {n * args.new_tokens / step:8.0f}   "
              f"median step {step:.3f} s (CPU {median(t.cpu_s):.3f} s) over {len(t.step_s)} steps   mean length "
              f"{statistics.fmean(t.lengths):.1f} tokens")
    if rm.step_s:
        s = {k: median(v) for k, v in rm.split.items()}
        print(f"rmcore time split (median s/step): generate {s['perf/generate_s']:.3f}  "
              f"reference forward {s['perf/ref_forward_s']:.3f}  reward {s['perf/reward_s']:.3f}  "
              f"update {s['perf/update_s']:.3f}  other (advantages, metrics, loop) {s['other']:.3f}")
    print(f"load average after: {load_average()}")
    if rm.step_s and trl.step_s:
        print(f"CPU-time ratio (trl CPU s/step / rmcore CPU s/step, less sensitive to other load): "
              f"{median(trl.cpu_s) / median(rm.cpu_s):.2f}")
        print(f"ratio rmcore/trl completions/s: {median(trl.step_s) / median(rm.step_s):.2f}")


def parse_args(argv: list[str] | None = None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default="tiny-gpt2", help=f"{' or '.join(MODELS)}, or a local model folder")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds per engine")
    p.add_argument("--steps", type=int, default=5, help="timed steps per round")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps at the start of each round")
    p.add_argument("--prompts", type=int, default=8)
    p.add_argument("--samples", type=int, default=8)
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) - 1),
                   help="torch.set_num_threads for both; default: cores - 1, as the app's runner uses")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--engines", default="both", choices=("both", "rmcore", "trl"))
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    import transformers

    trl_version = "absent"
    if args.engines != "rmcore":
        import trl
        trl_version = trl.__version__
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; torch {torch.__version__}, "
          f"transformers {transformers.__version__}, trl {trl_version}; load average before: {load_average()}")
    rm, trl_times = EngineTimes(), EngineTimes()
    with tempfile.TemporaryDirectory(prefix="vs-trl-") as tmp:
        workdir = Path(tmp)
        path = prepare_model(args.model, workdir, seed=args.seed)
        params = sum(p.numel() for p in transformers.AutoModelForCausalLM.from_pretrained(path).parameters())
        for round_no in range(1, args.rounds + 1):
            for engine in ("rmcore", "trl"):
                if args.engines not in ("both", engine):
                    continue
                torch.set_num_threads(args.threads)  # the same for both, whatever the other set
                t = rm if engine == "rmcore" else trl_times
                before = len(t.step_s)
                run_rmcore(path, args, t) if engine == "rmcore" else run_trl(path, args, t, workdir)
                got = t.step_s[before:]
                print(f"round {round_no} {engine:6s}: median step {median(got):.3f} s, CPU {median(t.cpu_s[before:]):.3f} s "
                      f"({', '.join(f'{x:.2f}' for x in got)}), length {statistics.fmean(t.lengths[before:]):.1f}, "
                      f"load {load_average()}", flush=True)
    for name, t in (("rmcore", rm), ("trl", trl_times)):
        if t.lengths and any(abs(x - args.new_tokens) > 1e-6 for x in t.lengths):
            print(f"warning: {name} completions were not all {args.new_tokens} tokens long: {t.lengths}")
    report(args, params, rm, trl_times)


if __name__ == "__main__":
    main()
