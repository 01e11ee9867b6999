"""Module weights in every checkpoint that load without unpickling anything.

RLlib writes a checkpoint's classes, constructor arguments and states with
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
``python -m algospace.training.weights CHECKPOINT``, which loads it once through
RLlib (pickle: only for checkpoints you trust) and writes them.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from algospace.errors import CheckpointError

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


# ------------------------------------------------------------------ spaces
def space_to_json(space: gym.Space[Any]) -> dict[str, Any]:
    """A JSON description of a Dict / Box / Discrete / MultiDiscrete space."""
    if isinstance(space, gym.spaces.Dict):
        return {"type": "Dict",
                "spaces": {k: space_to_json(v) for k, v in space.spaces.items()}}
    if isinstance(space, gym.spaces.Box):
        return {"type": "Box", "shape": list(space.shape), "dtype": str(space.dtype),
                "low": _bound(space.low), "high": _bound(space.high)}
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, gym.spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": np.asarray(space.nvec).tolist()}
    raise ValueError(f"cannot describe a {type(space).__name__} space")


def _bound(values: np.ndarray) -> Any:
    """One number when every entry is equal, else the nested list."""
    flat = np.asarray(values, dtype=np.float64).ravel()
    if flat.size and np.all(flat == flat[0]):
        return float(flat[0])
    return np.asarray(values, dtype=np.float64).tolist()


def space_from_json(data: Mapping[str, Any]) -> gym.Space[Any]:
    """The space :func:`space_to_json` described."""
    kind = data["type"]
    if kind == "Dict":
        return gym.spaces.Dict({k: space_from_json(v) for k, v in data["spaces"].items()})
    if kind == "Box":
        shape = tuple(int(n) for n in data["shape"])
        dtype = np.dtype(data["dtype"])
        low = np.broadcast_to(np.asarray(data["low"], dtype=np.float64), shape).astype(dtype)
        high = np.broadcast_to(np.asarray(data["high"], dtype=np.float64), shape).astype(dtype)
        return gym.spaces.Box(low, high, shape, dtype)
    if kind == "Discrete":
        return gym.spaces.Discrete(int(data["n"]), start=int(data.get("start", 0)))
    if kind == "MultiDiscrete":
        return gym.spaces.MultiDiscrete(np.asarray(data["nvec"], dtype=np.int64))
    raise ValueError(f"unknown space type {kind!r}")


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


def module_states(algo: Any) -> dict[str, dict[str, torch.Tensor]]:
    """Every module's weights, from the learner (local or remote), as CPU tensors."""
    from ray.rllib.core import COMPONENT_LEARNER, COMPONENT_RL_MODULE

    state = algo.learner_group.get_state(
        components=f"{COMPONENT_LEARNER}/{COMPONENT_RL_MODULE}")
    modules = state[COMPONENT_LEARNER][COMPONENT_RL_MODULE]
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
    _atomic(folder / WEIGHTS_FILE,
            lambda p: torch.save({mid: dict(states[mid]) for mid in entries}, p))
    _atomic(folder / MODULES_FILE, lambda p: p.write_text(json.dumps(manifest, indent=2) + "\n"))


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

    from algospace.training.train import checkpoint_modules, modules_dir

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
                              module.model_config, mid == "critic")
        states[mid] = {k: _cpu_tensor(v) for k, v in module.state_dict().items()}
    _write(Path(checkpoint), entries, states)
    return sorted(entries)


def _atomic(path: Path, write: Any) -> None:
    """``write(tmp)`` then rename ``tmp`` to ``path``: never a half-written file."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


# ----------------------------------------------------------------- reading
def _fix(checkpoint: Path) -> str:
    return (f"a checkpoint written before AlgoSpace saved safe weights gets them with "
            f"`python -m algospace.training.weights {checkpoint}` (it unpickles the "
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
    """``python -m algospace.training.weights CHECKPOINT``: add the safe files to a
    checkpoint written before they existed (loads its modules through RLlib, i.e. pickle)."""
    parser = argparse.ArgumentParser(prog="python -m algospace.training.weights",
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
