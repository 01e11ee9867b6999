"""AlgoSpace: cooperating trading agents trained with MAPPO on Ray RLlib.

The small public API (imported on first use, so ``import algospace`` stays light):

- ``run_experiment(file, quick=False, sets=())``: a phase or pipeline YAML through Ray
  Tune, exactly as ``python -m experiments.run`` (returns each phase's summary)
- ``train(TrainConfig(...))``: one RLlib training run without Tune
- ``backtest(env_name, EnvConfig(...), policy)``, ``greedy_policy(load_actors(ckpt))``
- ``evaluate(EvaluateConfig(checkpoint=...))``: the HTML/JSON report of a checkpoint
- ``compute_metrics(equity)``: dollar-true metrics of an equity curve
- ``make_env(name, config)``: a PettingZoo ParallelEnv (``strategic_v0``, ``tactical_v0``,
  ``joint_v0``, ``single_v0``)
- ``load_experiment(path)``, ``DataConfig``, ``EnvConfig``, ``TrainConfig``,
  ``DecisionEngine``, ``EngineConfig``
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API: dict[str, tuple[str, str]] = {
    "run_experiment": ("algospace.tune.driver", "run_experiment"),
    "train": ("algospace.training.train", "train"),
    "TrainConfig": ("algospace.training.builder", "TrainConfig"),
    "backtest": ("algospace.evaluation.backtest", "backtest"),
    "greedy_policy": ("algospace.evaluation.backtest", "greedy_policy"),
    "load_actors": ("algospace.training.checkpoint", "load_actors"),
    "evaluate": ("algospace.evaluation.report", "evaluate"),
    "EvaluateConfig": ("algospace.evaluation.report", "EvaluateConfig"),
    "compute_metrics": ("algospace.evaluation.metrics", "compute_metrics"),
    "make_env": ("envs.registry", "make_parallel_env"),
    "load_experiment": ("algospace.config", "load_experiment"),
    "DataConfig": ("algospace.config", "DataConfig"),
    "EnvConfig": ("algospace.config", "EnvConfig"),
    "DecisionEngine": ("algospace.inference.engine", "DecisionEngine"),
    "EngineConfig": ("algospace.inference.engine", "EngineConfig"),
}
"""Public name → (module, attribute)."""

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    """Import a public name on first use (PEP 562)."""
    if name not in _API:
        raise AttributeError(f"module 'algospace' has no attribute {name!r}; the public API is "
                             f"{', '.join(_API)}")
    module, attr = _API[name]
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
