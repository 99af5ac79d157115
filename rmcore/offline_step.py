"""One optimizer step of an offline algorithm: on references (MLE) or preference pairs (DPO).

    sft:    references → algo.loss on their token log-probs → optimizer step
    pairs:  (chosen, rejected) → summed log-probs and lengths under the policy (and the frozen
            reference, for the algorithms that read one) → algo.loss → optimizer step

Both then sample one completion per prompt and score it (no gradient), so offline runs chart
the same rewards as online ones.
"""
from __future__ import annotations

import time

import torch
from torch import Tensor

from rmcore.lora import reference_context
from rmcore.policy_step import Session, StepResult, backward_and_step, finish, rollout_and_score, rollout_metrics
from rmcore.rollout import Rollout, encode_pairs, response_logprobs
from rmcore.step_inputs import LossInputs, PairInputs


def sft_step(s: Session, examples: list) -> StepResult:
    """The algorithm's loss on the reference summaries of a batch of examples."""
    t0 = time.perf_counter()
    prompts, refs = [e.prompt for e in examples], [e.reference for e in examples]
    batch = encode_pairs(s.tokenizer, prompts, refs, model=s.policy, max_new_tokens=s.cfg.max_new_tokens,
                         device=s.device)
    logprobs, *_ = response_logprobs(s.policy, batch)
    loss, stats = s.algo.loss(LossInputs(cfg=s.cfg, logprobs=logprobs, mask=batch.response_mask))
    backward_and_step(s, loss)
    metrics = {**stats, "loss/total": loss.item(), "perf/update_s": time.perf_counter() - t0}
    return monitor(s, prompts, refs, metrics)


def pairs_step(s: Session, pairs: list) -> StepResult:
    """The algorithm's loss on a batch of preference pairs (rmcore.data.PreferencePair)."""
    t0 = time.perf_counter()
    prompts = [p.prompt for p in pairs]
    chosen = encode_pairs(s.tokenizer, prompts, [p.chosen for p in pairs], model=s.policy,
                          max_new_tokens=s.cfg.max_new_tokens, device=s.device)
    rejected = encode_pairs(s.tokenizer, prompts, [p.rejected for p in pairs], model=s.policy,
                            max_new_tokens=s.cfg.max_new_tokens, device=s.device)

    def seq_logps(model, b: Rollout) -> Tensor:  # log π(y|x) summed over response tokens  (B,)
        return (response_logprobs(model, b)[0] * b.response_mask).sum(-1)

    ref_c = ref_r = None
    if s.algo.needs_reference:  # a reference-free loss (SimPO) never runs, nor loads, one
        with torch.inference_mode(), reference_context(s.ref, s.policy):
            ref_c, ref_r = seq_logps(s.ref, chosen).clone(), seq_logps(s.ref, rejected).clone()
    loss, stats = s.algo.loss(PairInputs(cfg=s.cfg, chosen_logps=seq_logps(s.policy, chosen),
                                         rejected_logps=seq_logps(s.policy, rejected),
                                         ref_chosen_logps=ref_c, ref_rejected_logps=ref_r,
                                         chosen_lengths=chosen.response_mask.sum(-1),
                                         rejected_lengths=rejected.response_mask.sum(-1)))
    backward_and_step(s, loss)
    metrics = {**stats, "loss/total": loss.item(), "perf/update_s": time.perf_counter() - t0}
    return monitor(s, prompts, [p.chosen for p in pairs], metrics)


def monitor(s: Session, prompts: list[str], refs: list[str], metrics: dict[str, float]) -> StepResult:
    """One sampled completion per prompt, scored, so offline losses chart the same rewards."""
    r = rollout_and_score(s, prompts, refs, 1)
    metrics = {**metrics, **r["timings"]}
    metrics.update(rollout_metrics(s, r, None))
    return finish(s, r, metrics)
