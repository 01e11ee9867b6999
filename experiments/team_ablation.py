"""``bench team``'s critic ablations: the joint phase once more, changing only the critic.

After the curriculum of one seed, ``joint.yaml`` runs twice more in the curriculum's own
output folder, so that its hand-off loads the very coordination checkpoint the MAPPO joint
phase started from (checked: :func:`ablation_runs` raises when the checkpoints differ), with
the same seed, market and budget (``stop.iterations``, ``--quick`` included):

- ``zeroed_mc``: ``model.critic_mc_features=false`` -- the centralized critic (loaded from
  the same checkpoint) keeps its 127 inputs but the 15 MC-dropout slots are 0; the actors
  still make their MC passes.
- ``ippo``: ``training.algorithm=ippo`` -- independent critics: each agent values its rows
  from its own local observation. The eight actors load the same MAPPO actors' weights;
  their value networks, which a MAPPO actor has none of, start freshly initialised (see
  :func:`algospace.models.ippo_actor.with_own_value_net`); the shared critic is not used.
  So IPPO's critics start untrained where MAPPO's starts from the coordination phase's:
  on a short budget that favours MAPPO, and the difference measures both together.

Each is evaluated like the joint team. The critic's explained variance reported for each
is that of its last training iteration, on the iteration's own batch (before the update):
MAPPO's shared critic on all the actors' rows (``critic/explained_variance``); under IPPO
the mean over the eight modules of each one's own critic on its own rows (the per-module
``agents/<id>/explained_variance``), since there is no shared critic to score.
"""

from __future__ import annotations

import csv
import math
import statistics
from pathlib import Path
from typing import Any

ABLATIONS: dict[str, tuple[str, ...]] = {
    "zeroed_mc": ("model.critic_mc_features=false",),
    "ippo": ("training.algorithm=ippo",),
}
"""Each ablation of the joint phase and the ``--set`` overrides that make it."""
SHARED_EV = "critic/explained_variance"
"""progress.csv column of the shared critic's explained variance (all rows)."""
MODULE_EV = "/explained_variance"
"""Ending of the progress.csv columns ``agents/<module>/explained_variance``."""


def last_critic_ev(summary: dict[str, Any], *, per_module: bool) -> float:
    """The critic's explained variance at the last iteration of a phase's one trial.

    ``per_module``: the mean over the ``agents/<module>/explained_variance`` columns (IPPO:
    each module's own critic); else the shared critic's ``critic/explained_variance``.
    nan when the trial left no progress file or no figure.
    """
    trial = summary["trials"][0] if summary.get("trials") else None
    progress = Path(trial["path"]) / "progress.csv" if trial is not None else None
    if progress is None or not progress.is_file():
        return math.nan
    with progress.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return math.nan
    last = rows[-1]
    if per_module:
        cols = [k for k in last if k.startswith("agents/") and k.endswith(MODULE_EV)]
        values = [_number(last[k]) for k in cols]
        finite = [v for v in values if math.isfinite(v)]
        return statistics.fmean(finite) if finite else math.nan
    return _number(last.get(SHARED_EV, ""))


def _number(text: str | None) -> float:
    """A progress.csv cell as a float (nan when empty)."""
    try:
        return float(text) if text not in (None, "") else math.nan
    except ValueError:
        return math.nan


def started_from(summary: dict[str, Any]) -> list[tuple[str, tuple[str, ...]]]:
    """The checkpoints a phase loaded and the modules it took from each (its hand-off)."""
    return [(str(h["checkpoint"]), tuple(h["modules"])) for h in summary.get("handoff") or []]


def ablation_runs(base_sets: list[str], joint_handoff: list[Any], *, quick: bool
                  ) -> dict[str, dict[str, Any]]:
    """Run each ablation of the joint phase (see the module docstring) with the curriculum's
    run settings ``base_sets`` (:func:`experiments.team.run_sets`); per ablation the run
    record :func:`experiments.team.evaluate` takes, with its ``critic_ev``."""
    from algospace.errors import AlgoSpaceError
    from algospace.tune.driver import run_experiment

    joint_actors = {ck for ck, _ in started_from({"handoff": joint_handoff})}
    runs: dict[str, dict[str, Any]] = {}
    for name, extra in ABLATIONS.items():
        sets = [*base_sets, f"name=joint_{name}", *extra]
        [summary] = run_experiment("joint.yaml", quick=quick, sets=sets)
        loaded = {ck for ck, _ in started_from(summary)}
        if loaded != joint_actors:
            raise AlgoSpaceError(f"the {name} ablation started from {sorted(loaded)}, the "
                                 f"joint phase from {sorted(joint_actors)}")
        runs[name] = {"checkpoint": summary["best_checkpoint"],
                      "env_steps": sum(float(t.get("env_steps") or 0.0)
                                       for t in summary["trials"]),
                      "regime_latent": bool(summary.get("config", {}).get("env", {})
                                            .get("regime_latent", False)),
                      "wall_seconds": float(summary["wall_seconds"]),
                      "critic_ev": last_critic_ev(summary, per_module=name == "ippo")}
    return runs
