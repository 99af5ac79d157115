"""PPO for language models (Schulman et al. 2017, arXiv:1707.06347; InstructGPT's recipe).

Advantages, per token, by GAE (Schulman et al. 2016, arXiv:1506.02438):
    r_t = R on the last response token, 0 elsewhere; − β · KL_t on every token when
          kl_placement is "reward" (InstructGPT; β = kl_coef, or the adaptive controller's)
    δ_t = r_t + γ V(s_{t+1}) − V(s_t),   A_t = δ_t + γλ A_{t+1},   returns R_t = A_t + V(s_t)
    A   is then whitened over the batch's response tokens (TRL's masked_whiten)

Loss, for ppo_epochs × minibatches updates on each rollout, ρ_t = π(y_t) / π_old(y_t):
    L = reduce_t(−min(ρ_t A_t, clip(ρ_t, 1 − ε, 1 + ε) A_t))                 eq. 7
      + vf_coef · reduce_t(½ max((V − R)², (V_old + clip(V − V_old, −c, c) − R)²))

Options: clip_eps (ε), value_clip (c; 0 = unclipped), vf_coef, gae_gamma (γ), gae_lambda (λ),
ppo_epochs, minibatches. Diagnostics: policy/clipfrac (tokens where the clip binds),
policy/approx_kl (k3 of KL(π_old ‖ π)), policy/ratio_mean, policy/value_clipfrac, loss/value.
"""
from rmcore import advantages as adv
from rmcore.algorithms.base import Algorithm
from rmcore.losses import ppo_loss
from rmcore.metrics import APPROX_KL, CLIPFRAC, RATIO_MEAN, VALUE_CLIPFRAC
from rmcore.online_step import online_step
from rmcore.step_inputs import AdvantageInputs, LossInputs


def advantages(x: AdvantageInputs):
    cfg = x.cfg
    token_rewards = adv.terminal_rewards(x.raw_rewards, x.mask)
    if x.token_kl is not None and cfg.kl_placement == "reward":
        token_rewards = token_rewards - x.kl_coef * x.token_kl
    a, returns = adv.gae(token_rewards, x.old_values, x.mask, cfg.gae_gamma, cfg.gae_lambda)
    return adv.whiten(a, x.mask), returns


def loss(x: LossInputs):
    cfg = x.cfg
    return ppo_loss(x.logprobs, x.old_logprobs, x.advantages, x.values, x.old_values, x.returns, x.mask,
                    clip_eps=cfg.clip_eps, value_clip=cfg.value_clip or None, vf_coef=cfg.vf_coef, **x.norm())


ALGORITHM = Algorithm(
    name="ppo", label="PPO", order=40,
    description="Schulman et al. (2017): clipped ratio surrogate, clipped value loss, GAE, several epochs per batch.",
    step=online_step, advantages=advantages, loss=loss, value_head=True, multi_epoch=True,
    options=("clip_eps", "value_clip", "vf_coef", "gae_gamma", "gae_lambda", "ppo_epochs", "minibatches"),
    diagnostics=(CLIPFRAC, APPROX_KL, RATIO_MEAN, VALUE_CLIPFRAC, "loss/value"))
