"""Position limits that fit the account: a stated leverage cap on the contract's notional.

A fixed-contract strategy on a $100,000 account must not hold more notional
than a few times its capital; otherwise its equity crosses zero within days and
every ratio built on it loses its meaning. The default limit is

``limit = floor(leverage_cap × capital / (reference_price × point_value))``

contracts (at least 1), where ``reference_price`` is the highest close of the
training split: known before validation and test begin, and conservative over
the split it is measured on. The same limit binds the agents, the baselines and
the oracles. :data:`LEVERAGE_CAP` (2×) is the default; ``env.leverage_cap`` and
``env.max_position`` override it.
"""

from __future__ import annotations

import math

from algospace.errors import ConfigError

LEVERAGE_CAP = 2.0
"""Default cap on notional exposure over capital (gross: |position| × price × point value)."""


def position_limit(capital: float, reference_price: float, point_value: float,
                   leverage_cap: float = LEVERAGE_CAP) -> int:
    """Contracts allowed by ``leverage_cap`` × ``capital`` at ``reference_price`` (at least 1)."""
    for name, value in (("capital", capital), ("reference_price", reference_price),
                        ("point_value", point_value), ("leverage_cap", leverage_cap)):
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(f"position_limit: {name} must be a finite number > 0, found "
                              f"{value!r}")
    return max(1, math.floor(leverage_cap * capital / (reference_price * point_value) + 1e-9))


def leverage(contracts: int, capital: float, price: float, point_value: float) -> float:
    """Gross notional of ``contracts`` at ``price`` over ``capital`` (e.g. 1.8 = 1.8×)."""
    return abs(contracts) * price * point_value / capital
