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

import vs_trl  # noqa: E402

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
    tok = vs_trl.gpt2_like_tokenizer(3000)
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
    from rmcore import policy_step

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
    assert [r.step for r in reports if "batch/self_bleu" in r.metrics] == [1, 10, 12]
