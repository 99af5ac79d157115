"""The benchmarks run (short modes, so they cannot rot), and the engine's fast paths equal the plain ones.

Targets (ratio >= 2, >= 85%, <= 1 s, <= 50 MB) are checked by running the benches, not
here: these tests only check that the benches run end to end and print their figures, and
that the optimisations of issue 6 (shared prompt prefill, the single on-policy pass, the
self-BLEU schedule) change no number.
"""
from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import rmcore
from rmcore.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
sys.path.insert(0, str(BENCH))

import flops  # noqa: E402
import shapes  # noqa: E402
import vs_trl  # noqa: E402
import vs_trl_report  # noqa: E402

HAS_TRL = importlib.util.find_spec("trl") is not None
NO_TRL = "trl is not installed (pip install -r requirements-bench.txt); make test installs requirements-dev.txt only"


def bench(*args: str, timeout: int = 600) -> str:
    out = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-4000:]
    return out.stdout


# --------------------------------------------------------------------------- vs_trl
def test_bench_model_can_never_stop_early(tiny_lm_path, tmp_path):
    """The bench copy's EOS is one past the output vocabulary: every completion has all its tokens."""
    from rmcore.backbones import load_causal_lm
    from rmcore.rollout import encode_prompts, sample

    path = vs_trl.prepare_model(tiny_lm_path, tmp_path)
    model, tok = load_causal_lm(str(path), device=torch.device("cpu"))
    assert tok.eos_token_id >= model.config.vocab_size == model.get_output_embeddings().weight.shape[0]
    ids, mask = encode_prompts(tok, ["One.\nTL;DR:", "Two words.\nTL;DR:"], max_new_tokens=12, model=model)
    out = sample(model, tok, ids.repeat_interleave(3, 0), mask.repeat_interleave(3, 0), max_new_tokens=12,
                 generator=torch.Generator().manual_seed(0))
    assert out.response_mask.shape == (6, 12) and bool(out.response_mask.all())


def test_gpt2_like_tokenizer_has_exactly_the_size_and_decodes_every_id():
    tok = shapes.gpt2_like_tokenizer(3000)
    assert len(tok) == 3000
    text = tok.decode(list(range(2, 3000)), skip_special_tokens=True)
    assert len(text) > 3000  # filler ids decode to text too
    assert tok("The cat sat.", add_special_tokens=False)["input_ids"]  # encoding still works


def test_vs_trl_rmcore_half_runs_and_reports_its_time_split(tiny_lm_path):
    out = bench(str(BENCH / "vs_trl.py"), "--model", tiny_lm_path, "--engines", "rmcore", "--rounds", "1",
                "--steps", "2", "--warmup", "1", "--prompts", "2", "--samples", "2", "--new-tokens", "6")
    assert re.search(r"rmcore\s+completions/s\s+[\d.]+\s+tokens/s\s+\d+", out), out
    assert re.search(r"generate [\d.]+\s+reference forward [\d.]+\s+reward [\d.]+\s+update [\d.]+", out), out
    assert "mean length 6.0 tokens" in out and "warning" not in out, out


@pytest.mark.skipif(not HAS_TRL, reason=NO_TRL)
def test_vs_trl_both_engines_alternate_and_print_the_ratio_last(tiny_lm_path):
    out = bench(str(BENCH / "vs_trl.py"), "--model", tiny_lm_path, "--rounds", "2", "--steps", "1",
                "--warmup", "1", "--prompts", "2", "--samples", "2", "--new-tokens", "6")
    rounds = re.findall(r"^round (\d) (rmcore|trl)", out, flags=re.M)
    assert rounds == [("1", "rmcore"), ("1", "trl"), ("2", "rmcore"), ("2", "trl")], out
    assert re.search(r"trl\s+completions/s\s+[\d.]+", out) and "warning" not in out, out  # TRL too: 6 tokens each
    assert re.fullmatch(r"ratio rmcore/trl completions/s: \d+\.\d\d", out.strip().splitlines()[-1]), out


def test_qwen_shape_has_the_dimensions_and_parameter_count_of_qwen2_5_0_5b():
    """Counted on the meta device: no memory, no init. The real model has 494,032,768 parameters."""
    config = shapes.qwen_0_5b_config()
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads, config.num_key_value_heads,
            config.intermediate_size, config.vocab_size) == (896, 24, 14, 2, 4864, 151_936)
    assert config.tie_word_embeddings and config.rope_parameters["rope_theta"] == 1_000_000.0
    total, non_embedding = flops.parameter_counts(config)
    assert total == 494_032_768
    assert non_embedding == total - 151_936 * 896  # the tied embedding counts once, as embedding


def test_mfu_of_a_hand_computed_step():
    # 10 FLOPs per parameter per token: N = 1e9, 10 rows x (90 + 10) tokens -> 1e13 FLOPs per step
    assert flops.model_flops_per_step(10**9, 10, 90, 10) == 1e13
    assert flops.mfu(1e13, 0.1, 1000.0) == pytest.approx(0.1)  # 1e14 FLOP/s of a 1,000 TFLOPs peak
    assert flops.mfu(1e13, 0.1, None) is None
    assert flops.peak_tflops("NVIDIA H200") == flops.peak_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert flops.peak_tflops("NVIDIA H100 PCIe") == 756.0 and flops.peak_tflops("NVIDIA A100-SXM4-80GB") == 312.0
    assert flops.peak_tflops("NVIDIA L4") == 121.0 and flops.peak_tflops("NVIDIA L40S") == 362.0
    assert flops.peak_tflops("NVIDIA GeForce GTX 1080") is None


def test_vs_trl_gpu_report_prints_memory_mfu_and_the_target_last(capsys):
    """The CUDA branch of the report, fed made-up step times (no GPU needed)."""
    args = vs_trl.parse_args(["--device", "cuda", "--prompts", "2", "--samples", "2", "--new-tokens", "10"])
    step = lambda s: vs_trl.EngineTimes(step_s=[s], cpu_s=[s], lengths=[10.0], peak_mib=2048.0)  # noqa: E731
    rm, trl = step(1.0), step(2.0)
    rm.split = {k: [0.1] for k in ("perf/generate_s", "perf/ref_forward_s", "perf/reward_s", "perf/update_s", "other")}
    engines = {"rmcore": rm, "trl": trl, "trl-vllm": vs_trl.EngineTimes(skipped="vllm does not import")}
    summary = vs_trl_report.report(args, {"device_name": "NVIDIA H200"}, (150, 100), 90.0, engines)
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == "target rmcore >= 1.5x trl (HF generate) on a GPU: PASS" and summary["pass"]
    assert "ratio rmcore/trl completions/s: 2.00" in out and "trl-vllm skipped: vllm does not import" in out
    # 10 x 100 parameters x 4 rows x 100 tokens = 4e5 FLOPs per 1 s step, of 989 TFLOPs
    assert summary["engines"]["rmcore"]["mfu"] == pytest.approx(4e5 / 989e12)
    assert any(re.fullmatch(r"rmcore\s+peak memory 2,048 MiB .* MFU 0\.0%", line) for line in out), out


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_vs_trl_cuda_without_a_gpu_fails_in_one_line():
    out = subprocess.run([sys.executable, str(BENCH / "vs_trl.py"), "--device", "cuda"], capture_output=True,
                         text=True, timeout=120, cwd=ROOT)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == [out.stderr.strip()] and "no CUDA GPU" in out.stderr, out.stderr


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.skipif(not HAS_TRL, reason=NO_TRL)
def test_vs_trl_short_mode_on_cuda_reports_memory_mfu_and_the_target(tiny_lm_path):
    out = bench(str(BENCH / "vs_trl.py"), "--device", "cuda", "--model", tiny_lm_path, "--rounds", "1", "--steps", "2",
                "--warmup", "1", "--prompts", "2", "--samples", "2", "--new-tokens", "6", "--skip-vllm")
    assert re.search(r"^rmcore\s+peak memory [\d,]+ MiB .* MFU", out, flags=re.M), out
    assert re.search(r"^trl\s+peak memory [\d,]+ MiB .* MFU", out, flags=re.M) and "warning" not in out, out
    assert re.fullmatch(r"target rmcore >= 1.5x trl \(HF generate\) on a GPU: (PASS|FAIL)", out.strip().splitlines()[-1])


# --------------------------------------------------------------------------- ui_overhead
@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.skipif(not shutil.which("/usr/bin/chromium"), reason="Chromium is not installed at /usr/bin/chromium")
def test_ui_overhead_short_mode_prints_the_three_figures(builtin_model_cache):
    pytest.importorskip("psutil", reason="psutil is not installed (pip install -r requirements-bench.txt)")
    out = bench(str(BENCH / "ui_overhead.py"), "--short", timeout=900)
    summary = out[out.index("load average after"):]
    assert re.search(r"render Train .* median [\d.]+ s .* target <= 1.0 s: (PASS|FAIL)", summary), out
    assert re.search(r"render Compare .* median [\d.]+ s .* target <= 1.0 s: (PASS|FAIL)", summary), out
    assert re.search(r"throughput: headless [\d.]+ samples/s, .* = \d+% target >= 85%: (PASS|FAIL)", summary), out
    assert re.search(r"memory: RSS \d+ MB -> \d+ MB .* = [+-][\d.]+ MB .* target <= 50 MB: (PASS|FAIL)", summary), out


# --------------------------------------------------------------------------- the engine's fast paths
def test_shared_prompt_scoring_equals_the_full_forward_values_and_gradients(tiny_lm_path):
    """Prompts run once per distinct prompt (KV cache gathered to the rows) == one forward per row."""
    from rmcore import rollout
    from rmcore.backbones import load_causal_lm

    model, tok = load_causal_lm(tiny_lm_path, device=torch.device("cpu"))
    ids, mask = rollout.encode_prompts(tok, ["A short one.\nTL;DR:", "A longer document, with more words.\nTL;DR:"],
                                       max_new_tokens=8, model=model)
    batch = rollout.sample(model, tok, ids.repeat_interleave(3, 0), mask.repeat_interleave(3, 0), max_new_tokens=8,
                           generator=torch.Generator().manual_seed(0))
    assert rollout.distinct_prompts(batch.input_ids[:, :batch.prompt_len],
                                    batch.attention_mask[:, :batch.prompt_len]).ids.shape[0] == 2

    def scored(shared: bool):
        model.zero_grad()
        original = rollout.distinct_prompts
        if not shared:
            rollout.distinct_prompts = lambda *args: None  # the plain path: every row through the model
        try:
            lp, ent, hidden, _ = rollout.response_logprobs(model, batch, temperature=0.7, with_entropy=True,
                                                          with_hidden=True)
        finally:
            rollout.distinct_prompts = original
        (lp * batch.response_mask).sum().backward()
        return [lp, ent, hidden] + [p.grad.clone() for p in model.parameters()]

    for fast, plain in zip(scored(True), scored(False)):
        torch.testing.assert_close(fast, plain, atol=1e-5, rtol=1e-4)


def test_single_on_policy_pass_gives_the_metrics_of_a_separate_old_logprob_forward(tiny_lm_path, monkeypatch):
    from rmcore import online_step as policy_step

    def run() -> list[dict]:
        reports = []
        cfg = TrainConfig(backbone=tiny_lm_path, loss="grpo", ppo_epochs=1, kl_coef=0.1, steps=2, batch_size=2,
                          samples_per_prompt=3, max_new_tokens=6, eval_every=0, eval_prompts=2, lr=1e-3)
        rmcore.train(cfg, on_step=reports.append)
        return [{k: v for k, v in r.metrics.items() if not k.startswith("perf/")} for r in reports]

    fast = run()
    monkeypatch.setattr(policy_step, "single_on_policy_pass", lambda s, n: False)
    plain = run()
    assert [sorted(m) for m in fast] == [sorted(m) for m in plain]
    for f, p in zip(fast, plain):
        assert f == pytest.approx(p, rel=1e-5, abs=1e-6)
    assert fast[-1]["policy/ratio_mean"] == 1.0  # on-policy: the ratio of a pass to itself


def test_self_bleu_is_logged_on_the_first_every_tenth_and_last_step(tiny_lm_path):
    reports = []
    rmcore.train(TrainConfig(backbone=tiny_lm_path, loss="reinforce", steps=12, batch_size=2, samples_per_prompt=2,
                             max_new_tokens=4, eval_every=0, eval_prompts=2), on_step=reports.append)
    assert [r.step for r in reports if "policy/self_bleu" in r.metrics] == [1, 10, 12]
