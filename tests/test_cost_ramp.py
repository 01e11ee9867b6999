"""The training cost ramp (``training.cost_ramp_iterations``, :mod:`envs.core.costs`).

Sampling envs charge a share ``w`` of commission and slippage, rising from 0 to 1;
every env made directly (backtests, reports) charges the full costs whatever ``w`` is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from algospace.config import DataConfig, EnvConfig, PPOSettings
from algospace.errors import ConfigError
from envs.core.costs import (
    cost_weight_at,
    sampling_cost_weight,
    scaled_contract,
    set_env_cost_weight,
    set_sampling_cost_weight,
)
from envs.core.vector import VectorEnv
from envs.registry import make_parallel_env
from envs.rllib import RLlibEnv

BUY, SELL = 2, 4
"""strategic_v0 actions BUY_AGGRESSIVE and SELL_AGGRESSIVE."""


@pytest.fixture
def weight_reset() -> Any:
    """Put the process's sampling weight back to 1 after the test."""
    yield
    set_sampling_cost_weight(1.0)


def test_the_weight_rises_linearly_then_stays_at_one() -> None:
    assert [cost_weight_at(i, 4) for i in range(6)] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    assert cost_weight_at(0, 0) == 1.0 and cost_weight_at(7, 0) == 1.0
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        set_sampling_cost_weight(1.5)
    with pytest.raises(ConfigError, match="cost_ramp_iterations"):
        PPOSettings(cost_ramp_iterations=-1)


def flip(env: Any, steps: int) -> tuple[float, Any]:
    """Alternate all-buy and all-sell for ``steps`` steps from a seeded reset; the summed
    reward in dollars and the account."""
    env.reset(seed=3)
    total = 0.0
    for t in range(steps):
        action = BUY if t % 2 == 0 else SELL
        _, rewards, terms, truncs, _ = env.step(dict.fromkeys(env.agents, action))
        total += next(iter(rewards.values())) * env._scale
        if any(terms.values()) or any(truncs.values()):
            break
    return total, env._account


def test_weight_zero_pays_no_cost_and_the_rest_is_the_same_market(env_data: DataConfig
                                                                  ) -> None:
    """Hand-checked identity: the same trades at w = 0 earn the full-cost P&L plus every
    commission, slippage and the exit cost the full-cost env paid."""
    full = make_parallel_env("strategic_v0", data=env_data, episode_steps=12)
    free = make_parallel_env("strategic_v0", data=env_data, episode_steps=12)
    set_env_cost_weight(free, 0.0)
    paid, acct = flip(full, 12)
    gross, acct0 = flip(free, 12)
    exit_cost = abs(acct.position) * full.market.contract.cost_per_side
    assert acct.commissions > 0 and acct.slippage_cost > 0 and exit_cost > 0
    assert acct0.commissions == 0 and acct0.slippage_cost == 0
    assert gross == pytest.approx(paid + acct.commissions + acct.slippage_cost + exit_cost,
                                  abs=1e-6)
    half = make_parallel_env("strategic_v0", data=env_data, episode_steps=12)
    set_env_cost_weight(half, 0.5)
    mid, _ = flip(half, 12)
    assert mid == pytest.approx((paid + gross) / 2, abs=1e-6)  # costs are linear in w


def test_only_the_rllib_adapter_reads_the_sampling_weight(env_data: DataConfig,
                                                          weight_reset: Any) -> None:
    set_sampling_cost_weight(0.0)
    adapter = RLlibEnv(make_parallel_env("strategic_v0", data=env_data, episode_steps=12))
    adapter.reset(seed=1)
    assert adapter.par_env._account.contract.commission == 0.0
    direct = make_parallel_env("strategic_v0", data=env_data, episode_steps=12)
    direct.reset(seed=1)  # a backtest's env: full costs whatever the weight
    assert direct._account.contract.commission == direct.market.contract.commission > 0
    set_sampling_cost_weight(1.0)
    adapter.reset(seed=2)
    assert adapter.par_env._account.contract == adapter.par_env.market.contract


@pytest.mark.parametrize("weight", [0.0, 0.5])
def test_vector_env_charges_the_weight_like_the_scalar_env(env_data: DataConfig,
                                                           weight: float) -> None:
    """Copy i of the vector env equals a scalar env at the same weight, reward for reward."""
    n, steps = 3, 30
    venv = VectorEnv("strategic_v0", n, data=env_data, episode_steps=12)
    envs = [make_parallel_env("strategic_v0", data=env_data, episode_steps=12)
            for _ in range(n)]
    venv.set_cost_weight(weight)
    for env in envs:
        set_env_cost_weight(env, weight)
    seeds = [5 + i for i in range(n)]
    venv.reset(seed=seeds)
    for i, env in enumerate(envs):
        env.reset(seed=seeds[i])
    rng = np.random.default_rng(0)
    costs = 0.0
    for _ in range(steps):
        actions = {a: rng.integers(0, 7, size=n) for a in venv.possible_agents}
        step = venv.step(actions)
        for i, env in enumerate(envs):
            _, rewards, *_rest, infos = env.step({a: int(actions[a][i]) for a in env.agents})
            for agent, r in rewards.items():
                assert step.rewards[agent][i] == pytest.approx(r, abs=1e-12)
            assert step.info["exit_cost"][i] == pytest.approx(
                next(iter(infos.values()))["exit_cost"], abs=1e-12)
            costs += env._account.commissions
        if venv.done.any():
            done = np.flatnonzero(venv.done)
            venv.reset_done()
            for i in done.tolist():
                envs[i].reset()
    assert (costs > 0) is (weight > 0)


def test_scaled_contract_scales_both_costs(env_data: DataConfig) -> None:
    contract = make_parallel_env("strategic_v0", data=env_data).market.contract
    half = scaled_contract(contract, 0.5)
    assert half.cost_per_side == pytest.approx(contract.cost_per_side / 2)
    assert half.point_value == contract.point_value and half.tick_size == contract.tick_size


@pytest.mark.ray
@pytest.mark.train
def test_training_sets_the_ramp_in_every_env_runner(env_data: DataConfig, tmp_path: Path,
                                                    ray_session: Any) -> None:
    """Before iteration k (0-based) every env-runner process samples at min(1, k / n)."""
    from algospace.training.builder import TrainConfig
    from algospace.training.train import train

    seen: list[tuple[float, list[float]]] = []

    def hook(i: int, algo: Any, row: dict[str, float]) -> None:
        remote = algo.env_runner_group.foreach_env_runner(
            lambda runner: sampling_cost_weight(), local_env_runner=False)
        seen.append((row["train/cost_weight"], remote))

    cfg = TrainConfig(env="strategic_v0", env_config=EnvConfig(data=env_data, episode_steps=24),
                      iterations=3, num_env_runners=1, num_envs_per_env_runner=1,
                      ppo=PPOSettings(train_batch_size=100, minibatch_size=50, num_epochs=1,
                                      cost_ramp_iterations=2),
                      out_dir=str(tmp_path), checkpoint_every=0)
    try:
        train(cfg, on_iteration=hook, log=lambda _: None)
    finally:
        set_sampling_cost_weight(1.0)  # the driver's local runner was set too
    assert seen == [(0.0, [0.0]), (0.5, [0.5]), (1.0, [1.0])]
