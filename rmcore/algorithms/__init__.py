"""POLICY_LOSSES: the registry of policy algorithms, one module of this package each.

Every module (mle.py, ppo.py, …) defines ``ALGORITHM``, an rmcore.algorithms.base.Algorithm
that carries its step, advantage estimator, loss and diagnostics; this file collects them, so
adding an algorithm is adding its module (and a test), never editing a page or another module.
"""
from __future__ import annotations

import importlib
import pkgutil

from rmcore.algorithms.base import Algorithm
from rmcore.errors import ConfigError


def _discover() -> dict[str, Algorithm]:
    found = []
    for module in pkgutil.iter_modules(__path__):
        if module.name == "base" or module.name.startswith("_"):
            continue
        algo = importlib.import_module(f"{__name__}.{module.name}").ALGORITHM
        if algo.name != module.name:
            raise RuntimeError(f"rmcore.algorithms.{module.name} defines an algorithm named {algo.name!r}; "
                               "the module and the algorithm must share one name.")
        found.append(algo)
    return {a.name: a for a in sorted(found, key=lambda a: (a.order, a.name))}


POLICY_LOSSES: dict[str, Algorithm] = _discover()


def get_algorithm(name: str) -> Algorithm:
    if name not in POLICY_LOSSES:
        raise ConfigError(f"Unknown loss {name!r}; valid policy losses: {', '.join(POLICY_LOSSES)}.")
    return POLICY_LOSSES[name]


__all__ = ["Algorithm", "POLICY_LOSSES", "get_algorithm"]
