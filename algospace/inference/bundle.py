"""An export folder that runs on its own: the actors plus what the decision engine needs.

:func:`write_bundle` exports a decision engine's actors
(:func:`algospace.inference.export.export_actors`) and stores, under the manifest's
``engine`` key, everything else the engine was built from:

- ``env``: the env name (``strategic_v0``, ``joint_v0``, ...);
- ``env_config``: its :class:`~algospace.config.EnvConfig` (the data section included, so
  the run's own data can still be replayed where it is available);
- ``meta``: the prepared-data metadata of the data the agents were trained on — the
  feature settings, contract, bar sizes and the train-split normalisation the stream
  applies to new bars (no bar of that data is needed);
- ``regime``: the folder (inside the export) holding a copy of the regime detector's
  checkpoint when the agents read its latent, else null.

:func:`read_bundle` reads it back; ``DecisionEngine.from_export`` builds an engine from
it with no RLlib checkpoint, no prepared data and no Ray. An export written by
:func:`~algospace.inference.export.export_actors` alone has no ``engine`` key: its actors
still run with the checkpoint they came from.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from algospace.config import EnvConfig
from algospace.errors import AlgoSpaceError, CheckpointError, ConfigError
from algospace.inference.export import export_actors, load_exported, read_manifest
from algospace.inference.policy import Actor
from algospace.inference.stream import RegimeEncoder
from algospace.schema import build, to_dict

ENGINE_KEY = "engine"
"""Manifest key of the engine's settings."""
REGIME_DIR = "regime_detector"
"""Folder inside the export holding the regime detector's checkpoint files."""


@dataclass(frozen=True)
class Bundle:
    """What a decision engine is built from."""

    env: str
    env_config: EnvConfig
    meta: dict[str, Any]
    actors: Mapping[str, Actor]
    regime: RegimeEncoder | None


def write_bundle(folder: str | Path, *, env: str, env_config: EnvConfig,
                 meta: Mapping[str, Any], actors: Mapping[str, Any],
                 regime: RegimeEncoder | None, overwrite: bool = False) -> Path:
    """Export ``actors`` (eager ActorModules) with the engine's settings to ``folder``."""
    from algospace.regime.train import CHECKPOINT_META, CHECKPOINT_WEIGHTS

    exported = [m for m, a in actors.items() if not hasattr(a, "state_dict")]
    if exported:
        raise ConfigError(f"actors {exported} are already exported; export the checkpoint's "
                          "own actors (algospace decide CHECKPOINT --export DIR)")
    if regime is not None and not regime.source:
        raise ConfigError("the regime detector's checkpoint folder is unknown; load it "
                          "with RegimeEncoder.load(folder) to export it")
    settings = {"env": env, "env_config": to_dict(env_config), "meta": dict(meta),
                "regime": None if regime is None else REGIME_DIR}

    def copy_regime(tmp: Path) -> None:
        if regime is None:
            return
        (tmp / REGIME_DIR).mkdir()
        for name in (CHECKPOINT_WEIGHTS, CHECKPOINT_META):
            shutil.copyfile(Path(regime.source) / name, tmp / REGIME_DIR / name)

    return export_actors(actors, folder, overwrite=overwrite, engine=settings,
                         extra=copy_regime)


def read_bundle(folder: str | Path) -> Bundle:
    """The engine settings and actors of an export folder written by :func:`write_bundle`."""
    folder = Path(folder).expanduser()
    manifest = read_manifest(folder)
    settings = manifest.get(ENGINE_KEY)
    if settings is None:
        raise CheckpointError(
            f"{folder} holds the actors only (exported without the decision engine's "
            "settings); pass the checkpoint they came from too (algospace decide CHECKPOINT "
            f"--exported {folder}), or export again with algospace decide CHECKPOINT "
            "--export DIR")
    try:
        env_config = build(EnvConfig, settings["env_config"], "env_config")
        env, meta, regime_dir = str(settings["env"]), dict(settings["meta"]), settings["regime"]
    except (AlgoSpaceError, KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{folder}: the manifest's {ENGINE_KEY!r} section is broken "
                              f"({err}); export again with algospace decide CHECKPOINT "
                              "--export DIR") from None
    regime = None
    if regime_dir is not None:
        regime = RegimeEncoder.load(folder / str(regime_dir))
    return Bundle(env, env_config, meta, load_exported(folder), regime)


def checkpoint_parts(checkpoint: str | Path, exported: str | Path | None = None,
                     log: Any = None) -> tuple[str, EnvConfig, Mapping[str, Actor],
                                               dict[str, Any], RegimeEncoder | None]:
    """What :meth:`DecisionEngine.from_checkpoint
    <algospace.inference.engine.DecisionEngine.from_checkpoint>` builds an engine from:
    the env's name and settings, the actors (eager, or the TorchScript ones of
    ``exported``), the data's normalisation and the regime detector."""
    from algospace.features.pipeline import prepare
    from algospace.training.checkpoint import load_actors, load_train_config

    train_cfg = load_train_config(checkpoint)
    env_cfg = train_cfg.env_config
    prepared = prepare(env_cfg.data, log=log or (lambda _: None))
    regime = None
    if env_cfg.regime_latent:
        from algospace.features.latents import pick_detector

        detector, recorded = pick_detector(prepared.meta, prepared.path,
                                           env_cfg.regime_detector)
        path = recorded.get("checkpoint")
        if not path or not Path(path).is_dir():
            raise CheckpointError(
                f"the agents read the latents of regime detector {detector}, but its "
                f"checkpoint ({path or 'none recorded'}) is not there; keep that "
                "checkpoint, or train the agents again on another detector's latents")
        regime = RegimeEncoder.load(path)
    actors: Mapping[str, Actor] = load_exported(exported) if exported is not None else \
        load_actors(checkpoint)
    return train_cfg.env, env_cfg, actors, prepared.meta, regime
