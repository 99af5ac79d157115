"""`preflight(config, runs_dir)`: every check that can fail a run, before anything is written.

One entry for both kinds of run and every caller (CLI, Runner.submit / submit_many / resume,
the pages through the Runner). In order, each failing with one RmcoreError sentence that
names the field or the file:

    fields:   config.validate(): types, ranges, text, enums, loss × family × margin
    device:   there (cuda:N a visible GPU) and able to run the precision asked for
    backbone: a local folder holds config, tokenizer and readable safetensors; a hub id's
              config resolves (or the hub is out of reach: HubUnavailableError)
    data:     the task loads and fits the run (policy: rmcore.trainer.preflight, which also
              checks the context length; reward model: its training and held-out pairs)
    δ term:   the reward model resolves to a checkpoint folder of a reward model

No weights are loaded; the data is read (it is read again when the run starts, since the
file may change in between).
"""
from __future__ import annotations

from pathlib import Path

from rmcore import placement
from rmcore.config import RewardModelConfig, TrainConfig
from rmcore.errors import ConfigError


def preflight(config: TrainConfig | RewardModelConfig, runs_dir: str | Path | None = None) -> None:
    """Raise the rmcore error of the first check that fails; write nothing.

    runs_dir: where a δ reward model given as a run id is looked up, and where the built-in
    model is cached.
    """
    config.validate()
    check_device(config.device, config.precision)
    check_backbone(config.backbone, trust_remote_code=config.trust_remote_code, runs_dir=runs_dir)
    if isinstance(config, TrainConfig):
        from rmcore.trainer import preflight as policy_data_checks

        policy_data_checks(config)
        if config.delta != 0:
            check_reward_model(config.reward_model, runs_dir, trust_remote_code=config.trust_remote_code)
    else:
        from rmcore.rm_trainer import load_pairs

        load_pairs(config)


def check_device(device: str, precision: str) -> None:
    """The device is there (cuda:N a visible GPU) and runs the precision asked for."""
    from rmcore.precision import resolve_precision

    placement.check_device(device)
    resolve_precision(precision, placement.torch_device(device))


def check_backbone(backbone: str, *, trust_remote_code: bool = False, runs_dir: str | Path | None = None) -> None:
    """A local folder must be complete (rmcore.backbones.check_model_folder); the built-in
    model is checked once it is built (building it is the run's job); a hub id must resolve."""
    from rmcore.backbones import BUILTIN, _from_pretrained, builtin_dir, check_model_folder, model_cache_dir

    if backbone == BUILTIN:
        built = builtin_dir(model_cache_dir(runs_dir))
        if (built / "config.json").is_file():
            check_model_folder(str(built))
        return
    if check_model_folder(backbone, trust_remote_code=trust_remote_code) is None:
        from transformers import AutoConfig

        _from_pretrained(AutoConfig, backbone, trust_remote_code=trust_remote_code)


def check_reward_model(ref: str, runs_dir: str | Path | None = None, *, trust_remote_code: bool = False) -> None:
    """The δ term's reward model: a run id or folder that resolves to a complete checkpoint of
    the kind it says it is (a scalar model has exactly one output label)."""
    from rmcore.backbones import check_model_folder
    from rmcore.rm_eval import SCALAR, saved_kind
    from rmcore.run_refs import resolve_reward_model

    folder = resolve_reward_model(ref, runs_dir)
    kind = saved_kind(folder)
    model_config = check_model_folder(str(folder), trust_remote_code=trust_remote_code)
    labels = getattr(model_config, "num_labels", None)
    if kind == SCALAR and labels != 1:
        raise ConfigError(f"reward_model {folder} is not a scalar reward model: it has {labels} output labels, "
                          "a reward model has one; pass a reward-model run id or its checkpoint folder.")
