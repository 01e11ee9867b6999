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
from typing import Any

from algospace.config.env import LEVERAGE_CAP
from algospace.data.contracts import ContractSpec, get_contract
from algospace.errors import ConfigError


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


MICROS: dict[str, str] = {"ES": "MES", "NQ": "MNQ", "YM": "MYM", "RTY": "M2K", "CL": "MCL",
                          "GC": "MGC"}
"""The micro contract of each full-size one that has a micro."""
MIN_FULL_CONTRACTS = 3
"""A guessed full-size contract is traded as its micro when the cap allows fewer of it."""


def traded_contract(spec: ContractSpec, capital: float, reference_price: float,
                    leverage_cap: float = LEVERAGE_CAP, *, explicit: bool = False
                    ) -> tuple[ContractSpec, str | None]:
    """The contract to trade, and a note when it is the micro of ``spec``.

    A contract guessed from a file name (``explicit`` False: no ``data.symbol`` and no
    ``data.contract`` overrides) whose leverage cap allows fewer than
    :data:`MIN_FULL_CONTRACTS` contracts on ``capital`` is traded as its micro (same prices,
    a tenth of the point value), so the account holds several contracts within the cap.
    """
    micro = MICROS.get(spec.symbol)
    if explicit or micro is None:
        return spec, None
    full = position_limit(capital, reference_price, spec.point_value, leverage_cap)
    if full >= MIN_FULL_CONTRACTS:
        return spec, None
    chosen = get_contract(micro)
    note = (f"trading {micro}, the micro of {spec.symbol}: a {leverage_cap:g}x leverage cap on "
            f"${capital:,.0f} allows {full} {spec.symbol} contract(s) at {reference_price:,.2f}; "
            f"set data.symbol: {spec.symbol} to trade the full-size contract")
    return chosen, note


def contract_of(meta: dict[str, Any], env_config: Any) -> tuple[ContractSpec, str | None]:
    """The contract an env trades on prepared data with ``meta`` (see :func:`traded_contract`)."""
    data = env_config.data
    explicit = data.symbol is not None or bool(data.contract) or data.source == "synthetic"
    spec = ContractSpec(**meta["contract"])
    return traded_contract(spec, env_config.initial_equity, float(meta["reference_price"]),
                           env_config.leverage_cap, explicit=explicit)


