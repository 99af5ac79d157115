"""REINFORCE with a baseline: subtract b from the reward to cut variance, keep the gradient unbiased.

    A_i = R_i − b
    L   = reduce_t(−A_i · log π(y_t | x, y_<t))

Two baselines (option ``baseline``):
  ema     b = the moving average of past batches' mean reward, decay ``baseline_decay``; the
          first batch uses its own mean. b comes from *before* the batch, so it does not
          depend on R_i and the estimate stays unbiased.
  greedy  b = the reward of the prompt's greedy completion: self-critical sequence training
          (Rennie et al. 2017, arXiv:1612.00563); costs one greedy decode per prompt.
Data: prompts; G samples each.
"""
from rmcore import advantages as adv
from rmcore.algorithms.base import Algorithm
from rmcore.losses import policy_gradient_loss
from rmcore.online_step import greedy_rewards, online_step
from rmcore.step_inputs import AdvantageInputs, LossInputs


def advantages(x: AdvantageInputs):
    s, G = x.session, x.cfg.samples_per_prompt
    if x.cfg.baseline == "greedy":
        greedy = greedy_rewards(s, x.prompts, x.refs)                         # (num_prompts,)
        return adv.self_critical_advantages(x.rewards, greedy.repeat_interleave(G)), None
    mean = x.rewards.mean().item()
    b = s.baseline if s.baseline is not None else mean  # first batch: its own mean
    s.baseline = adv.ema_baseline_update(s.baseline, mean, x.cfg.baseline_decay)
    return adv.baseline_advantages(x.rewards, b), None


def loss(x: LossInputs):
    loss, stats = policy_gradient_loss(x.logprobs, x.advantages, x.mask, **x.norm())
    return loss, {**stats, "loss/reinforce_baseline": loss.item()}


ALGORITHM = Algorithm(
    name="reinforce_baseline", label="REINFORCE + baseline", order=20,
    description="−(R − b)·log π(y) with b a moving average of rewards or the greedy sample's reward "
                "(self-critical, Rennie et al. 2017).",
    step=online_step, advantages=advantages, loss=loss, options=("baseline", "baseline_decay"))
