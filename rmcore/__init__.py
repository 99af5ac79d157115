"""rmcore: train language-model policies and reward models with the losses of RLHF.

    rmcore.train(TrainConfig(...), on_step=..., should_stop=...)            # policy
    rmcore.train_reward_model(RewardModelConfig(...), on_step=...)          # reward model

Imports stay lazy so `python -m rmcore --help` and the app's first paint load no torch.
"""
from rmcore.config import RewardModelConfig, TrainConfig

__all__ = ["TrainConfig", "RewardModelConfig", "train", "train_reward_model"]


def train(config, on_step=None, should_stop=None, on_progress=None, run_dir=None, resume_from=None):
    from rmcore.trainer import train as _train

    return _train(config, on_step=on_step, should_stop=should_stop, on_progress=on_progress, run_dir=run_dir,
                  resume_from=resume_from)


def train_reward_model(config, on_step=None, should_stop=None, on_progress=None, run_dir=None):
    from rmcore.rm_trainer import train_reward_model as _train

    return _train(config, on_step=on_step, should_stop=should_stop, on_progress=on_progress, run_dir=run_dir)
