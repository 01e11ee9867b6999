"""The env benchmark: steps per second and memory of every registered env.

Each env of envs/registry.py (strategic_v0, tactical_v0, joint_v0, single_v0) on the
built-in synthetic market. Env steps per second with uniformly random actions
(drawn before the clock starts; resets at episode ends are timed), in a child
pinned to one core, and the same times the number of agents (agent steps, the
plain x8 for joint_v0 although its strategic agents decide every 6th step);
memory of an extra env (current RSS after 20 more instances, each reset and
stepped, minus before, / 20). Targets: joint_v0 >= 20,000 env steps/s
(160,000 agent steps/s), strategic_v0 and tactical_v0 >= 30,000, single_v0
(joint_v0's work plus one concatenation) >= 20,000; an extra env < 10 MB.

The vector path (:class:`envs.core.vector.VectorEnv`: 16, and 64, copies stepped as one
batch) is timed the same way in the same run, beside each env's own figure: env
steps per second count every copy's step, actions are pre-drawn arrays, and the
finished copies are restarted (``reset_done``) inside the timed loop. Steps per CPU
second are given beside the wall-clock figures: on a machine other jobs share, they are
the fairer comparison.
"""

from __future__ import annotations

import gc
import importlib
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from experiments.bench.common import Figures, peak_rss_mb, rss_mb, run_child

ENV_TARGET_STEPS_PER_S = {"strategic_v0": 30_000.0, "tactical_v0": 30_000.0,
                          "joint_v0": 20_000.0, "single_v0": 20_000.0}
ENV_TARGET_MB_PER_EXTRA = 10.0
ENV_EXTRA_INSTANCES = 20
ENV_WARMUP_STEPS = 2_000
DEFAULT_STEPS = 20_000
"""Random actions drawn before timing, cycled."""
DEFAULT_SECONDS = 3.0
"""Minimum timed stepping per env in seconds."""
VECTOR_COPIES: tuple[int, ...] = (16, 64)
"""Env copies of the vector path's batch, one row each (16: the headline figure)."""


def env_on_cache(name: str, cache: str) -> Any:
    """One registered ParallelEnv ``name`` on the built-in synthetic market, data in ``cache``.

    The env modules are imported here, not with this module: the data benchmark's
    children import this module too and measure their memory after their imports.
    """
    from algospace.config import DataConfig
    from envs.registry import make_parallel_env

    return make_parallel_env(name, data=DataConfig(cache_dir=cache))


def random_actions(env: Any, steps: int, seed: int = 0) -> list[dict[str, Any]]:
    """``steps`` ready-made action dicts (every possible agent), uniform over each action
    space: ``Discrete(n)`` → int in [0, n); ``MultiDiscrete`` → ndarray row below ``nvec``."""
    rng = np.random.default_rng(seed)
    columns: dict[str, list[Any]] = {}
    for agent in env.possible_agents:
        space = env.action_space(agent)
        nvec = getattr(space, "nvec", None)
        if nvec is not None:
            columns[agent] = list(rng.integers(0, nvec, size=(steps, len(nvec))))
        else:
            columns[agent] = rng.integers(0, int(space.n), size=steps).tolist()
    return [{agent: column[i] for agent, column in columns.items()} for i in range(steps)]


def run_actions(env: Any, actions: list[dict[str, Any]], seconds: float
                ) -> tuple[int, int, float, float]:
    """Step through ``actions`` (cycling, reset when an episode ends) for at least
    ``seconds``; returns steps, resets, wall seconds and CPU seconds."""
    step, reset = env.step, env.reset
    steps = resets = 0
    cpu, start = time.process_time(), time.perf_counter()
    while True:
        for action in actions:
            step(action)
            if not env.agents:
                reset()
                resets += 1
        steps += len(actions)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return steps, resets, elapsed, time.process_time() - cpu


def pin_one_core() -> int:
    """Pin this process to one core (the lowest it may use); -1 where unsupported."""
    if not hasattr(os, "sched_setaffinity"):
        return -1
    core = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    return core


def child_env_prepare(cache: str) -> Figures:
    """Build the market arrays into ``cache`` (first env construction) and time it."""
    start = time.perf_counter()
    env_on_cache("joint_v0", cache)
    return {"seconds": time.perf_counter() - start, "peak_rss_mb": peak_rss_mb()}


def child_env_steps(name: str, cache: str, steps: str, seconds: str) -> Figures:
    """Single-core env steps per second of ``name`` with pre-drawn uniform random actions."""
    core = pin_one_core()
    start = time.perf_counter()
    env = env_on_cache(name, cache)
    built = time.perf_counter()
    actions = random_actions(env, int(steps))
    env.reset(seed=0)
    run_actions(env, actions[:ENV_WARMUP_STEPS], 0.0)
    env.reset(seed=0)
    done, resets, elapsed, cpu = run_actions(env, actions, float(seconds))
    return {"core": core, "agents": len(env.possible_agents), "construct_s": built - start,
            "steps": done, "resets": resets, "seconds": elapsed, "cpu_s": cpu}


def random_action_arrays(venv: Any, batches: int, seed: int = 0
                         ) -> list[dict[str, np.ndarray]]:
    """``batches`` ready-made action batches for a VectorEnv: per agent, one uniform action
    per copy (``(n,)`` ints; MultiDiscrete: ``(n, len(nvec))``)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(batches):
        batch = {}
        for agent in venv.possible_agents:
            space = venv.action_space(agent)
            nvec = getattr(space, "nvec", None)
            batch[agent] = (rng.integers(0, nvec, size=(venv.n, len(nvec))) if nvec is not None
                            else rng.integers(0, int(space.n), size=venv.n))
        out.append(batch)
    return out


def run_vector(venv: Any, actions: list[dict[str, np.ndarray]], seconds: float
               ) -> tuple[int, int, float, float]:
    """Step the copies through ``actions`` (cycling; finished copies restarted) for at
    least ``seconds``; returns env steps (all copies), resets, wall and CPU seconds."""
    step, reset_done = venv.step, venv.reset_done
    steps = resets = 0
    cpu, start = time.process_time(), time.perf_counter()
    while True:
        for action in actions:
            step(action)
            ended = int(np.count_nonzero(venv.done))
            if ended:
                reset_done()
                resets += ended
        steps += len(actions) * venv.n
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return steps, resets, elapsed, time.process_time() - cpu


def child_env_vector_steps(name: str, cache: str, copies: str, steps: str, seconds: str
                           ) -> Figures:
    """Single-core env steps per second of ``copies`` copies of ``name`` stepped as one
    batch, with pre-drawn uniform random actions."""
    from algospace.config import DataConfig
    from envs.core.vector import VectorEnv

    core = pin_one_core()
    n = int(copies)
    venv = VectorEnv(name, n, data=DataConfig(cache_dir=cache))
    actions = random_action_arrays(venv, max(1, int(steps) // n))
    venv.reset(seed=0)
    run_vector(venv, actions[:max(1, ENV_WARMUP_STEPS // n)], 0.0)
    venv.reset(seed=0)
    done, resets, elapsed, cpu = run_vector(venv, actions, float(seconds))
    return {"core": core, "copies": venv.n, "agents": len(venv.possible_agents),
            "steps": done, "resets": resets, "seconds": elapsed, "cpu_s": cpu}


def child_env_memory(name: str, cache: str) -> Figures:
    """Current RSS after one env, then after ``ENV_EXTRA_INSTANCES`` more (each reset and
    stepped 10 times so its buffers exist)."""
    # env_on_cache's imports, done before the first reading: it counts envs, not imports
    importlib.import_module("envs.registry")
    importlib.import_module("algospace.config")

    imported = rss_mb()
    envs = [env_on_cache(name, cache)]

    def exercise(env: Any, seed: int) -> None:
        env.reset(seed=seed)
        for action in random_actions(env, 10, seed):
            env.step(action)
            if not env.agents:
                env.reset()

    exercise(envs[0], 0)
    gc.collect()
    before, anon_before = rss_mb(), rss_mb("RssAnon")
    for i in range(ENV_EXTRA_INSTANCES):
        envs.append(env_on_cache(name, cache))
        exercise(envs[-1], i + 1)
    gc.collect()
    after, anon_after = rss_mb(), rss_mb("RssAnon")
    return {"rss_after_imports_mb": imported, "rss_one_env_mb": before,
            "rss_extra_envs_mb": after, "extra": ENV_EXTRA_INSTANCES,
            "mb_per_extra_env": (after - before) / ENV_EXTRA_INSTANCES,
            "anon_mb_per_extra_env": (anon_after - anon_before) / ENV_EXTRA_INSTANCES}


def run(steps: int = DEFAULT_STEPS, seconds: float = DEFAULT_SECONDS) -> Figures:
    """The env benchmark (see the module docstring): ``steps`` pre-drawn random actions,
    at least ``seconds`` of timed stepping per env."""
    from envs.registry import ENV_NAMES

    with tempfile.TemporaryDirectory() as tmp:
        cache = str(Path(tmp) / "cache")
        prep = run_child("env_prepare", [cache])
        figures: Figures = {"env_prepare_cold_s": prep["seconds"],
                            "env_prepare_peak_rss_mb": prep["peak_rss_mb"],
                            "env_random_action_steps": steps, "env_min_timed_s": seconds}
        for name in ENV_NAMES:
            speed = run_child("env_steps", [name, cache, str(steps), str(seconds)])
            vectors = {n: run_child("env_vector_steps", [name, cache, str(n), str(steps),
                                                         str(seconds)])
                       for n in VECTOR_COPIES}
            memory = run_child("env_memory", [name, cache])
            per_s = speed["steps"] / speed["seconds"]
            target = ENV_TARGET_STEPS_PER_S[name]
            figures.update({
                f"{name}_env_steps_per_s": per_s,
                f"{name}_agent_steps_per_s": per_s * speed["agents"],
                f"{name}_target_steps_per_s": target,
                f"{name}_steps_vs_target_ratio": per_s / target,
                f"{name}_us_per_env_step": 1e6 / per_s,
                f"{name}_timed_steps": speed["steps"],
                f"{name}_timed_resets": speed["resets"],
                f"{name}_timed_s": speed["seconds"],
                f"{name}_cpu_share": speed["cpu_s"] / speed["seconds"],
                f"{name}_env_steps_per_cpu_s": speed["steps"] / speed["cpu_s"],
                f"{name}_pinned_core": speed["core"],
                f"{name}_construct_cached_s": speed["construct_s"],
                f"{name}_rss_after_imports_mb": memory["rss_after_imports_mb"],
                f"{name}_rss_one_env_mb": memory["rss_one_env_mb"],
                f"{name}_mb_first_env": memory["rss_one_env_mb"]
                    - memory["rss_after_imports_mb"],
                f"{name}_rss_plus_20_envs_mb": memory["rss_extra_envs_mb"],
                f"{name}_mb_per_extra_env": memory["mb_per_extra_env"],
                f"{name}_anon_mb_per_extra_env": memory["anon_mb_per_extra_env"],
                f"{name}_target_mb_per_extra_env": ENV_TARGET_MB_PER_EXTRA,
                f"{name}_mb_vs_target_ratio":
                    memory["mb_per_extra_env"] / ENV_TARGET_MB_PER_EXTRA,
            })
            for n, vector in vectors.items():
                figures.update(vector_figures(name, n, vector, per_s))
        return figures


def vector_figures(name: str, n: int, vector: Figures, one_env_per_s: float) -> Figures:
    """The figures of ``n`` copies of ``name`` stepped as one batch, beside one env's."""
    per_s = vector["steps"] / vector["seconds"]
    return {f"{name}_vector{n}_env_steps_per_s": per_s,
            f"{name}_vector{n}_agent_steps_per_s": per_s * vector["agents"],
            f"{name}_vector{n}_vs_one_env_ratio": per_s / one_env_per_s,
            f"{name}_vector{n}_env_steps_per_cpu_s": vector["steps"] / vector["cpu_s"],
            f"{name}_vector{n}_timed_steps": vector["steps"],
            f"{name}_vector{n}_timed_resets": vector["resets"],
            f"{name}_vector{n}_cpu_share": vector["cpu_s"] / vector["seconds"]}


CHILDREN: dict[str, Callable[..., Figures]] = {
    "env_prepare": child_env_prepare, "env_steps": child_env_steps,
    "env_vector_steps": child_env_vector_steps, "env_memory": child_env_memory}
"""The measurements this benchmark runs in fresh processes, by task name."""
