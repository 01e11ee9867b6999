"""Checkpoints: the one home of reading and writing them.

A training checkpoint is RLlib's algorithm folder (its modules under
:data:`MODULES_DIR`), plus AlgoSpace's own files: :data:`RUN_FILE` (the run's
TrainConfig and progress), :data:`WEIGHTS_FILE` and :data:`MODULES_FILE`.
:func:`save` writes one (replacing an older one atomically), :func:`load_train_config`,
:func:`read_specs`, :func:`read_states`, :func:`load_safe_modules` and
:func:`load_actors` read one.

**Safe weights.** RLlib writes a checkpoint's classes, constructor arguments and states with
pickle (``class_and_ctor_args.pkl``, ``module_state.pkl``, ...): loading one
runs whatever code its files name, so a checkpoint from someone else is a
program. Next to RLlib's files every AlgoSpace checkpoint therefore holds

* :data:`WEIGHTS_FILE` — every module's ``state_dict`` (tensors only), read with
  ``torch.load(..., weights_only=True)``;
* :data:`MODULES_FILE` — per module: its kind (one of :data:`MODULE_CLASSES`, a
  fixed list: nothing is imported by name from the file), its observation and
  action spaces and its ``model_config``, as JSON.

Evaluating, deciding, exporting and ``init_from`` read only these
(:func:`load_safe_modules`, :func:`read_states`). Resuming a run (``resume_from``,
Tune's restore of a trial) needs RLlib's whole state — optimizer, counters,
connector state — and goes through RLlib's pickle loading: resume only from
checkpoints you made.

A checkpoint written before these files existed gets them with
``python -m algospace.training.checkpoint CHECKPOINT``, which loads it once through
RLlib (pickle: only for checkpoints you trust) and writes them.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from algospace.errors import AlgoSpaceError, CheckpointError
from algospace.files import atomic_dir, atomic_write, write_json
from algospace.models.ids import CRITIC_ID
from algospace.schema import build, to_dict
from algospace.training.builder import TrainConfig
from algospace.training.spaces import space_from_json, space_to_json

WEIGHTS_FILE = "algospace_weights.pt"
"""Every module's ``state_dict``: ``{module_id: {name: tensor}}``."""
MODULES_FILE = "algospace_modules.json"
"""Per module: kind, spaces and ``model_config``."""
FORMAT = "algospace-modules"
FORMAT_VERSION = 1
MODULE_CLASSES: dict[str, str] = {
    "actor": "algospace.models.actor:ActorModule",
    "ippo_actor": "algospace.models.ippo_actor:IPPOActorModule",
    "critic": "algospace.models.critic:CentralCritic",
}
"""The module kinds a checkpoint may name, and the classes they are built with."""


# ------------------------------------------------------------------ folder
MODULES_DIR = ("learner_group", "learner", "rl_module")
"""Where an algorithm checkpoint keeps its modules, one directory per module id."""
RUN_FILE = "algospace_run.json"
"""File inside every checkpoint that records the run's TrainConfig (and progress)."""


def modules_dir(checkpoint: str | Path) -> Path:
    """The module directory of an algorithm checkpoint (CheckpointError if it has none)."""
    path = Path(checkpoint).expanduser().resolve()
    if not path.is_dir():
        raise CheckpointError(f"checkpoint {checkpoint} does not exist; pass the directory a "
                              "training run saved (its result's `checkpoint`)")
    root = path.joinpath(*MODULES_DIR)
    if not root.is_dir():
        raise CheckpointError(f"{checkpoint} is not an algorithm checkpoint (it has no "
                              f"{'/'.join(MODULES_DIR)}); pass the directory a training run "
                              "saved (its result's `checkpoint`)")
    return root


def wanted_modules(checkpoint: str | Path, requested: Sequence[str] | None,
                   ours: Sequence[str], present: Sequence[str], *, where: str,
                   error: type[AlgoSpaceError] = CheckpointError) -> list[str]:
    """The modules to load from ``checkpoint``: ``requested``, or every module of this run
    (``ours``) the checkpoint has (``present``); ``error`` naming ``where`` when one is not
    this run's, is missing from the checkpoint, or none is left."""
    wanted = list(requested) if requested is not None else [m for m in ours if m in present]
    for module in wanted:
        if module not in ours:
            raise error(f"{where}: {module!r} is not a module of this run (its modules: "
                        f"{', '.join(ours)})")
        if module not in present:
            raise error(f"{where}: checkpoint {checkpoint} has no module {module!r} (it has "
                        f"{', '.join(present) or 'none'})")
    if not wanted:
        raise error(f"{where}: checkpoint {checkpoint} has none of this run's modules "
                    f"({', '.join(ours)}); it has {', '.join(present) or 'none'}")
    return wanted


def checkpoint_modules(checkpoint: str | Path) -> list[str]:
    """Module ids saved in an algorithm checkpoint."""
    return sorted(p.name for p in modules_dir(checkpoint).iterdir() if p.is_dir())


def run_info(cfg: TrainConfig, algo: Any) -> dict[str, Any]:
    """What a checkpoint records about its run: the full config and how far it got."""
    config = to_dict(cfg)
    config["env_config"]["data"]["cache_dir"] = str(cfg.env_config.data.cache_path())
    return {"train_config": config, "iteration": int(algo.iteration),
            "saved": time.strftime("%Y-%m-%dT%H:%M:%S")}


def load_train_config(checkpoint: str | Path) -> TrainConfig:
    """The TrainConfig a checkpoint was trained with (from its ``algospace_run.json``)."""
    modules_dir(checkpoint)
    file = Path(checkpoint).expanduser().resolve() / RUN_FILE
    if not file.is_file():
        raise CheckpointError(f"checkpoint {checkpoint} has no {RUN_FILE} (it was not written "
                              "by algospace training), so its env and data are unknown")
    info = json.loads(file.read_text())
    return build(TrainConfig, info["train_config"], "train_config")


def save(algo: Any, path: Path, info: dict[str, Any] | None = None) -> str:
    """Save ``algo`` (its safe weights, and ``info`` as :data:`RUN_FILE`) to ``path``; an
    older checkpoint there is replaced only once the new one is complete."""
    def fill(tmp: Path) -> None:
        algo.save_to_path(str(tmp))
        write_safe_weights(algo, tmp)
        if info is not None:
            (tmp / RUN_FILE).write_text(json.dumps(info, indent=2, default=str))

    atomic_dir(path, fill)
    return str(path)


# ----------------------------------------------------------------- writing
def _kind(module_class: type) -> str:
    """The :data:`MODULE_CLASSES` kind of a module class."""
    path = f"{module_class.__module__}:{module_class.__qualname__}"
    for kind, known in MODULE_CLASSES.items():
        if known == path:
            return kind
    raise ValueError(f"module class {path} is not one AlgoSpace saves ({sorted(MODULE_CLASSES)})")


def _jsonable(value: Any) -> Any:
    """Tuples to lists, numpy scalars to Python numbers (model configs)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def module_states(algo: Any, module_ids: Sequence[str] | None = None
                  ) -> dict[str, dict[str, torch.Tensor]]:
    """The learner's weights (local or remote) of ``module_ids`` (default: every module),
    as CPU tensors."""
    modules = algo.learner_group.get_weights(None if module_ids is None else list(module_ids))
    return {mid: {k: _cpu_tensor(v) for k, v in weights.items()}
            for mid, weights in modules.items()}


def _cpu_tensor(value: Any) -> torch.Tensor:
    """A CPU copy of a tensor or array."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu").clone()
    return torch.as_tensor(np.array(value))


def _entry(module_class: type, observation_space: gym.Space[Any], action_space: gym.Space[Any],
           model_config: Mapping[str, Any] | None, learner_only: bool) -> dict[str, Any]:
    """The :data:`MODULES_FILE` entry of one module."""
    return {"kind": _kind(module_class), "learner_only": bool(learner_only),
            "observation_space": space_to_json(observation_space),
            "action_space": space_to_json(action_space),
            "model_config": _jsonable(dict(model_config or {}))}


def _write(folder: Path, entries: Mapping[str, dict[str, Any]],
           states: Mapping[str, Mapping[str, torch.Tensor]]) -> None:
    """Both files, each written whole or not at all."""
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "modules": dict(entries)}
    atomic_write(folder / WEIGHTS_FILE,
                 lambda p: torch.save({mid: dict(states[mid]) for mid in entries}, p))
    write_json(folder / MODULES_FILE, manifest)


def write_safe_weights(algo: Any, folder: str | Path) -> None:
    """Write :data:`WEIGHTS_FILE` and :data:`MODULES_FILE` of ``algo`` into ``folder``."""
    specs = algo.config.rl_module_spec.rl_module_specs
    states = module_states(algo)
    entries = {}
    for mid, spec in sorted(specs.items()):
        if mid not in states:
            raise CheckpointError(f"the learner holds no weights for module {mid!r}")
        entries[mid] = _entry(spec.module_class, spec.observation_space, spec.action_space,
                              spec.model_config, spec.learner_only)
    _write(Path(folder), entries, states)


def convert(checkpoint: str | Path) -> list[str]:
    """Write the safe files of an older checkpoint from its RLlib module folders.

    Each module is loaded with RLlib's own loader — which unpickles: only for checkpoints
    you trust — and its weights, spaces and settings written. Returns the module ids.
    """
    from ray.rllib.core.rl_module.rl_module import RLModule

    root = modules_dir(checkpoint)
    entries, states = {}, {}
    for mid in checkpoint_modules(checkpoint):
        try:
            module = RLModule.from_checkpoint(str(root / mid))
        except Exception as err:  # RLlib raises whatever unpickling its files raises
            first = str(err).splitlines()[0] if str(err) else ""
            raise CheckpointError(f"RLlib cannot load module {mid!r} of {checkpoint} "
                                  f"({type(err).__name__}: {first}); nothing was "
                                  "written") from None
        entries[mid] = _entry(type(module), module.observation_space, module.action_space,
                              module.model_config, mid == CRITIC_ID)
        states[mid] = {k: _cpu_tensor(v) for k, v in module.state_dict().items()}
    _write(Path(checkpoint), entries, states)
    return sorted(entries)


# ----------------------------------------------------------------- reading
def _fix(checkpoint: Path) -> str:
    return (f"a checkpoint written before AlgoSpace saved safe weights gets them with "
            f"`python -m algospace.training.checkpoint {checkpoint}` (it unpickles the "
            "checkpoint once: only for checkpoints you trust)")


def read_specs(checkpoint: str | Path) -> dict[str, dict[str, Any]]:
    """The module entries of a checkpoint's :data:`MODULES_FILE`."""
    path = Path(checkpoint).expanduser().resolve() / MODULES_FILE
    if not path.is_file():
        raise CheckpointError(f"checkpoint {checkpoint} has no {MODULES_FILE}; "
                              f"{_fix(Path(checkpoint))}")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path} cannot be read ({err}); {_fix(Path(checkpoint))}") \
            from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an {FORMAT} file; {_fix(Path(checkpoint))}")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path} has format version {manifest.get('format_version')!r}; "
                              f"this version reads {FORMAT_VERSION}")
    modules = manifest.get("modules")
    if not isinstance(modules, dict) or not modules:
        raise CheckpointError(f"{path} lists no modules")
    return modules


def read_states(checkpoint: str | Path) -> dict[str, dict[str, torch.Tensor]]:
    """Every module's ``state_dict``, loaded with ``torch.load(weights_only=True)``."""
    path = Path(checkpoint).expanduser().resolve() / WEIGHTS_FILE
    if not path.is_file():
        raise CheckpointError(f"checkpoint {checkpoint} has no {WEIGHTS_FILE}; "
                              f"{_fix(Path(checkpoint))}")
    try:
        states = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError / RuntimeError / EOFError
        raise CheckpointError(f"{path} is not a weights file torch can load safely "
                              f"({str(err).splitlines()[0]}); {_fix(Path(checkpoint))}") \
            from None
    if not isinstance(states, dict) or not all(
            isinstance(s, dict) and all(isinstance(t, torch.Tensor) for t in s.values())
            for s in states.values()):
        raise CheckpointError(f"{path} does not hold {{module: {{name: tensor}}}}")
    return states


def _module_class(kind: str) -> type:
    """The class of a :data:`MODULE_CLASSES` kind (nothing else is imported)."""
    if kind not in MODULE_CLASSES:
        raise CheckpointError(f"unknown module kind {kind!r} (known: {sorted(MODULE_CLASSES)})")
    module, name = MODULE_CLASSES[kind].split(":")
    cls: type = getattr(importlib.import_module(module), name)
    return cls


def build_module(module_id: str, entry: Mapping[str, Any],
                 state: Mapping[str, torch.Tensor]) -> Any:
    """A module built from its entry, its weights loaded strictly, in eval mode."""
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    try:
        spec = RLModuleSpec(module_class=_module_class(str(entry["kind"])),
                            observation_space=space_from_json(entry["observation_space"]),
                            action_space=space_from_json(entry["action_space"]),
                            model_config=dict(entry["model_config"]),
                            learner_only=bool(entry.get("learner_only", False)))
        module = spec.build()
        module.load_state_dict(dict(state), strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"module {module_id!r}: its entry or weights do not fit "
                              f"({str(err).splitlines()[0]})") from None
    module.eval()
    return module


def load_safe_modules(checkpoint: str | Path,
                      module_ids: Sequence[str] | None = None) -> dict[str, Any]:
    """Modules of a checkpoint (``module_ids``, or every one) built from the safe files."""
    specs = read_specs(checkpoint)
    states = read_states(checkpoint)
    ids = list(module_ids) if module_ids is not None else sorted(specs)
    out = {}
    for mid in ids:
        if mid not in specs or mid not in states:
            raise CheckpointError(f"checkpoint {checkpoint} has no module {mid!r} (it has "
                                  f"{', '.join(sorted(specs))})")
        out[mid] = build_module(mid, specs[mid], states[mid])
    return out


def load_actors(checkpoint: str | Path, agents: list[str] | None = None) -> dict[str, Any]:
    """The actor modules of an algorithm checkpoint (all, or ``agents``), in eval mode.

    Built from the checkpoint's safe weights (``torch.load(weights_only=True)``): nothing
    in the checkpoint is unpickled.
    """
    modules_dir(checkpoint)
    specs = read_specs(checkpoint)
    names = agents or [m for m in sorted(specs) if specs[m].get("kind") != "critic"]
    return load_safe_modules(checkpoint, names)


def set_module_states(algo: Any, states: Mapping[str, Mapping[str, torch.Tensor]]) -> None:
    """Load weights into ``algo``'s learner modules (shapes and names checked strictly),
    then send them to the env runners."""
    from ray.rllib.core import COMPONENT_LEARNER, COMPONENT_RL_MODULE

    current = module_states(algo)
    for mid, state in states.items():
        have = {k: tuple(v.shape) for k, v in current[mid].items()}
        got = {k: tuple(v.shape) for k, v in state.items()}
        if have != got:
            missing = sorted(set(have) - set(got))
            extra = sorted(set(got) - set(have))
            shapes = sorted(k for k in set(have) & set(got) if have[k] != got[k])
            raise RuntimeError(
                f"missing {missing or 'none'}, unexpected {extra or 'none'}, different "
                f"shapes {[(k, have[k], got[k]) for k in shapes] or 'none'}")
    algo.learner_group.set_state({COMPONENT_LEARNER: {COMPONENT_RL_MODULE: {
        mid: {k: v.numpy() for k, v in state.items()} for mid, state in states.items()}}})
    algo.env_runner_group.sync_weights(from_worker_or_learner_group=algo.learner_group,
                                       inference_only=True)


# --------------------------------------------------------------- converting
def main(argv: Sequence[str] | None = None) -> int:
    """``python -m algospace.training.checkpoint CHECKPOINT``: add the safe files to a
    checkpoint written before they existed (loads its modules through RLlib, i.e. pickle)."""
    parser = argparse.ArgumentParser(prog="python -m algospace.training.checkpoint",
                                     description=main.__doc__)
    parser.add_argument("checkpoint", help="an algorithm checkpoint directory you trust")
    args = parser.parse_args(argv)
    try:
        modules = convert(args.checkpoint)
    except CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {WEIGHTS_FILE} and {MODULES_FILE} ({', '.join(modules)}) into "
          f"{args.checkpoint}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
