"""Record (or check) the reference metrics that pin the engine's numbers across refactors.

    python tests/golden/record.py          # rewrite tests/golden/metrics.json from this checkout
    pytest tests/test_golden.py            # compare this checkout against it

Every case trains a 1-layer random GPT-2 (the same one the tests' ``tiny_lm_path`` builds)
for 3 steps on CPU in fp32 with one thread, and keeps every metric of every step except the
timings (perf/*), plus each step's sampled completions. Recorded before a refactor, they
prove the refactor changed no number.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BASE = dict(steps=3, batch_size=2, samples_per_prompt=2, max_new_tokens=8, eval_every=2, eval_prompts=4,
            log_generations=2, checkpoint_every=0, device="cpu", precision="fp32", lr=1e-3)

# name -> overrides of BASE: every algorithm at its defaults, and each option that takes a
# different code path (advantage estimator, KL placement, epochs/minibatches, reductions).
POLICY_CASES = {
    "mle": dict(loss="mle"),
    "reinforce": dict(loss="reinforce"),
    "reinforce_entropy_k1": dict(loss="reinforce", entropy_coef=0.01, kl_estimator="k1"),
    "reinforce_baseline_ema": dict(loss="reinforce_baseline"),
    "reinforce_baseline_greedy": dict(loss="reinforce_baseline", baseline="greedy"),
    "actor_critic": dict(loss="actor_critic"),
    "ppo": dict(loss="ppo"),
    "ppo_kl_reward_minibatches": dict(loss="ppo", kl_placement="reward", minibatches=2),
    "rloo": dict(loss="rloo"),
    "rloo_seq_mean": dict(loss="rloo", loss_norm="seq_mean"),
    "grpo": dict(loss="grpo"),
    "grpo_one_pass_fixed_sum": dict(loss="grpo", ppo_epochs=1, loss_norm="fixed_sum", kl_estimator="k2"),
    "grpo_no_kl": dict(loss="grpo", kl_coef=0.0, beta=0.0),
    "dpo": dict(loss="dpo"),
}
RM_BASE = dict(steps=3, batch_size=4, max_length=64, eval_every=2, eval_pairs=8, device="cpu", precision="fp32",
               lr=1e-3)
RM_CASES = {
    "bradley_terry": dict(loss="bradley_terry"),
    "hinge": dict(loss="hinge", margin=1.0),
    "mse": dict(loss="mse"),
    "cross_entropy": dict(loss="cross_entropy"),
    "focal": dict(loss="focal", center_coef=0.01),
    "triplet": dict(loss="triplet", margin=1.0),
}


def build_tiny_lm(path: Path) -> str:
    """The tests' tiny_lm_path model (tests/conftest.py), built here without pytest."""
    from rmcore.backbones import new_gpt2, train_tokenizer
    from rmcore.data.synth_news import load_synth_news

    task = load_synth_news(seed=0, n_train=300, n_eval=20)
    tokenizer = train_tokenizer([e.prompt for e in task.train] + [e.reference for e in task.train],
                                vocab_size=600)
    model = new_gpt2(tokenizer, n_layer=1, n_embd=32, n_head=2, n_positions=256, seed=0)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return str(path)


def run_case(kind: str, overrides: dict, backbone: str) -> list[dict]:
    """[{step, metrics (no perf/*), completions}] of one short run."""
    import torch

    from rmcore.config import RewardModelConfig, TrainConfig
    from rmcore.rm_trainer import train_reward_model
    from rmcore.trainer import train

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # bit-for-bit: reductions split over threads can round differently
    steps: list[dict] = []

    def on_step(report) -> None:
        steps.append({"step": report.step,
                      "metrics": {k: v for k, v in sorted(report.metrics.items()) if not k.startswith("perf/")},
                      "completions": [g["completion"] for g in (report.generations or [])]})

    try:
        if kind == "policy":
            train(TrainConfig(backbone=backbone, **{**BASE, **overrides}), on_step=on_step)
        else:
            train_reward_model(RewardModelConfig(backbone=backbone, **{**RM_BASE, **overrides}), on_step=on_step)
    finally:
        torch.set_num_threads(threads)  # the rest of a test session keeps its threads
    return steps


def record_all(backbone: str) -> dict:
    out = {"policy": {}, "reward_model": {}}
    for name, overrides in POLICY_CASES.items():
        out["policy"][name] = run_case("policy", overrides, backbone)
    for name, overrides in RM_CASES.items():
        out["reward_model"][name] = run_case("reward_model", overrides, backbone)
    return out


if __name__ == "__main__":
    import tempfile

    sys.path.insert(0, str(HERE.parents[1]))
    with tempfile.TemporaryDirectory() as tmp:
        result = record_all(build_tiny_lm(Path(tmp)))
    (HERE / "metrics.json").write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    print(f"recorded {len(result['policy'])} policy and {len(result['reward_model'])} reward-model cases")
