"""The metric vocabulary: every key a trainer logs lives in one of six namespaces.

    loss/…    the objective and its parts (loss/total is what the optimizer stepped on)
    reward/…  the reward: reward/total and one key per term (reward/rouge, reward/fluency, …)
    policy/…  what the policy does: KL to the reference, entropy, length, diversity of its
              samples, and each algorithm's own diagnostics (clip fraction, approx KL, ratio,
              value-clip fraction, DPO's implicit rewards)
    rm/…      a reward model's training batch: accuracy, margin, score statistics
    eval/…    greedy (policy) or held-out (reward model) evaluation
    perf/…    timings and throughput

Runs recorded before this vocabulary used gen/, batch/, value/ and rewards/; ``canonical``
maps those keys when a store is read, and ``stored_names`` gives the names to look up, so
old runs chart and compare beside new ones.
"""
from __future__ import annotations

NAMESPACES = ("loss/", "reward/", "policy/", "rm/", "eval/", "perf/")

# Keys more than one module names.
LOSS_TOTAL = "loss/total"
REWARD_TOTAL = "reward/total"
REWARD_TOTAL_STD = "reward/total_std"
REWARD_WITH_KL = "reward/with_kl_penalty"   # the sequence reward minus β·KL, when KL is placed in the reward
POLICY_KL = "policy/kl"
KL_COEF = "policy/kl_coef"            # the KL coefficient in force, when the adaptive controller moves it
SIGNAL_SHARE = "policy/signal_share/"  # + term: its share of the within-group reward spread (group algorithms)
ZERO_STD_FRAC = "policy/zero_std_frac"  # share of groups whose rewards all tie (no signal for a group algorithm)
POLICY_ENTROPY = "policy/entropy"
RESPONSE_LENGTH = "policy/response_length"
DISTINCT_N = "policy/distinct_n"
SELF_BLEU = "policy/self_bleu"
CLIPFRAC = "policy/clipfrac"
CLIPFRAC_LOW = "policy/clipfrac_low"     # the clip binds below: ρ < 1 − ε_low on a negative advantage
CLIPFRAC_HIGH = "policy/clipfrac_high"   # the clip binds above: ρ > 1 + ε_high on a positive advantage
APPROX_KL = "policy/approx_kl"
RATIO_MEAN = "policy/ratio_mean"
VALUE_CLIPFRAC = "policy/value_clipfrac"
IMPLICIT_CHOSEN = "policy/implicit_reward_chosen"
IMPLICIT_REJECTED = "policy/implicit_reward_rejected"
IMPLICIT_MARGIN = "policy/implicit_reward_margin"
IMPLICIT_ACCURACY = "policy/implicit_reward_accuracy"
EVAL_REWARD = "eval/reward"
EVAL_RESPONSE_LENGTH = "eval/response_length"
RM_ACCURACY = "rm/accuracy"
EVAL_ACCURACY = "eval/accuracy"

# Old key -> key in this vocabulary.
RENAMED = {
    "gen/response_length": RESPONSE_LENGTH,
    "batch/distinct_n": DISTINCT_N,
    "batch/self_bleu": SELF_BLEU,
    "value/clipfrac": VALUE_CLIPFRAC,
    "rewards/chosen": IMPLICIT_CHOSEN,
    "rewards/rejected": IMPLICIT_REJECTED,
    "rewards/margin": IMPLICIT_MARGIN,
    "rewards/accuracy": IMPLICIT_ACCURACY,
}
_OLD_NAMES: dict[str, list[str]] = {}
for _old, _new in RENAMED.items():
    _OLD_NAMES.setdefault(_new, []).append(_old)

# Keys where smaller is better; every other key counts "best" as the largest value.
LOWER_IS_BETTER = ("loss/", POLICY_KL, APPROX_KL, "perf/step_time", SELF_BLEU)


def canonical(key: str) -> str:
    """The key in this vocabulary (an old run's key mapped; any other key unchanged)."""
    return RENAMED.get(key, key)


def stored_names(keys: list[str]) -> list[str]:
    """The names a store may hold these keys under: each key and the old names it replaced."""
    return [name for key in keys for name in (key, *_OLD_NAMES.get(key, ()))]


def in_vocabulary(key: str) -> bool:
    return key.startswith(NAMESPACES)


def lower_is_better(key: str) -> bool:
    return canonical(key).startswith(LOWER_IS_BETTER)
