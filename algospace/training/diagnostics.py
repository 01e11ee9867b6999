"""What the learner reports each iteration, and the flat row a progress line keeps.

The learner (:mod:`algospace.training.mappo`) logs, per module, the means over the
iteration's minibatches of the policy loss, entropy, approximate KL and clip fraction,
the rows it trained on, and (MAPPO) the critic's loss and value-clip fraction on that
module's rows; its pipeline logs the rows in the batch and the value function's
explained variance, per module and per layer, and the value targets' scale.
:func:`summarise` turns an RLlib result into one flat row with grouped keys:

- ``iteration``, ``env_steps``, ``episode_return_mean``;
- ``losses/policy``, ``losses/entropy``, ``losses/kl``, ``losses/clip_fraction``,
  ``losses/critic`` (means over the actor modules; the critic's loss is the shared
  critic's, or each module's own value loss under IPPO);
- ``critic/explained_variance`` (all rows), ``critic/explained_variance_strategic`` and
  ``critic/explained_variance_tactical`` (each layer's rows), ``critic/target_mean``,
  ``critic/target_std``, ``critic/value_norm_mean``, ``critic/value_norm_std``;
- ``agents/<module>/…``: ``policy_loss``, ``entropy``, ``kl``, ``clip_fraction``,
  ``rows`` (training rows in the batch), ``passes`` (rows trained / rows in the batch:
  ``num_epochs`` when every row is seen that often), ``critic_loss``,
  ``value_clip_fraction``, ``explained_variance``.

Tune and W&B group the keys by their prefix.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from algospace.config import STRATEGIC_AGENTS
from algospace.models.ids import CRITIC_ID

ROWS = "rows"
"""Per-module metric: training rows in the iteration's batch (bootstrap rows left out)."""
BATCH_ROWS = "batch_rows"
"""Per-module metric: rows in the batch including the appended bootstrap rows."""
ROWS_TRAINED = "rows_trained"
"""Per-module metric: rows the iteration's minibatches held, over all epochs."""
EXPLAINED_VARIANCE = "explained_variance"
"""Per-module metric: the value function's explained variance of the value targets."""
VALUE_DIAGNOSTICS = "value_diagnostics"
"""Metrics key of the critic's figures for the iteration (all rows and per layer)."""


def explained_variance(values: np.ndarray, targets: np.ndarray) -> float:
    """``1 - Var(targets - values) / Var(targets)`` (nan with fewer than 2 rows or no variance)."""
    if len(targets) < 2 or float(np.var(targets)) == 0.0:
        return math.nan
    return float(1.0 - np.var(targets - values) / np.var(targets))


def log_value_diagnostics(metrics: Any, diagnostics: dict[str, tuple[np.ndarray, np.ndarray, int]],
                          critic: Any) -> None:
    """Per module and per layer: rows, the values' explained variance of the targets, the
    targets' scale (see :mod:`algospace.training.diagnostics` for the keys)."""
    layers: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {"strategic": [], "tactical": []}
    for module_id, (values, targets, batch_rows) in diagnostics.items():
        metrics.log_dict({ROWS: float(len(targets)), BATCH_ROWS: float(batch_rows),
                          EXPLAINED_VARIANCE: explained_variance(values, targets)},
                         key=module_id, window=1)
        layers[layer_of(module_id)].append((values, targets))
    every = [pair for pairs in layers.values() for pair in pairs]
    summary = {}
    for name, pairs in (("all", every), *layers.items()):
        if pairs:
            values = np.concatenate([v for v, _ in pairs])
            targets = np.concatenate([t for _, t in pairs])
            summary[f"explained_variance_{name}"] = explained_variance(values, targets)
            if name == "all":
                summary["target_mean"] = float(targets.mean())
                summary["target_std"] = float(targets.std())
    if critic is not None and critic.cfg.value_norm:
        summary["value_norm_mean"] = float(critic.value_mean)
        summary["value_norm_std"] = float(critic.value_var.clamp_min(critic.cfg.epsilon).sqrt())
    metrics.log_dict(summary, key=VALUE_DIAGNOSTICS, window=1)


def layer_of(module_id: str) -> str:
    """``strategic`` for the strategic agents' modules (own or shared), else ``tactical``."""
    return "strategic" if module_id in (*STRATEGIC_AGENTS, "strategic") else "tactical"


PER_MODULE: tuple[tuple[str, str], ...] = (
    ("policy_loss", "mean_policy_loss"), ("entropy", "mean_entropy"), ("kl", "approx_kl"),
    ("clip_fraction", "clip_fraction"), ("rows", ROWS), ("critic_loss", "mean_critic_loss"),
    ("value_clip_fraction", "value_clip_fraction"),
    ("explained_variance", EXPLAINED_VARIANCE))
"""``agents/<module>/<name>`` ← the learner's metric of that module."""
LOSSES: tuple[tuple[str, str], ...] = (
    ("policy", "policy_loss"), ("entropy", "entropy"), ("kl", "kl"),
    ("clip_fraction", "clip_fraction"), ("critic", "critic_loss"))
"""``losses/<name>`` ← the mean over the modules of ``agents/<module>/<name>``."""


def summarise(result: dict[str, Any]) -> dict[str, float]:
    """The flat row of one RLlib result (keys in the module docstring)."""
    runners = result.get("env_runners", {})  # may be missing after a runner restart
    learners = {k: v for k, v in result.get("learners", {}).items()
                if k != "__all_modules__" and isinstance(v, dict)}
    value = learners.pop(VALUE_DIAGNOSTICS, {})
    learners.pop(CRITIC_ID, None)
    row = {
        "iteration": float(result.get("training_iteration", math.nan)),
        "env_steps": float(runners.get("num_env_steps_sampled_lifetime", math.nan)),
        "episode_return_mean": float(runners.get("episode_return_mean", math.nan)),
    }
    per_module: dict[str, dict[str, float]] = {}
    for module_id, figures in sorted(learners.items()):
        own = {name: _float(figures.get(key)) for name, key in PER_MODULE}
        if math.isnan(own["critic_loss"]):  # IPPO: the module's own value loss
            own["critic_loss"] = _float(figures.get("vf_loss"))
        batch_rows = _float(figures.get(BATCH_ROWS))
        own["passes"] = _float(figures.get(ROWS_TRAINED)) / batch_rows \
            if batch_rows > 0 else math.nan
        per_module[module_id] = own
        row.update({f"agents/{module_id}/{name}": v for name, v in own.items()})
    for name, key in LOSSES:
        values = [own[key] for own in per_module.values() if math.isfinite(own[key])]
        row[f"losses/{name}"] = float(np.mean(values)) if values else math.nan
    for key in ("explained_variance_all", "explained_variance_strategic",
                "explained_variance_tactical", "target_mean", "target_std",
                "value_norm_mean", "value_norm_std"):
        name = "explained_variance" if key == "explained_variance_all" else key
        row[f"critic/{name}"] = _float(value.get(key))
    return row


def _float(value: Any) -> float:
    """A reported figure as a float (nan when missing)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
