"""rmcore: train language-model policies and reward models with the losses of RLHF.

    rmcore.train(TrainConfig(...), on_step=..., should_stop=...)            # policy
    rmcore.train_reward_model(RewardModelConfig(...), on_step=...)          # reward model

Imports stay lazy so `python -m rmcore --help` and the app's first paint load no torch.
"""
from rmcore.config import RewardModelConfig, TrainConfig

__all__ = ["TrainConfig", "RewardModelConfig", "train", "train_reward_model"]


def train(config, on_step=None, should_stop=None, on_progress=None, run_dir=None, resume_from=None):
    """rmcore.trainer.train, with a δ reward model given as a run id resolved to its folder first
    (in the run's runs dir, else $RMCORE_RUNS_DIR or ./runs)."""
    from pathlib import Path

    from rmcore.run_refs import resolved_config
    from rmcore.trainer import train as _train

    config = resolved_config(config, Path(run_dir).parent if run_dir else None)
    return _train(config, on_step=on_step, should_stop=should_stop, on_progress=on_progress, run_dir=run_dir,
                  resume_from=resume_from)


def train_reward_model(config, on_step=None, should_stop=None, on_progress=None, run_dir=None):
    from rmcore.rm_trainer import train_reward_model as _train

    return _train(config, on_step=on_step, should_stop=should_stop, on_progress=on_progress, run_dir=run_dir)
