"""Take rows out of a scored rollout, or join several: what dynamic sampling needs.

A scored rollout is the dict rmcore.policy_step.rollout_and_score returns: the token batch
(rmcore.rollout.Rollout), the per-token tensors of its rows (old_lp, entropy, old_values,
ref_lp; (N, T) or None), the prompts and references repeated per row, the reward breakdown
and the timings. Rows keep their prompt-major group order, so whole groups selected or
joined stay groups. Joined batches are re-padded: prompts on the left to the longest prompt,
responses on the right to the longest response; position ids come from the attention mask,
so every real token keeps its position.
"""
from __future__ import annotations

import torch
from torch import Tensor

from rmcore.rewards import RewardBreakdown
from rmcore.rollout import Rollout

TOKEN_KEYS = ("old_lp", "entropy", "old_values", "ref_lp")


def select_rows(r: dict, rows: list[int]) -> dict:
    """The scored rollout of these rows only, in this order."""
    batch = r["batch"]
    idx = torch.tensor(rows, dtype=torch.long, device=batch.input_ids.device)
    out = dict(r)
    out["batch"] = Rollout(batch.input_ids[idx], batch.attention_mask[idx], batch.response_mask[idx],
                           batch.prompt_len, [batch.completions[i] for i in rows])
    for key in TOKEN_KEYS:
        out[key] = None if r[key] is None else r[key][idx]
    out["prompts"], out["refs"] = [r["prompts"][i] for i in rows], [r["refs"][i] for i in rows]
    rewards = r["rewards"]
    out["rewards"] = RewardBreakdown(total=[rewards.total[i] for i in rows],
                                     terms={k: [v[i] for i in rows] for k, v in rewards.terms.items()},
                                     weights=dict(rewards.weights))
    return out


def _pad_right(t: Tensor, width: int, value: float | int = 0) -> Tensor:
    return torch.nn.functional.pad(t, (0, width - t.shape[1]), value=value)


def _pad_left(t: Tensor, width: int, value: float | int = 0) -> Tensor:
    return torch.nn.functional.pad(t, (width - t.shape[1], 0), value=value)


def concat_scored(parts: list[dict], pad_id: int) -> dict:
    """Several scored rollouts of one step (same reward terms) as one, in the given order."""
    if len(parts) == 1:
        return parts[0]
    P = max(p["batch"].prompt_len for p in parts)
    T = max(p["batch"].response_mask.shape[1] for p in parts)
    ids, attn, resp_mask = [], [], []
    for p in parts:
        b = p["batch"]
        prompt, response = b.input_ids[:, :b.prompt_len], b.input_ids[:, b.prompt_len:]
        ids.append(torch.cat([_pad_left(prompt, P, pad_id), _pad_right(response, T, pad_id)], 1))
        attn.append(torch.cat([_pad_left(b.attention_mask[:, :b.prompt_len], P),
                               _pad_right(b.attention_mask[:, b.prompt_len:], T)], 1))
        resp_mask.append(_pad_right(b.response_mask, T))
    out = {"batch": Rollout(torch.cat(ids), torch.cat(attn), torch.cat(resp_mask), P,
                            [c for p in parts for c in p["batch"].completions])}
    for key in TOKEN_KEYS:
        tensors = [p[key] for p in parts]
        out[key] = None if any(t is None for t in tensors) else torch.cat([_pad_right(t, T) for t in tensors])
    out["prompts"] = [x for p in parts for x in p["prompts"]]
    out["refs"] = [x for p in parts for x in p["refs"]]
    first = parts[0]["rewards"]
    out["rewards"] = RewardBreakdown(total=[x for p in parts for x in p["rewards"].total],
                                     terms={k: [x for p in parts for x in p["rewards"].terms[k]] for k in first.terms},
                                     weights=dict(first.weights))
    out["timings"] = {k: sum(p["timings"].get(k, 0.0) for p in parts) for k in parts[0]["timings"]}
    return out


# Rewards this close count as equal: identical completions in one batch may be scored a
# rounding error apart (batched matmuls), which is no signal to learn from.
TIE_TOLERANCE = 1e-6


def tied_groups(totals: list[float], group_size: int) -> list[bool]:
    """For each prompt's group of samples (prompt-major), whether every reward in it is equal
    (within TIE_TOLERANCE, relative beyond 1): a group algorithm's advantages are then 0 for
    all of them, and the group teaches nothing."""
    groups = [totals[i:i + group_size] for i in range(0, len(totals), group_size)]
    return [max(g) - min(g) <= TIE_TOLERANCE * max(1.0, abs(max(g)), abs(min(g))) for g in groups]
