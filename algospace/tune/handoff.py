"""The hand-off between phases: which checkpoints a phase loads, checked before Ray starts.

``handoff.load`` names an earlier phase (its latest finished run) or a checkpoint path;
each entry's modules must be modules of this phase and present in that checkpoint, and no
frozen actor may be left with untrained weights.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from algospace.config import ExperimentConfig, LoadSource
from algospace.errors import AlgoSpaceError, ConfigError
from algospace.models.ids import CRITIC_ID
from algospace.training.builder import ModuleSource
from algospace.tune.plan import SUMMARY


def agent_modules(cfg: ExperimentConfig) -> list[str]:
    """Actor module ids of an RL phase (agent names, or the shared layer modules)."""
    from envs.registry import agents_of
    from envs.rllib import module_of

    agents = agents_of(cfg.env_name)
    return list(dict.fromkeys(module_of(a, cfg.model.sharing) for a in sorted(agents)))


def resolve_handoff(cfg: ExperimentConfig, quick: bool) -> tuple[tuple[ModuleSource, ...],
                                                                    list[dict[str, Any]]]:
    """Checkpoints of ``handoff.load`` (a phase's latest finished run, or a path), checked."""
    from algospace.training.checkpoint import wanted_modules

    actors = agent_modules(cfg)
    ours = [*actors, CRITIC_ID] if cfg.training.algorithm == "mappo" else actors
    for name in cfg.handoff.trainable or ():
        if name not in actors:
            raise ConfigError(f"handoff.trainable: {name!r} is not an actor module of the "
                              f"{cfg.phase} phase ({cfg.env_name}); its modules are "
                              f"{', '.join(actors)}")
    sources: list[ModuleSource] = []
    described: list[dict[str, Any]] = []
    loaded: set[str] = set()
    for i, src in enumerate(cfg.handoff.load):
        where = f"handoff.load[{i}]"
        checkpoint, origin, present = _handoff_source(cfg, src, where, quick)
        wanted = wanted_modules(checkpoint, src.modules, ours, present, where=where,
                                error=ConfigError)
        loaded.update(wanted)
        sources.append(ModuleSource(checkpoint, tuple(wanted)))
        described.append({"phase": src.phase, "checkpoint": checkpoint, "modules": wanted,
                          "experiment_dir": origin})
    if cfg.handoff.trainable is not None:
        frozen = [m for m in actors if m not in cfg.handoff.trainable]
        missing = [m for m in frozen if m not in loaded]
        if missing:
            raise ConfigError(
                f"handoff: {', '.join(missing)} would be frozen with untrained weights (not in "
                "handoff.trainable, not loaded by handoff.load); load them from an earlier "
                "phase or add them to handoff.trainable")
    return tuple(sources), described


def _handoff_source(cfg: ExperimentConfig, src: LoadSource, where: str,
                    quick: bool) -> tuple[str, str | None, list[str]]:
    """The checkpoint of one ``handoff.load`` entry, the run it came from, its modules."""
    from algospace.training.checkpoint import checkpoint_modules

    if src.phase is not None:
        run = latest_finished(cfg.output.dir, src.phase, quick)
        if run is None:
            kind = "quick (--quick) " if quick else ""
            raise ConfigError(
                f"{where}: no finished {kind}run of phase {src.phase!r} under "
                f"{Path(cfg.output.dir).resolve()}; run `python -m experiments.run "
                f"{src.phase}.yaml{' --quick' if quick else ''}` first, or give "
                "checkpoint: PATH")
        checkpoint, origin = run["best_checkpoint"], run["experiment_dir"]
    else:
        checkpoint, origin = str(Path(str(src.checkpoint)).expanduser().resolve()), None
    try:
        return checkpoint, origin, checkpoint_modules(checkpoint)
    except AlgoSpaceError as err:
        raise ConfigError(f"{where}: {err}") from None


def latest_finished(root: str, phase: str, quick: bool) -> dict[str, Any] | None:
    """The summary of the newest finished run of ``phase`` under ``root``."""
    best: dict[str, Any] | None = None
    for file in Path(root).glob(f"*/*/{SUMMARY}"):
        try:
            summary = json.loads(file.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if summary.get("phase") != phase or summary.get("status") != "finished" \
                or bool(summary.get("quick")) != quick or not summary.get("best_checkpoint"):
            continue
        if not Path(summary["best_checkpoint"]).is_dir():
            continue
        if best is None or summary.get("finished_at", "") > best.get("finished_at", ""):
            best = summary
    return best
