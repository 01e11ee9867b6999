"""``train(config)``: build the PPO/MAPPO algorithm for one env, run it, checkpoint it."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from algospace.errors import CheckpointError
from algospace.models.ids import CRITIC_ID
from algospace.training.builder import ModuleSource, TrainConfig, build_ppo_config
from algospace.training.checkpoint import (
    checkpoint_modules,
    module_states,
    modules_dir,
    read_states,
    run_info,
    save,
    set_module_states,
    wanted_modules,
)
from algospace.training.diagnostics import summarise


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


IterationHook = Callable[[int, Any, dict[str, float]], None]
"""``hook(iteration, algo, row)`` after each iteration (1-based); may add figures to ``row``."""


def actor_modules(algo: Any) -> dict[str, Any]:
    """The algorithm's actor modules with the learner's current weights (the freshest).

    Each is a new module built from the run's module spec, the learner's weights loaded
    strictly, in eval mode; building it leaves torch's global generator as it was.
    """
    ids = [m for m in algo.config.policies if m != CRITIC_ID]
    states = module_states(algo, ids)
    specs = algo.config.rl_module_spec.rl_module_specs
    out = {}
    with torch.random.fork_rng(devices=[]):
        for mid in ids:
            module = specs[mid].build()
            module.load_state_dict(states[mid], strict=True)
            out[mid] = module.eval()
    return out


def load_modules(algo: Any, sources: tuple[ModuleSource, ...],
                 log: Callable[[str], None] = print) -> list[str]:
    """Load module weights from earlier checkpoints into ``algo`` (and its env runners).

    Reads only each checkpoint's safe weights (:mod:`algospace.training.checkpoint`): nothing
    in the checkpoint is unpickled.
    """
    ours = set(algo.config.policies)
    loaded: list[str] = []
    for src in sources:
        modules_dir(src.checkpoint)
        present = set(checkpoint_modules(src.checkpoint))
        wanted = wanted_modules(src.checkpoint, src.modules, sorted(ours), sorted(present),
                                where="init_from")
        states = read_states(src.checkpoint)
        for module_id in wanted:
            if module_id not in states:
                raise CheckpointError(f"init_from: {src.checkpoint}'s safe weights lack module "
                                      f"{module_id!r}")
            state, fresh = _fill_value_net(algo, module_id, states[module_id])
            if fresh:
                log(f"[train] {module_id}: {src.checkpoint} holds its actor only (a MAPPO "
                    f"actor); its own value network keeps its fresh initialisation")
            try:
                set_module_states(algo, {module_id: state})
            except RuntimeError as err:
                raise CheckpointError(
                    f"init_from: module {module_id!r} of {src.checkpoint} does not fit this "
                    f"run (different observation/action spaces or network sizes): "
                    f"{str(err).splitlines()[0]}") from None
            loaded.append(module_id)
        log(f"[train] loaded {', '.join(wanted)} from {src.checkpoint}")
    return loaded


def _fill_value_net(algo: Any, module_id: str, state: dict[str, torch.Tensor]
                    ) -> tuple[dict[str, torch.Tensor], list[str]]:
    """``state`` completed with the run's own value network where ``module_id`` is an IPPO
    actor and ``state`` a MAPPO actor's (see
    :func:`algospace.models.ippo_actor.with_own_value_net`); else ``state`` as it is."""
    from algospace.models.ippo_actor import IPPOActorModule, with_own_value_net

    spec = algo.config.rl_module_spec.rl_module_specs.get(module_id)
    if spec is None or not issubclass(spec.module_class, IPPOActorModule):
        return state, []
    own = module_states(algo, [module_id])[module_id]
    try:
        return with_own_value_net(own, state)
    except ValueError:
        return state, []  # set_module_states names what does not fit


def ensure_ray() -> None:
    """Start a Ray of this process's own when none is running: ``RAY_ADDRESS`` if set, else a
    local one. Never Ray's bare ``ray.init()``, which attaches to whatever cluster the file
    ``/tmp/ray/ray_current_cluster`` names — a stale one, left by a Ray that was killed,
    makes it wait for a cluster that is gone."""
    import ray

    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS") or "local", include_dashboard=False,
                 log_to_driver=False)


def _set_cost_weight(weight: float, runner: Any) -> float:
    """Set the sampling cost weight in ``runner``'s process (see :mod:`envs.core.costs`)."""
    from envs.core.costs import set_sampling_cost_weight

    return set_sampling_cost_weight(weight)


def ramp_costs(algo: Any, ramp_iterations: int) -> float | None:
    """Before the iteration ``algo`` is about to run: set the cost weight of every env
    runner (and of the driver's local one) to :func:`envs.core.costs.cost_weight_at`;
    the weight, or None when no ramp is configured (nothing is called then)."""
    if ramp_iterations <= 0:
        return None
    from functools import partial

    from envs.core.costs import cost_weight_at

    weight = cost_weight_at(int(algo.iteration), ramp_iterations)
    algo.env_runner_group.foreach_env_runner(partial(_set_cost_weight, weight),
                                             local_env_runner=True)
    return weight


def train(cfg: TrainConfig, *, log: Callable[[str], None] = print,
          on_iteration: IterationHook | None = None) -> TrainResult:
    """Train ``cfg.env`` for ``cfg.iterations`` iterations and save a checkpoint.

    With ``cfg.resume_from`` the run continues that checkpoint (its iterations count
    towards ``cfg.iterations``); ``cfg.init_from`` loads module weights first. A
    checkpoint is written every ``cfg.checkpoint_every`` iterations and at the end, into
    ``<out_dir>/<env>-<algorithm>-seed<seed>/checkpoint`` (replaced atomically).
    """
    ensure_ray()
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
            weight = ramp_costs(algo, cfg.ppo.cost_ramp_iterations)
            row = summarise(algo.train())
            if weight is not None:
                row["train/cost_weight"] = weight
            row["seconds"] = time.perf_counter() - started
            if on_iteration is not None:
                on_iteration(i + 1, algo, row)
            history.append(row)
            log(f"[train] {i + 1}/{cfg.iterations} env steps {row['env_steps']:,.0f} "
                f"return {row['episode_return_mean']:.3f} policy loss "
                f"{row['losses/policy']:.4f} critic loss {row['losses/critic']:.4f} "
                f"critic EV {row['critic/explained_variance']:.2f} "
                f"({row['seconds']:.1f} s)")
            if cfg.env_steps is not None and row["env_steps"] >= cfg.env_steps:
                log(f"[train] {row['env_steps']:,.0f} env steps sampled: the budget of "
                    f"{cfg.env_steps:,} is spent")
                break
            if cfg.checkpoint_every and (i + 1) % cfg.checkpoint_every == 0 \
                    and i + 1 < cfg.iterations:
                save(algo, out / "checkpoint", run_info(cfg, algo))
        checkpoint = save(algo, out / "checkpoint", run_info(cfg, algo))
    finally:
        algo.stop()
    steps = int(history[-1]["env_steps"]) if history else 0
    return TrainResult(checkpoint, len(history), steps, history)
