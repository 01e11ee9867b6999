"""The vectorised env path equals N independent TradingEnvs, bit for bit.

For the same reset seeds and the same pre-drawn random actions, every copy of
:class:`envs.core.vector.VectorEnv` gives the observations, rewards, terminations,
truncations and info of its own ``TradingEnv``, over several episodes with resets, ruin
and the exit cost at the end of an episode included.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from algospace.config import DataConfig
from envs.core.base import TradingEnv
from envs.core.vector import VectorEnv, VectorStep
from envs.registry import make_parallel_env

N = 5
STEPS = {"strategic_v0": 16, "tactical_v0": 40, "joint_v0": 40, "single_v0": 40}
"""Episode length per env: several episodes fit in the run."""
RUIN = {"strategic_v0": 0.1, "tactical_v0": 0.1, "joint_v0": 0.02, "single_v0": 0.1}
"""Ruin fractions at which random actions ruin a $3,000 account in some episodes (joint_v0's
eight random votes mostly cancel, so it trades smaller)."""
INFO_KEYS = ("equity", "position", "row", "clock", "strategic_decision", "exit_cost")


def draw(venv: VectorEnv, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One step of uniformly random actions for every agent of every copy."""
    out = {}
    for agent in venv.possible_agents:
        space = venv.action_space(agent)
        nvec = getattr(space, "nvec", None)
        shape = (venv.n, len(nvec)) if nvec is not None else (venv.n,)
        out[agent] = rng.integers(0, nvec if nvec is not None else space.n, size=shape)
    return out


def same(a: Any, b: Any) -> bool:
    """Equal bit for bit (nan where nan, float32 and float64 kept apart)."""
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def check_obs(venv_obs: dict[str, Any], i: int, obs: dict[str, Any], where: str) -> None:
    """Copy ``i``'s rows of the batch equal the scalar env's observation."""
    assert sorted(venv_obs) == sorted(obs), where
    for agent, parts in obs.items():
        for key in ("local", "state"):
            assert same(venv_obs[agent][key][i], parts[key]), f"{where}: {agent} {key}"


def check_step(step: VectorStep, i: int, scalar: tuple[Any, ...], where: str) -> None:
    """Copy ``i``'s step equals the scalar env's 5-tuple."""
    obs, rewards, terms, truncs, infos = scalar
    check_obs(step.obs, i, obs, where)
    for agent in rewards:
        assert same(step.rewards[agent][i], np.float64(rewards[agent])), f"{where}: {agent}"
        assert bool(step.terminated[agent][i]) is terms[agent], where
        assert bool(step.truncated[agent][i]) is truncs[agent], where
    info = next(iter(infos.values()))
    for key in INFO_KEYS:
        assert step.info[key][i] == info[key], f"{where}: info[{key!r}]"
    assert same(step.info["exit_cost"][i], np.float64(info["exit_cost"])), where


def scalar_actions(env: TradingEnv, actions: dict[str, np.ndarray], i: int) -> dict[str, Any]:
    """Copy ``i``'s actions as the scalar env takes them."""
    return {a: (actions[a][i] if actions[a].ndim > 1 else int(actions[a][i]))
            for a in env.agents}


def run_both(name: str, data: DataConfig, steps: int, seed: int = 0,
             **kwargs: Any) -> dict[str, int]:
    """Step a VectorEnv and N TradingEnvs side by side; counts of what happened."""
    kwargs.setdefault("episode_steps", STEPS[name])
    venv = VectorEnv(name, N, data=data, **kwargs)
    envs = [make_parallel_env(name, data=data, **kwargs) for _ in range(N)]
    seeds = [seed + 10 * i for i in range(N)]
    obs, info, acting = venv.reset(seed=seeds)
    assert all(mask.all() for mask in acting.values())  # episodes start at a decision
    for i, env in enumerate(envs):
        obs_i, info_i = env.reset(seed=seeds[i])
        check_obs(obs, i, obs_i, f"reset of copy {i}")
        assert info["clock"][i] == next(iter(info_i.values()))["clock"]
    rng = np.random.default_rng(seed)
    seen = {"terminated": 0, "truncated": 0, "exit_cost": 0, "exit_at_truncation": 0,
            "resets": 0, "decisions": 0}
    for t in range(steps):
        actions = draw(venv, rng)
        step = venv.step(actions)
        for i, env in enumerate(envs):
            check_step(step, i, env.step(scalar_actions(env, actions, i)), f"step {t} copy {i}")
            for agent in env.possible_agents:  # the mask says who acts at the next step
                acts = env.decision or agent not in ("mlmi", "nwrqk", "portfolio", "regime")
                assert bool(step.acting[agent][i]) is (acts or name == "strategic_v0")
        first = venv.possible_agents[0]
        seen["terminated"] += int(step.terminated[first].sum())
        seen["truncated"] += int(step.truncated[first].sum())
        seen["exit_cost"] += int((step.info["exit_cost"] > 0).sum())
        seen["exit_at_truncation"] += int(((step.info["exit_cost"] > 0)
                                           & step.truncated[first]).sum())
        seen["decisions"] += int(step.info["strategic_decision"].sum())
        if venv.done.any():
            done = np.flatnonzero(venv.done)
            obs, _, _ = venv.reset_done()
            for i in done.tolist():
                obs_i, _ = envs[i].reset()
                check_obs(obs, i, obs_i, f"reset of copy {i} after step {t}")
                seen["resets"] += 1
            for i in np.flatnonzero(~np.isin(np.arange(N), done)).tolist():
                kept = {a: {k: v[i] for k, v in p.items()} for a, p in step.obs.items()}
                check_obs(obs, i, kept, f"copy {i} kept across a reset of others")
    return seen


@pytest.mark.parametrize("name", ["strategic_v0", "tactical_v0", "joint_v0", "single_v0"])
def test_vector_env_equals_independent_envs(name: str, env_data: DataConfig) -> None:
    """Random start on train, a small account: ruin, truncation, exit costs and resets."""
    seen = run_both(name, env_data, 6 * STEPS[name], initial_equity=3_000.0,
                    ruin_fraction=RUIN[name], max_position=5)
    assert seen["terminated"] > 0 and seen["truncated"] > 0, seen  # ruin and the end
    assert seen["exit_at_truncation"] > 0 and seen["exit_cost"] > seen["exit_at_truncation"]
    assert seen["resets"] >= 2 * N, seen
    if name in ("joint_v0", "single_v0"):
        assert 0 < seen["decisions"] < 6 * STEPS[name] * N, seen


@pytest.mark.parametrize("name", ["strategic_v0", "joint_v0"])
def test_vector_env_tiles_like_independent_envs(name: str, env_data: DataConfig) -> None:
    """On val the copies walk the deterministic tiles as independent envs do."""
    seen = run_both(name, env_data, 3 * STEPS[name], split="val")
    assert seen["truncated"] >= 2 * N, seen


def test_an_int_seed_seeds_copy_i_with_seed_plus_i(env_data: DataConfig) -> None:
    venv = VectorEnv("tactical_v0", 3, data=env_data, episode_steps=8)
    obs, info, _ = venv.reset(seed=7)
    for i in range(3):
        env = make_parallel_env("tactical_v0", data=env_data, episode_steps=8)
        obs_i, _ = env.reset(seed=7 + i)
        check_obs(obs, i, obs_i, f"copy {i}")
    assert len(set(info["clock"].tolist())) > 1  # the copies start apart


def test_vector_env_with_shaping_and_penalty(env_data: DataConfig) -> None:
    """The per-agent shaping terms and the drawdown penalty match too."""
    shaping = {"mlmi": 0.5, "entry": 0.3, "risk": 0.2, "portfolio": 0.1}
    run_both("joint_v0", env_data, 2 * STEPS["joint_v0"],
             reward={"drawdown_penalty": 0.3, "shaping": shaping}, seed=3)


def test_vector_env_refuses_bad_input(env_data: DataConfig) -> None:
    """Wrong copies, shapes, ranges and a step past the end say what to fix."""
    with pytest.raises(ValueError, match=r"n \(the number of env copies\) must be an integer >= 1"):
        VectorEnv("tactical_v0", 0, data=env_data)
    venv = VectorEnv("tactical_v0", 3, data=env_data, episode_steps=4)
    with pytest.raises(ValueError, match="one seed per copy"):
        venv.reset(seed=[1, 2])
    venv.reset(seed=0)
    actions = draw(venv, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        venv.step({**actions, "entry": actions["entry"][:2]})
    with pytest.raises(ValueError, match="out of range"):
        venv.step({**actions, "fvg": actions["fvg"] + 5})
    with pytest.raises(ValueError, match=r"actions\['risk'\] out of range"):
        venv.step({**actions, "risk": actions["risk"] - 6})
    with pytest.raises(KeyError, match="no actions for agent 'momentum'"):
        venv.step({a: v for a, v in actions.items() if a != "momentum"})
    for _ in range(4):
        venv.step(actions)
    with pytest.raises(RuntimeError, match="reset_done"):
        venv.step(actions)


def test_bench_counts_every_copy_and_restart(env_data: DataConfig) -> None:
    """bench env's vector loop: env steps count every copy, resets every restarted copy."""
    from experiments.bench.env import random_action_arrays, run_vector

    venv = VectorEnv("joint_v0", 3, data=env_data, episode_steps=4)
    venv.reset(seed=0)
    steps, resets, _, _ = run_vector(venv, random_action_arrays(venv, 10), 0.0)
    assert (steps, resets) == (30, 6)  # 10 batches of 3 copies; episodes end at 4 and 8


def test_agents_with_equal_locals_share_one_array(env_data: DataConfig) -> None:
    """``entry`` and ``risk`` read the same columns (layout.AGENT_COLUMNS): the vector env
    builds their local observation once and hands both the same array (the tables hold
    NaN warm-up rows, equal for this purpose); other agents get their own."""
    venv = VectorEnv("joint_v0", 2, data=env_data, episode_steps=8)
    obs, _, _ = venv.reset(seed=0)
    step = venv.step(draw(venv, np.random.default_rng(0)))
    for o in (obs, step.obs):
        assert o["risk"]["local"] is o["entry"]["local"]
        locals_ = [id(o[a]["local"]) for a in o if a != "risk"]
        assert len(set(locals_)) == len(locals_)
