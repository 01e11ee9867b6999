"""The ``market`` bench: the default synthetic market's three oracles, per split.

``python -m experiments.bench market [--json F] [--days N] [--seed S]`` generates
the default market (:class:`~algospace.data.synthetic.SyntheticConfig` with
``days`` and ``seed``; nothing else is prepared), runs the three causal oracles
(:mod:`algospace.market.oracle`) on the default account (MES, $100,000, the limit
of the 2x leverage cap at the highest close of the first 70 % of bars) and
reports, for the train / val / test split (70/15/15 of the trading days, in
order; each oracle is flat at every day's end, so days split cleanly) and for
the whole market: each oracle's expected net daily dollar Sharpe and net P&L
(both planted drifts), its realised figures on the bars, and the joint oracle's
expected net P&L over the better single-layer oracle's.

Flat JSON keys: ``oracle_<name>_net_sharpe`` / ``oracle_<name>_net_pnl``
(expected, whole market), ``joint_over_best_single``, the same with a
``_train`` / ``_val`` / ``_test`` suffix per split, realised ones prefixed
``realised_``, and ``foresight_<name>_net_pnl_bound`` (the foresight path's
expected net P&L, which no causal strategy beats in expectation).
"""

from __future__ import annotations

import math
import time
from typing import Any

from algospace.data.synthetic import SESSION_MINUTES, SyntheticConfig, generate
from algospace.market.oracle import (
    ORACLE_NAMES,
    OracleFigures,
    default_account,
    figures,
    foresight_bounds,
    oracle_paths,
)

Figures = dict[str, Any]
SPLIT_FRACTIONS = (0.7, 0.15, 0.15)
"""Train / val / test shares of the trading days."""


def day_splits(days: int) -> dict[str, tuple[int, int]]:
    """Half-open ranges of trading days of each split (70/15/15, rounded half up)."""
    cut_a = math.floor(SPLIT_FRACTIONS[0] * days + 0.5)
    cut_b = math.floor((SPLIT_FRACTIONS[0] + SPLIT_FRACTIONS[1]) * days + 0.5)
    return {"train": (0, cut_a), "val": (cut_a, cut_b), "test": (cut_b, days)}


def _ratio(table: dict[str, OracleFigures]) -> float:
    """Joint expected net P&L over the better single oracle's (nan if that is <= 0)."""
    best = max(table["strategic"].expected_net_pnl, table["tactical"].expected_net_pnl)
    return table["joint"].expected_net_pnl / best if best > 0 else math.nan


def _flat(table: dict[str, OracleFigures], suffix: str) -> Figures:
    """The flat JSON keys of one split (``suffix`` '' for the whole market)."""
    out: Figures = {}
    for name, fig in table.items():
        out[f"oracle_{name}_net_sharpe{suffix}"] = fig.expected_net_sharpe
        out[f"oracle_{name}_net_pnl{suffix}"] = fig.expected_net_pnl
    for name, fig in table.items():
        out[f"realised_oracle_{name}_net_sharpe{suffix}"] = fig.realised_net_sharpe
        out[f"realised_oracle_{name}_net_pnl{suffix}"] = fig.realised_net_pnl
    out[f"joint_over_best_single{suffix}"] = _ratio(table)
    return out


def _print(tables: dict[str, dict[str, OracleFigures]], header: str) -> None:
    """The per-split table of the three oracles."""
    print(f"\n{header}")
    print(f"  {'split':<6} {'oracle':<10} {'exp Sharpe':>10} {'exp net P&L':>13} "
          f"{'real Sharpe':>11} {'real net P&L':>13}")
    for split, table in tables.items():
        for name, fig in table.items():
            print(f"  {split:<6} {name:<10} {fig.expected_net_sharpe:>10.2f} "
                  f"{fig.expected_net_pnl:>13,.0f} {fig.realised_net_sharpe:>11.2f} "
                  f"{fig.realised_net_pnl:>13,.0f}")
        print(f"  {split:<6} joint / best single expected net P&L: {_ratio(table):.2f}")


def run(days: int = 250, seed: int = 0) -> Figures:
    """The ``market`` bench (see the module docstring)."""
    config = SyntheticConfig(days=days, seed=seed)
    start = time.perf_counter()
    market = generate(config)
    generated = time.perf_counter()
    account = default_account(market)
    paths = oracle_paths(market, account)
    solved = time.perf_counter()
    bounds = foresight_bounds(market, account)
    per_day = SESSION_MINUTES // config.bar_minutes
    ranges = {**day_splits(days), "all": (0, days)}
    tables = {split: {name: figures(market, paths[name], account,
                                    slice(a * per_day, b * per_day)) for name in ORACLE_NAMES}
              for split, (a, b) in ranges.items()}
    _print(tables, f"oracles on {config.describe()}: {account.contract.symbol}, "
                   f"${account.capital:,.0f}, limit {account.limit} contracts, "
                   f"${account.contract.cost_per_side:.2f} per contract per side")
    out: Figures = {"market": config.describe(), "days": days, "seed": seed,
                    "contract": account.contract.symbol, "capital_usd": account.capital,
                    "position_limit": account.limit,
                    "cost_per_side_usd": account.contract.cost_per_side,
                    "strategic_strength": config.strategic_strength,
                    "tactical_strength": config.tactical_strength,
                    "generate_s": generated - start, "oracles_s": solved - generated}
    out.update(_flat(tables["all"], ""))
    for split in ("train", "val", "test"):
        out.update(_flat(tables[split], f"_{split}"))
    out.update({f"foresight_{name}_net_pnl_bound": value for name, value in bounds.items()})
    return out
