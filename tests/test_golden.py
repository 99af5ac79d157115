"""The engine's numbers, pinned: every case of tests/golden/record.py gives the recorded metrics.

The reference (tests/golden/metrics.json) was recorded before the algorithm registry moved
each algorithm into its own module; a refactor that changes no maths changes no number here.
Keys recorded under an older vocabulary are compared through rmcore.metrics.canonical. If a
change is meant to move these numbers, rerun `python tests/golden/record.py` and say why in
the commit.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from rmcore.metrics import canonical, in_vocabulary

sys.path.insert(0, str(Path(__file__).parent / "golden"))
import record  # noqa: E402

REFERENCE = json.loads((Path(__file__).parent / "golden" / "metrics.json").read_text())
# CPUs differ in their float32 kernels (AVX2 vs AVX-512 sum in other orders), and Adam turns
# a rounding-sized gradient into a step of the learning rate's size. The same checkout,
# recorded on one 2-core machine, gave on another: the hinge model's eval mean 1.8e-5 apart
# (relative) and DPO's implicit rewards, ~1e-4 in size (log-probs of a model two steps from its
# reference), 1.1e-4 apart. A changed formula moves these numbers far more; the sampled
# completions are still compared exactly.
REL, ABS = 1e-4, 2e-4
CASES = [("policy", n) for n in record.POLICY_CASES] + [("reward_model", n) for n in record.RM_CASES]


@pytest.mark.parametrize("kind,name", CASES, ids=[f"{k}-{n}" for k, n in CASES])
def test_case_reproduces_the_recorded_metrics(kind, name, tiny_lm_path):
    overrides = (record.POLICY_CASES if kind == "policy" else record.RM_CASES)[name]
    got = record.run_case(kind, overrides, tiny_lm_path)
    want = REFERENCE[kind][name]
    assert [s["step"] for s in got] == [s["step"] for s in want]
    for g, w in zip(got, want):
        assert g["completions"] == w["completions"], f"step {w['step']}: different samples"
        expected = {canonical(k): v for k, v in w["metrics"].items()}
        missing = sorted(set(expected) - set(g["metrics"]))
        assert not missing, f"step {w['step']}: no longer logged: {missing}"
        for key, value in expected.items():
            assert g["metrics"][key] == pytest.approx(value, rel=REL, abs=ABS), f"step {w['step']} {key}"
        assert all(in_vocabulary(k) for k in g["metrics"]), sorted(k for k in g["metrics"] if not in_vocabulary(k))
