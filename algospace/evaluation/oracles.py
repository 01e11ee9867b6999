"""The three planted-signal oracles on a backtest's bars, expected P&L and capture.

On the built-in market the generator records, for every 5-minute bar, the
expected drift in points of each planted component (``drift_strategic``,
``drift_tactical``) and the bar's model volatility (``sigma_points``); see
:mod:`algospace.data.synthetic`. Here, over exactly the bars a backtest
executed:

- **Oracles.** For each layer — ``strategic`` (the 30-minute component),
  ``tactical`` (the 5-minute one) and ``joint`` (both) — the causal position
  path that maximises expected net dollar P&L given that layer's drifts as
  known at each bar, the contract's costs and the same position limit as the
  agents (:func:`algospace.market.oracle.causal_positions`, stored by the
  generator as unit positions ``oracle_<layer>`` and scaled here by the
  limit), traded on the 5-minute bars of the executed span through the same
  account and stopped at ruin like every other strategy.
- **Expected P&L** of any position path: ``Σ position × (drift_strategic +
  drift_tactical) × point value − costs`` — what it earns in expectation from
  the planted components, nearly free of the noise of one draw.
- **Capture.** Realised: the agents' net dollar P&L over the oracle's, on the
  same bars (``capture_of_oracle`` for the env's own layer oracle,
  ``capture_of_joint_oracle``). Expected: the same ratio of expected P&L
  (``expected_capture``, ``expected_capture_of_joint_oracle``). A Sharpe ratio
  is never compared with the oracle's as a share.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from algospace.data.contracts import ContractSpec
from algospace.evaluation.metrics import Metrics, account_at_ruin, compute_metrics
from algospace.market.account import simulate

LAYERS: tuple[str, ...] = ("strategic", "tactical", "joint")
"""The three oracles, by the planted components they know."""
CAPTURE_KEYS: tuple[str, ...] = ("capture_of_oracle", "capture_of_joint_oracle",
                                  "expected_capture", "expected_capture_of_joint_oracle")
"""The capture figures every report and summary carries for the agents (synthetic data)."""
TRUTH = "synthetic_truth"
"""Store table with the generator's per-bar truth (built-in market only)."""


@dataclass(frozen=True)
class Truth:
    """The generator's per-5-minute-bar truth over a backtest's executed span."""

    rows: np.ndarray
    """Base (5-minute) rows of the span, in time order."""
    drift_strategic: np.ndarray
    """Expected drift of the 30-minute component per bar, in points."""
    drift_tactical: np.ndarray
    """Expected drift of the 5-minute component per bar, in points."""
    ohlc: np.ndarray
    """Open, high, low, close of those bars (float64, rows × 4)."""
    index: pd.DatetimeIndex
    """Open times of those bars."""
    unit_positions: dict[str, np.ndarray]
    """Each oracle's causal position per bar for a limit of one contract (-1, 0, +1)."""

    def drift(self, layer: str) -> np.ndarray:
        """Expected drift in points that the ``layer`` oracle knows."""
        if layer == "strategic":
            return self.drift_strategic
        if layer == "tactical":
            return self.drift_tactical
        return self.drift_strategic + self.drift_tactical


@dataclass(frozen=True)
class OracleRun:
    """One oracle on the executed span."""

    metrics: Metrics
    """Realised metrics through the account (stopped at ruin)."""
    equity: pd.Series
    """Realised equity per 5-minute bar."""
    expected_pnl: float
    """Expected net P&L of its position path (both planted components, minus its costs)."""


def span_rows(clock_rows: np.ndarray, close_step: np.ndarray | None) -> tuple[np.ndarray,
                                                                              np.ndarray]:
    """The 5-minute rows of the executed clock bars, and for each its clock bar's position.

    ``close_step`` maps a 30-minute bar to the 5-minute row at which it closed (None on a
    5-minute clock): a 30-minute bar spans the rows after the previous bar's close up to
    its own.
    """
    if close_step is None:
        return clock_rows.copy(), np.arange(len(clock_rows))
    ends = close_step[clock_rows]
    starts = np.where(clock_rows > 0, close_step[np.maximum(clock_rows - 1, 0)] + 1, 0)
    pieces = [np.arange(a, b + 1) for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]
    owner = np.repeat(np.arange(len(clock_rows)), [len(p) for p in pieces])
    return np.concatenate(pieces).astype(np.int64), owner


def read_truth(table: pd.DataFrame, base_ohlc: np.ndarray, base_index: pd.DatetimeIndex,
               rows: np.ndarray) -> Truth:
    """The truth columns and bars at ``rows``."""
    return Truth(rows, table["drift_strategic"].to_numpy(np.float64)[rows],
                 table["drift_tactical"].to_numpy(np.float64)[rows],
                 np.asarray(base_ohlc, dtype=np.float64)[rows], base_index[rows],
                 {layer: table[f"oracle_{layer}"].to_numpy(np.int64)[rows]
                  for layer in LAYERS})


def expected_pnl(positions: np.ndarray, drift_points: np.ndarray, point_value: float,
                 costs: float) -> float:
    """Σ position × drift × point value − costs (dollars): the planted components' share."""
    return float(np.dot(positions.astype(np.float64), drift_points) * point_value - costs)


def run_oracle(truth: Truth, layer: str, contract: ContractSpec, limit: int,
               initial: float, ruin_level: float) -> OracleRun:
    """The ``layer`` oracle through the account on ``truth``'s bars."""
    targets = truth.unit_positions[layer] * limit
    o, h, low, c = (truth.ohlc[:, k] for k in range(4))
    values, acct = simulate(contract, targets, o, h, low, c, max_position=limit,
                            initial_equity=initial, ruin_level=ruin_level)
    stopped, kwargs = account_at_ruin(values, acct)
    equity = pd.Series(stopped.equity, index=truth.index, name="equity")
    metrics = compute_metrics(equity, initial_equity=initial, **kwargs)
    return OracleRun(metrics, equity, expected_pnl(stopped.positions, truth.drift("joint"),
                                                   contract.point_value, kwargs["costs"]))


def capture_ratio(agents: float, oracle: float) -> float:
    """A capture: the agents' P&L over the oracle's on the same bars (NaN unless the
    oracle's is positive)."""
    return agents / oracle if oracle > 0 else math.nan


def capture(agents_net: float, agents_expected: float, oracles: dict[str, OracleRun],
            layer: str) -> dict[str, float]:
    """Realised and expected capture of the env's own layer oracle and of the joint one."""
    own, joint = oracles[layer], oracles["joint"]
    return {
        "capture_of_oracle": capture_ratio(agents_net, own.metrics.net_pnl),
        "capture_of_joint_oracle": capture_ratio(agents_net, joint.metrics.net_pnl),
        "expected_capture": capture_ratio(agents_expected, own.expected_pnl),
        "expected_capture_of_joint_oracle": capture_ratio(agents_expected, joint.expected_pnl),
        "expected_pnl": agents_expected,
        "oracle_expected_pnl": own.expected_pnl,
        "joint_oracle_expected_pnl": joint.expected_pnl,
    }
