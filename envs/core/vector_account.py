"""N futures accounts stepped as one batch: :class:`algospace.market.Account` over arrays.

:class:`AccountBatch` holds N independent accounts on one contract as numpy arrays and
steps them all with one call. Each copy follows the specification of
:mod:`algospace.market.account` (order at the open with adverse slippage, the bracket
during the bar with the stop winning a tie, mark to market at the close) with the same
floating-point operations in the same order, so a copy's equity, P&L and bracket equal
a scalar ``Account``'s bit for bit. It covers what the envs use: no ruin stop
(``ruin_level`` is none in the envs; they end the episode on ruin instead) and no fill
or trade log.
"""

from __future__ import annotations

import numpy as np

from algospace.data.contracts import ContractSpec

NAN = np.nan


class AccountBatch:
    """N flat accounts trading ``contract``; every field is an array over the N copies."""

    def __init__(self, contract: ContractSpec, n: int, *, max_position: int,
                 initial_equity: float) -> None:
        self.n = int(n)
        self.max_position = int(max_position)
        self._initial = float(initial_equity)
        self._pv = float(contract.point_value)
        self._comm = float(contract.commission)
        self._slip = float(contract.slippage_ticks * contract.tick_size)
        self.position = np.zeros(n, np.int64)
        """Signed contracts held."""
        self.entry_price = np.full(n, NAN)
        """Average entry price (nan when flat)."""
        self.stop_price = np.full(n, NAN)
        """Stop of the open position (nan: none)."""
        self.target_price = np.full(n, NAN)
        """Target of the open position (nan: none)."""
        self.realised = np.zeros(n)
        """Realised P&L net of commissions (dollars)."""
        self.unrealised = np.zeros(n)
        """Open P&L at the last close (dollars)."""
        self.equity = np.full(n, self._initial)
        """initial + realised + unrealised (dollars)."""
        self.peak_equity = np.full(n, self._initial)
        """Highest equity at any close."""
        self.drawdown = np.zeros(n)
        """peak_equity - equity (dollars)."""
        self.bars_in_trade = np.zeros(n, np.int64)
        """Closes at which the current position was held (0 when flat)."""
        self.last_exit_direction = np.zeros(n, np.int64)
        """Direction of the position a bracket exit closed in the last step, 0 if none."""

    def set_costs(self, contract: ContractSpec) -> None:
        """Charge ``contract``'s commission and slippage on every order from now on."""
        self._comm = float(contract.commission)
        self._slip = float(contract.slippage_ticks * contract.tick_size)

    def reset(self, index: np.ndarray) -> None:
        """Back to flat with the initial equity, for the copies in ``index``."""
        self.position[index] = 0
        for arr in (self.entry_price, self.stop_price, self.target_price):
            arr[index] = NAN
        for arr in (self.realised, self.unrealised, self.drawdown):
            arr[index] = 0.0
        self.equity[index] = self._initial
        self.peak_equity[index] = self._initial
        self.bars_in_trade[index] = 0
        self.last_exit_direction[index] = 0

    def step(self, target: np.ndarray, o: np.ndarray, h: np.ndarray, low: np.ndarray,
             c: np.ndarray, stop_distance: np.ndarray, target_distance: np.ndarray
             ) -> np.ndarray:
        """Process one bar for every copy; the change in equity of each (dollars)."""
        eq0 = self.equity
        target = np.minimum(np.maximum(target, -self.max_position), self.max_position)
        qty = target - self.position
        order = qty != 0
        with np.errstate(invalid="ignore", divide="ignore"):
            if order.any():
                self._order(qty, o, stop_distance, target_distance)
            pos = self.position
            hit = (((pos > 0) & ((low <= self.stop_price) | (h >= self.target_price)))
                   | ((pos < 0) & ((h >= self.stop_price) | (low <= self.target_price))))
            if hit.any():
                self._exit(hit, o, h, low)
            else:
                self.last_exit_direction = np.zeros(self.n, np.int64)
        self._mark(c)
        return self.equity - eq0

    def _order(self, qty: np.ndarray, o: np.ndarray, stop_d: np.ndarray,
               target_d: np.ndarray) -> None:
        """Fill ``qty`` (0: no order) at the open with slippage; a position opened from flat
        or reversed gets its bracket, a closed one loses it."""
        pos, entry = self.position, self.entry_price
        price = o + np.where(qty > 0, self._slip, -self._slip)
        aqty, apos = np.abs(qty), np.abs(pos)
        realised = self.realised - self._comm * aqty  # minus 0.0 where no order: unchanged
        turn = pos * qty
        gross = (price - entry) * np.minimum(aqty, apos) * np.sign(pos) * self._pv
        self.realised = np.where(turn < 0, realised + gross, realised)
        new = pos + qty
        opened = (new != 0) & (pos * new <= 0)  # from flat, or reversed
        averaged = (entry * apos + price * aqty) / (apos + aqty)
        entry = np.where(opened, price, np.where(turn > 0, averaged, entry))
        gone = new == 0
        self.entry_price = np.where(gone, np.nan, entry)
        self.position = new
        d = np.sign(new)
        self.stop_price = np.where(opened, price - d * stop_d,
                                   np.where(gone, np.nan, self.stop_price))
        self.target_price = np.where(opened, price + d * target_d,
                                     np.where(gone, np.nan, self.target_price))
        self.bars_in_trade = np.where(opened, 0, self.bars_in_trade)

    def _exit(self, hit: np.ndarray, o: np.ndarray, h: np.ndarray, low: np.ndarray) -> None:
        """Close the positions of the copies ``hit`` on their stop or target."""
        pos = self.position
        d = np.where(pos > 0, 1, -1)
        stop, tgt = self.stop_price, self.target_price
        gap_stop = d * (o - stop) <= 0
        gap_target = ~gap_stop & (d * (o - tgt) >= 0)
        touched = np.where(d > 0, low <= stop, h >= stop)
        is_stop = gap_stop | (~gap_target & touched)
        price = np.where(gap_stop | gap_target, o, np.where(touched, stop, tgt))
        fill = price - d * np.where(is_stop, self._slip, 0.0)
        apos = np.abs(pos)
        realised = np.where(hit, self.realised - self._comm * apos, self.realised)
        gross = (fill - self.entry_price) * apos * d * self._pv
        self.realised = np.where(hit, realised + gross, realised)
        self.position = np.where(hit, 0, pos)
        self.entry_price = np.where(hit, np.nan, self.entry_price)
        self.stop_price = np.where(hit, np.nan, stop)
        self.target_price = np.where(hit, np.nan, tgt)
        self.last_exit_direction = np.where(hit, d, 0)

    def _mark(self, c: np.ndarray) -> None:
        """Mark every copy to market at close ``c``."""
        pos = self.position
        held = pos != 0
        self.bars_in_trade = np.where(held, self.bars_in_trade + 1, 0)
        u = np.where(held, pos * (c - self.entry_price) * self._pv, 0.0)
        self.unrealised = u
        eq = self._initial + self.realised + u
        self.equity = eq
        self.peak_equity = np.where(eq > self.peak_equity, eq, self.peak_equity)
        self.drawdown = self.peak_equity - eq
