"""``train(config)``: build the PPO/MAPPO algorithm for one env, run it, checkpoint it."""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from algospace.errors import CheckpointError
from algospace.schema import build, to_dict
from algospace.training.builder import ModuleSource, TrainConfig, build_ppo_config
from algospace.training.weights import read_states, set_module_states, write_safe_weights

MODULES_DIR = ("learner_group", "learner", "rl_module")
"""Where an algorithm checkpoint keeps its modules, one directory per module id."""


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced."""

    checkpoint: str
    """Directory of the final checkpoint (``Algorithm.restore_from_path`` reads it)."""
    iterations: int
    """Iterations run."""
    env_steps: int
    """Env steps sampled in all."""
    history: list[dict[str, float]] = field(default_factory=list)
    """Per iteration: env steps, mean episode return, mean losses."""


def summarise(result: dict[str, Any]) -> dict[str, float]:
    """The figures of one RLlib result that a progress line and the history keep."""
    runners = result.get("env_runners", {})  # may be missing after a runner restart
    learners = {k: v for k, v in result.get("learners", {}).items()
                if k != "__all_modules__" and isinstance(v, dict)}

    def mean(key: str) -> float:
        values = [float(v[key]) for v in learners.values() if key in v]
        return sum(values) / len(values) if values else math.nan

    return {
        "iteration": float(result.get("training_iteration", math.nan)),
        "env_steps": float(runners.get("num_env_steps_sampled_lifetime", math.nan)),
        "episode_return_mean": float(runners.get("episode_return_mean", math.nan)),
        "policy_loss": mean("policy_loss"),
        "critic_loss": mean("critic_loss"),
        "vf_loss": mean("vf_loss"),
        "entropy": mean("entropy"),
    }


IterationHook = Callable[[int, Any, dict[str, float]], None]
"""``hook(iteration, algo, row)`` after each iteration (1-based); may add figures to ``row``."""


def actor_modules(algo: Any) -> dict[str, Any]:
    """The algorithm's current actor modules (the learner's copies: freshest weights)."""
    learner = getattr(algo.learner_group, "_learner", None)
    multi = learner.module if learner is not None else None
    ids = [m for m in algo.config.policies if m != "critic"]
    if multi is not None:
        return {m: multi[m] for m in ids}
    return {m: algo.get_module(m) for m in ids}


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


def checkpoint_modules(checkpoint: str | Path) -> list[str]:
    """Module ids saved in an algorithm checkpoint."""
    return sorted(p.name for p in modules_dir(checkpoint).iterdir() if p.is_dir())


def load_modules(algo: Any, sources: tuple[ModuleSource, ...],
                 log: Callable[[str], None] = print) -> list[str]:
    """Load module weights from earlier checkpoints into ``algo`` (and its env runners).

    Reads only each checkpoint's safe weights (:mod:`algospace.training.weights`): nothing
    in the checkpoint is unpickled.
    """
    ours = set(algo.config.policies)
    loaded: list[str] = []
    for src in sources:
        modules_dir(src.checkpoint)
        present = set(checkpoint_modules(src.checkpoint))
        wanted = list(src.modules) if src.modules is not None else sorted(ours & present)
        if not wanted:
            raise CheckpointError(f"init_from: checkpoint {src.checkpoint} has none of this "
                                  f"run's modules ({', '.join(sorted(ours))}); it has "
                                  f"{', '.join(sorted(present)) or 'none'}")
        for module_id in wanted:
            if module_id not in ours:
                raise CheckpointError(f"init_from: module {module_id!r} is not part of this run "
                                      f"(its modules: {', '.join(sorted(ours))})")
            if module_id not in present:
                raise CheckpointError(f"init_from: checkpoint {src.checkpoint} has no module "
                                      f"{module_id!r} (it has {', '.join(sorted(present))})")
        states = read_states(src.checkpoint)
        for module_id in wanted:
            if module_id not in states:
                raise CheckpointError(f"init_from: {src.checkpoint}'s safe weights lack module "
                                      f"{module_id!r}")
            try:
                set_module_states(algo, {module_id: states[module_id]})
            except RuntimeError as err:
                raise CheckpointError(
                    f"init_from: module {module_id!r} of {src.checkpoint} does not fit this "
                    f"run (different observation/action spaces or network sizes): "
                    f"{str(err).splitlines()[0]}") from None
            loaded.append(module_id)
        log(f"[train] loaded {', '.join(wanted)} from {src.checkpoint}")
    return loaded


def train(cfg: TrainConfig, *, log: Callable[[str], None] = print,
          on_iteration: IterationHook | None = None) -> TrainResult:
    """Train ``cfg.env`` for ``cfg.iterations`` iterations and save a checkpoint.

    With ``cfg.resume_from`` the run continues that checkpoint (its iterations count
    towards ``cfg.iterations``); ``cfg.init_from`` loads module weights first. A
    checkpoint is written every ``cfg.checkpoint_every`` iterations and at the end, into
    ``<out_dir>/<env>-<algorithm>-seed<seed>/checkpoint`` (replaced atomically).
    """
    algo = build_ppo_config(cfg).build_algo()
    history: list[dict[str, float]] = []
    out = Path(cfg.out_dir).resolve() / f"{cfg.env}-{cfg.algorithm}-seed{cfg.seed}"
    try:
        if cfg.resume_from is not None:
            modules_dir(cfg.resume_from)
            algo.restore_from_path(str(Path(cfg.resume_from).resolve()))
            log(f"[train] resumed from {cfg.resume_from} at iteration {algo.iteration}")
        if cfg.init_from:
            load_modules(algo, cfg.init_from, log)
        for i in range(algo.iteration, cfg.iterations):
            started = time.perf_counter()
            row = summarise(algo.train())
            row["seconds"] = time.perf_counter() - started
            if on_iteration is not None:
                on_iteration(i + 1, algo, row)
            history.append(row)
            log(f"[train] {i + 1}/{cfg.iterations} env steps {row['env_steps']:,.0f} "
                f"return {row['episode_return_mean']:.3f} policy loss "
                f"{row['policy_loss']:.4f} critic loss {row['critic_loss']:.4f} "
                f"({row['seconds']:.1f} s)")
            if cfg.checkpoint_every and (i + 1) % cfg.checkpoint_every == 0 \
                    and i + 1 < cfg.iterations:
                save(algo, out / "checkpoint", run_info(cfg, algo))
        checkpoint = save(algo, out / "checkpoint", run_info(cfg, algo))
    finally:
        algo.stop()
    steps = int(history[-1]["env_steps"]) if history else 0
    return TrainResult(checkpoint, len(history), steps, history)


RUN_FILE = "algospace_run.json"
"""File inside every checkpoint that records the run's TrainConfig (and progress)."""


def run_info(cfg: TrainConfig, algo: Any) -> dict[str, Any]:
    """What a checkpoint records about its run: the full config and how far it got."""
    config = to_dict(cfg)
    config["env_config"]["data"]["cache_dir"] = str(
        Path(cfg.env_config.data.cache_dir).resolve())
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
    """Save ``algo`` (and ``info`` as ``algospace_run.json``) to ``path``; an older
    checkpoint there is replaced only once the new one is complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    algo.save_to_path(str(tmp))
    write_safe_weights(algo, tmp)
    if info is not None:
        (tmp / RUN_FILE).write_text(json.dumps(info, indent=2, default=str))
    old = path.with_name(f".{path.name}.old")
    if path.exists():
        if old.exists():
            shutil.rmtree(old)
        path.rename(old)
    tmp.rename(path)
    if old.exists():
        shutil.rmtree(old)
    return str(path)
