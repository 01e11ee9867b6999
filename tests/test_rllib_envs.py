"""The envs under RLlib: registration, the wrapper, and one strategic row per decision."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from algospace.config import STRATEGIC_AGENTS, DataConfig
from envs.registry import ENV_NAMES
from envs.rllib import RLlibEnv, make_env


def env_config(data: DataConfig, steps: int) -> dict[str, Any]:
    """An RLlib ``env_config`` (a plain mapping) for the small test market."""
    return {"data": {"synthetic": {"days": data.synthetic.days, "seed": data.synthetic.seed},
                     "cache_dir": data.cache_dir}, "episode_steps": steps}


def test_wrapper_keeps_sorted_agents_and_per_agent_spaces(env_data: DataConfig) -> None:
    env = make_env("joint_v0", env_config(env_data, 24))
    assert env.possible_agents == sorted(env.possible_agents)
    assert env.observation_spaces["mlmi"] is env.par_env.observation_space("mlmi")
    assert env.get_action_space("risk").nvec.tolist() == [6, 6, 5]
    assert env.observation_spaces["mlmi"]["local"].shape != env.observation_spaces["fvg"][
        "local"].shape


def play(env: RLlibEnv, seed: int) -> list[tuple[dict[str, Any], ...]]:
    """One episode through the RLlib wrapper, acting for exactly the agents observed."""
    rng = np.random.default_rng(seed)
    obs, infos = env.reset(seed=seed)
    out = [(obs, {}, {}, {}, infos)]
    while True:
        actions = {a: env.action_spaces[a].sample() if a == "risk" else
                   int(rng.integers(env.action_spaces[a].n)) for a in obs}
        step = env.step(actions)
        out.append(step)
        if step[2]["__all__"] or step[3]["__all__"]:
            return out


def test_joint_strategic_agents_observe_once_per_close(env_data: DataConfig) -> None:
    env = make_env("joint_v0", env_config(env_data, 72))
    steps = play(env, seed=2)
    tactical_rewards = sum(s[1]["entry"] for s in steps[1:])
    closes = [bool(s[4]["entry"]["strategic_decision"]) for s in steps]
    for agent in STRATEGIC_AGENTS:
        seen = [agent in s[0] for s in steps]
        # observed at every close (the first step is one) and at the final step
        assert seen[:-1] == closes[:-1] and seen[-1]
        rewards = [s[1][agent] for s in steps[1:] if agent in s[1]]
        assert sum(rewards) == pytest.approx(tactical_rewards, abs=1e-9)
    assert 6 <= sum(closes) <= 14  # ≈ 72 / 6 five-minute steps per 30-minute bar
    assert steps[-1][3]["__all__"] and all(steps[-1][3][a] for a in env.possible_agents)


def test_joint_strategic_reward_is_discounted_inside_the_interval(env_data: DataConfig) -> None:
    """With gamma, a strategic row's reward is Σ γ^i r_i over the 5-minute steps since the
    agent's last decision (i from 0), matching the learner's γ^k bootstrap."""
    gamma = 0.9
    env = make_env("joint_v0", {**env_config(env_data, 72), "gamma": gamma})
    assert env.gamma == gamma
    steps = play(env, seed=2)
    team = [s[1]["entry"] for s in steps[1:]]  # the team reward of every 5-minute step
    expected, acc, weight = [], 0.0, 1.0
    for i, s in enumerate(steps[1:]):
        acc += weight * team[i]
        weight *= gamma
        if "mlmi" in s[1]:
            expected.append(acc)
            acc, weight = 0.0, 1.0
    for agent in STRATEGIC_AGENTS:
        got = [s[1][agent] for s in steps[1:] if agent in s[1]]
        assert got == pytest.approx(expected, abs=1e-9)
    assert sum(expected) != pytest.approx(sum(team), abs=1e-6)  # the discount did something


@pytest.mark.parametrize("name", ENV_NAMES)
def test_ppo_runs_on_each_registered_env(name: str, env_data: DataConfig,
                                         ray_session: Any) -> None:
    algo = _ppo(name, env_data).build_algo()
    try:
        for _ in range(2):
            result = algo.train()
        sampled = result["env_runners"]["num_agent_steps_sampled_lifetime"]
        assert set(sampled) == set(make_env(name, env_config(env_data, 24)).possible_agents)
        assert set(result["learners"]) >= set(sampled)
    finally:
        algo.stop()


def test_joint_batches_hold_one_strategic_row_per_close(env_data: DataConfig,
                                                        ray_session: Any) -> None:
    algo = _ppo("joint_v0", env_data).build_algo()
    try:
        episodes = algo.env_runner.sample(num_episodes=2, random_actions=True)
        complete = [ep for ep in episodes if ep.is_done]
        assert complete
        for episode in complete:
            entry = episode.agent_episodes["entry"]
            decisions = sum(bool(i["strategic_decision"]) for i in entry.get_infos()[:-1])
            for agent in STRATEGIC_AGENTS:
                rows = episode.agent_episodes[agent]
                assert len(rows) == decisions < len(entry)
                assert float(np.sum(rows.get_rewards())) == pytest.approx(
                    float(np.sum(entry.get_rewards())), abs=1e-6)
    finally:
        algo.stop()


def _ppo(name: str, data: DataConfig) -> Any:
    """A tiny PPO config on a registered env (default modules over flattened obs)."""
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.connectors.env_to_module import FlattenObservations
    from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    from envs.rllib import register_envs

    register_envs()
    agents = make_env(name, env_config(data, 24)).possible_agents
    specs = {a: RLModuleSpec(model_config={"fcnet_hiddens": [16]}) for a in agents}
    return (
        PPOConfig()
        .environment(name, env_config=env_config(data, 24))
        .env_runners(num_env_runners=0, env_to_module_connector=lambda *a, **k:
                     FlattenObservations(multi_agent=True))
        .multi_agent(policies=set(agents), policy_mapping_fn=lambda aid, *a, **k: aid)
        .rl_module(rl_module_spec=MultiRLModuleSpec(rl_module_specs=specs))
        .training(train_batch_size_per_learner=96, minibatch_size=48, num_epochs=1)
        .debugging(seed=0)
    )


@pytest.mark.parametrize("gamma", [0.0, 1.5])
def test_gamma_out_of_range_is_refused(env_data: DataConfig, gamma: float) -> None:
    with pytest.raises(ValueError, match=r"gamma must be in \(0, 1\]"):
        make_env("joint_v0", {**env_config(env_data, 24), "gamma": gamma})
