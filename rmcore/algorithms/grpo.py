"""GRPO (Shao et al. 2024, DeepSeekMath, arXiv:2402.03300): PPO's clip without a critic.

    A_i = (R_i − mean_group) / (std_group + 1e-4)   over each prompt's G samples, on all its tokens
    ρ_t = π(y_t) / π_old(y_t)
    L   = reduce_t(−min(ρ_t A_i, clip(ρ_t, 1 − ε, 1 + ε) A_i))      eq. 3
        + kl_coef · KL(π ‖ π_ref)                                    (the shared KL term, in the loss by default)

std is torch.std's unbiased (G − 1) estimate and 1e-4 is added outside the root, both as in
TRL's GRPOTrainer. The paper's 1/G Σ_i 1/|o_i| Σ_t is loss_norm "seq_mean"; the default
"token_mean" is DAPO's. With ppo_epochs = minibatches = 1 the ratio is exactly 1 and GRPO
is a group-normalised REINFORCE. Options: clip_eps, ppo_epochs, minibatches (G ≥ 2).
Diagnostics: policy/clipfrac, policy/approx_kl, policy/ratio_mean.
"""
from rmcore import advantages as adv
from rmcore.algorithms.base import Algorithm
from rmcore.losses import grpo_loss
from rmcore.metrics import APPROX_KL, CLIPFRAC, RATIO_MEAN
from rmcore.online_step import online_step
from rmcore.step_inputs import AdvantageInputs, LossInputs


def advantages(x: AdvantageInputs):
    return adv.group_normalized_advantages(x.rewards, x.cfg.samples_per_prompt), None


def loss(x: LossInputs):
    loss, stats = grpo_loss(x.logprobs, x.old_logprobs, x.advantages, x.mask, clip_eps=x.cfg.clip_eps, **x.norm())
    return loss, {**stats, "loss/grpo": loss.item()}


ALGORITHM = Algorithm(
    name="grpo", label="GRPO", order=60, min_samples=2, multi_epoch=True,
    description="Shao et al. (2024): group-normalised advantages (R − mean)/std over G samples, clipped ratio, "
                "KL to the reference in the loss.",
    step=online_step, advantages=advantages, loss=loss, options=("clip_eps", "ppo_epochs", "minibatches"),
    diagnostics=(CLIPFRAC, APPROX_KL, RATIO_MEAN))
