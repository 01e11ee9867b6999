"""The cost weight of sampling envs: a training curriculum on commissions and slippage.

At the calibrated strength of the built-in market a policy that reads the planted
signal only roughly loses money after costs, so a team that starts trading at full
costs learns to stay flat before it learns which way to trade (README, "Does the team
learn?"). ``training.cost_ramp_iterations`` lets the agents learn the direction first:
the envs that *sample for training* charge a share ``w`` of the contract's commission
and slippage (the orders' costs and the exit cost at an episode's end), with ``w``
rising linearly from 0 to 1 over the first iterations (:func:`cost_weight_at`), and the
full costs after. Backtests, reports, the decision engine and every env made directly
always charge the full costs: only the RLlib adapter (:class:`envs.rllib.RLlibEnv`) and
the vector sampler read the weight, which the training loop sets in every env-runner
process before each iteration (:func:`algospace.training.train.ramp_costs`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from algospace.data.contracts import ContractSpec
from algospace.market import Account

_weight = 1.0


def checked_weight(weight: float) -> float:
    """``weight`` as a float in [0, 1], else ValueError."""
    w = float(weight)
    if not 0.0 <= w <= 1.0:
        raise ValueError(f"cost weight must lie in [0, 1], got {weight!r}")
    return w


def set_sampling_cost_weight(weight: float) -> float:
    """Set this process's sampling cost weight (0 … 1); returns it."""
    global _weight
    _weight = checked_weight(weight)
    return _weight


def set_env_cost_weight(env: Any, weight: float) -> None:
    """Make the :class:`~envs.core.base.TradingEnv` ``env`` charge ``weight`` × the contract's
    commission and slippage (its exit cost included) from its next reset on; 1.0: the full
    costs the backtest charges. Only the RLlib adapter (and tests) call it."""
    contract = scaled_contract(env.market.contract, checked_weight(weight))
    if env._account.contract != contract:  # a new account: it takes effect at the reset
        env._account = Account(contract, max_position=env.max_position,
                               initial_equity=env.config.initial_equity)


def sampling_cost_weight() -> float:
    """This process's sampling cost weight (1.0 unless a training loop set it)."""
    return _weight


def cost_weight_at(iteration: int, ramp_iterations: int) -> float:
    """The weight of iteration ``iteration`` (0-based: the one about to run) of a ramp over
    ``ramp_iterations`` iterations: ``min(1, iteration / ramp_iterations)``; 1 when off."""
    if ramp_iterations <= 0:
        return 1.0
    return min(1.0, max(0, int(iteration)) / int(ramp_iterations))


def scaled_contract(contract: ContractSpec, weight: float) -> ContractSpec:
    """``contract`` with commission and slippage multiplied by ``weight``."""
    if weight == 1.0:
        return contract
    return replace(contract, commission=contract.commission * weight,
                   slippage_ticks=contract.slippage_ticks * weight)
