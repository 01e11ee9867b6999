"""Futures execution simulator: one instrument, long and short, whole contracts.

This docstring is the specification of :class:`Account`. One call of
``Account.step(target, o, h, l, c)`` processes one bar; ``target`` (the wanted
signed position) was decided at the close of the previous bar.

1. **Order at the open.** ``target`` is clipped to ``[-max_position, max_position]``.
   If it differs from ``position`` the difference is filled at the bar's open
   with adverse slippage: buys at ``o + slippage_ticks * tick_size``, sells at
   ``o - slippage_ticks * tick_size``. Commission is ``commission * |qty|``.
   Closing contracts realise P&L against the average entry price; a reversal
   (long to short or short to long) closes everything and opens the rest at the
   same fill price; adding in the same direction updates the average entry.
   Opening from flat or reversing sets the bracket from the fill price
   (long: ``stop = fill - stop_distance``, ``target = fill + target_distance``;
   short mirrored; a nan distance means no stop / no target). Scaling in or
   out keeps the bracket; going flat clears it.
2. **Bracket during the bar.** With a position and a stop and/or target, the
   whole bar (after the open fill) is checked. Long: stop touched if
   ``l <= stop``, target if ``h >= target``; short mirrored.

   - The bar opened beyond the stop (long: ``o <= stop``): stop exit at ``o``.
   - The bar opened beyond the target (long: ``o >= target``): target exit at
     ``o`` (the resting limit order fills at the first price; no ambiguity).
   - Otherwise, if both are touched inside the bar, the stop wins (the order
     of the touches is unknown; assume the worse one).

   A stop exit is a market order: fill at the stop (or the open on a gap)
   with adverse slippage. A target exit is a limit order: fill at the target
   (or the better open on a gap), no slippage. Commission is charged, the
   position goes flat, the bracket is cleared and ``last_exit`` /
   ``last_exit_direction`` tell what happened.
3. **Ruin stop.** With a finite ``ruin_level`` (dollars of equity; default none)
   the account holds a stop on the whole position at the price where equity
   after exiting, commission and slippage included, equals ``ruin_level``: long
   ``trigger = entry + (ruin_level - initial_equity - realised + commission *
   |position|) / (position * point_value) + slippage``, short mirrored. It is
   checked after the open's fill, together with the bracket: touched inside the
   bar, the whole position is sold at the trigger with adverse slippage, so
   equity lands exactly on ``ruin_level``; opened through it (a gap), it is sold
   at the open and equity lands below the level by the gap. An order whose
   costs, with those of exiting the new position, would take the equity marked
   at the open to the level or below is not placed (a broker's margin check):
   costs alone never cross the level. When the bracket stop is touched too, the
   nearer of the two fires (the price reaches it first); the ruin stop wins over
   a target. A flat account at or below ``ruin_level`` is ruined too. From then
   on the account is ``ruined`` (``ruin_t``: the bar) and stays flat: every
   later target is ignored.
4. **Mark to market at the close.** ``unrealised = position * (c - entry_price)
   * point_value``; ``equity = initial_equity + realised + unrealised`` where
   ``realised`` is net of commissions (slippage is already inside the fill
   prices); then peak equity, drawdown and max drawdown. ``bars_in_trade``
   counts the closes at which the current position was held (1 on the bar it
   was opened, reset by a reversal, 0 when flat).

``step`` returns the change in equity over the bar, so the sum of the returns
equals ``equity - initial_equity``. ``step`` uses plain Python arithmetic only;
with ``record=True`` fills and round trips are logged for :meth:`Account.fills`
and :meth:`Account.trades` (an open trade is not a round trip yet). The ``t``
stamped on fills is the caller's bar index, or the number of steps since
:meth:`Account.reset` when ``t < 0``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from algospace.data.contracts import ContractSpec
from algospace.errors import ConfigError

__all__ = ["FILL_COLUMNS", "TRADE_COLUMNS", "Account", "simulate"]

NAN = math.nan
INF = math.inf
FILL_COLUMNS: tuple[str, ...] = ("t", "qty", "price", "commission", "slippage", "reason")
TRADE_COLUMNS: tuple[str, ...] = (
    "entry_t", "exit_t", "direction", "contracts", "entry_price", "exit_price",
    "pnl_gross", "commission", "pnl_net", "exit_reason",
)


class Account:
    """Futures account simulator: one instrument, long and short, position in whole contracts."""

    __slots__ = (
        "_bar", "_comm", "_fills", "_initial", "_max", "_pv", "_slip", "_tr", "_trades",
        "bars_in_trade", "commissions", "contract", "drawdown", "entry_price", "equity",
        "last_exit", "last_exit_direction", "max_drawdown", "max_position", "n_fills",
        "peak_equity", "position", "realised", "record", "ruin_level", "ruin_t", "ruined",
        "slippage_cost", "stop_price", "target_price", "turnover", "unrealised",
    )

    position: int
    """Signed number of contracts held."""
    entry_price: float
    """Average entry price of the open position (nan when flat)."""
    stop_price: float
    """Stop price of the open position (nan when none)."""
    target_price: float
    """Target (take-profit) price of the open position (nan when none)."""
    equity: float
    """initial_equity + realised + unrealised, in dollars."""
    realised: float
    """Cumulative realised P&L in dollars, net of commissions."""
    unrealised: float
    """position * (close - entry_price) * point_value at the last close."""
    commissions: float
    """Cumulative commissions paid, in dollars."""
    slippage_cost: float
    """Cumulative dollars lost to slippage (informational; already inside fill prices)."""
    peak_equity: float
    """Highest equity at any close (starting at initial_equity)."""
    drawdown: float
    """peak_equity - equity at the last close (dollars, >= 0)."""
    max_drawdown: float
    """Largest drawdown seen since reset."""
    bars_in_trade: int
    """Closes at which the current position has been held (0 when flat)."""
    last_exit: str
    """"stop", "target" or "ruin" if the last step ended in such an exit, else ""."""
    last_exit_direction: int
    """Direction (+1/-1) of the position closed by that bracket exit, 0 if none."""
    n_fills: int
    """Number of fills since reset."""
    turnover: int
    """Total contracts traded since reset."""
    ruin_level: float
    """Equity (dollars) at which the ruin stop liquidates the account; -inf: no ruin stop."""
    ruined: bool
    """True once the ruin stop fired (the account then stays flat until reset)."""
    ruin_t: int
    """The ``t`` of the bar on which the account was ruined (-1 if not ruined)."""

    def __init__(self, contract: ContractSpec, *, max_position: int = 5,
                 initial_equity: float = 100_000.0, record: bool = True,
                 ruin_level: float | None = None) -> None:
        """An account trading ``contract``, flat, with ``initial_equity`` dollars.

        ``ruin_level``: equity at which the ruin stop liquidates it (None: no ruin stop);
        it is kept across :meth:`reset` and may be changed between steps.
        """
        _check_args(contract, max_position, initial_equity)
        self.ruin_level = _check_ruin(ruin_level, initial_equity)
        self.contract = contract
        self.max_position = int(max_position)
        self.record = bool(record)
        self._max = self.max_position
        self._initial = float(initial_equity)
        self._pv = float(contract.point_value)
        self._comm = float(contract.commission)
        self._slip = float(contract.slippage_ticks * contract.tick_size)
        self.reset()

    def reset(self) -> None:
        """Back to flat with equity = initial_equity; logs cleared."""
        self.position = 0
        self.entry_price = self.stop_price = self.target_price = NAN
        self.equity = self.peak_equity = self._initial
        self.realised = self.unrealised = self.commissions = self.slippage_cost = 0.0
        self.drawdown = self.max_drawdown = 0.0
        self.bars_in_trade = self.n_fills = self.turnover = self.last_exit_direction = 0
        self.last_exit = ""
        self.ruined = False
        self.ruin_t = -1
        self._bar = 0
        self._fills: list[tuple[int, int, float, float, float, str]] = []
        self._trades: list[tuple[int, int, int, int, float, float, float, float, float, str]] = []
        # Open round trip: entry_t, direction, max size, in qty, in value, out qty,
        # out value, gross P&L, commission.
        self._tr: list[float] = [0, 0, 0, 0, 0.0, 0, 0.0, 0.0, 0.0]

    def step(self, target: int, o: float, h: float, l: float, c: float, *,  # noqa: E741
             stop_distance: float = NAN, target_distance: float = NAN, t: int = -1) -> float:
        """Process one bar. Returns the change in equity (dollars, net of costs) over the bar."""
        eq0 = self.equity
        self.last_exit = ""
        self.last_exit_direction = 0
        if t < 0:
            t = self._bar
        self._bar += 1
        if self.ruined:
            target = 0
        elif target > self._max:
            target = self._max
        elif target < -self._max:
            target = -self._max
        if target != self.position and (self.ruin_level == -INF
                                        or self._affordable(int(target), float(o))):
            self._order(int(target) - self.position, o, stop_distance, target_distance, t)
        pos = self.position
        if pos and self.ruin_level > -INF and self._ruin_exit(pos, o, h, l, t):
            pass
        elif pos > 0:
            if l <= self.stop_price or h >= self.target_price:
                self._exit(1, o, h, l, t)
        elif pos < 0 and (h >= self.stop_price or l <= self.target_price):
            self._exit(-1, o, h, l, t)
        eq = self._mark(float(c))
        if not self.ruined and eq <= self.ruin_level:  # flat at or below the level
            self.ruined, self.ruin_t = True, t
        return eq - eq0

    def ruin_trigger(self) -> float:
        """The price at which the ruin stop fires for the open position (nan when none)."""
        pos = self.position
        if not pos or self.ruin_level == -INF:
            return NAN
        d = 1 if pos > 0 else -1
        fill = self.entry_price + (self.ruin_level - self._initial - self.realised
                                   + self._comm * abs(pos)) / (pos * self._pv)
        return fill + d * self._slip

    def _affordable(self, target: int, o: float) -> bool:
        """Whether equity at the open, less this order's costs and the cost of exiting
        ``target``, stays above the ruin level (else the order is not placed)."""
        pos = self.position
        marked = self._initial + self.realised + (pos * (o - self.entry_price) * self._pv
                                                   if pos else 0.0)
        side = self._comm + self._slip * self._pv
        return marked - side * (abs(target - pos) + abs(target)) > self.ruin_level

    def _ruin_exit(self, pos: int, o: float, h: float, l: float, t: int) -> bool:  # noqa: E741
        """Liquidate on the ruin stop if the bar reaches it first (see the module docstring)."""
        d = 1 if pos > 0 else -1
        trigger = self.ruin_trigger()
        o = float(o)
        if d * (o - trigger) <= 0:  # opened through it: sell at the open
            price = o
        elif not ((l <= trigger) if d > 0 else (h >= trigger)):
            return False
        elif d * (self.stop_price - trigger) > 0 and (
                (l <= self.stop_price) if d > 0 else (h >= self.stop_price)):
            return False  # the bracket stop is nearer: it fires first
        else:
            price = trigger
        self._fill(-pos, price - d * self._slip, self._slip, "ruin", t)
        self.last_exit, self.last_exit_direction = "ruin", d
        self.ruined, self.ruin_t = True, t
        return True

    def _mark(self, c: float) -> float:
        """Mark to market at close ``c``; returns the new equity."""
        pos = self.position
        if pos:
            self.bars_in_trade += 1
            u = pos * (c - self.entry_price) * self._pv
        else:
            self.bars_in_trade = 0
            u = 0.0
        self.unrealised = u
        eq = self._initial + self.realised + u
        self.equity = eq
        if eq > self.peak_equity:
            self.peak_equity = eq
        dd = self.peak_equity - eq
        self.drawdown = dd
        if dd > self.max_drawdown:
            self.max_drawdown = dd
        return eq

    def _order(self, qty: int, o: float, stop_d: float, target_d: float, t: int) -> None:
        """Fill ``qty`` at the open with slippage; set the bracket on a new position."""
        old = self.position
        slip = self._slip
        price = float(o) + slip if qty > 0 else float(o) - slip
        self._fill(qty, price, slip, "order", t)
        new = self.position
        if new and (old == 0 or (old > 0) != (new > 0)):
            d = 1 if new > 0 else -1
            self.stop_price = price - d * float(stop_d)
            self.target_price = price + d * float(target_d)
            self.bars_in_trade = 0

    def _exit(self, d: int, o: float, h: float, l: float, t: int) -> None:  # noqa: E741
        """Close the position of direction ``d`` on its stop or target (see module docstring)."""
        o = float(o)
        stop, tgt = self.stop_price, self.target_price
        if d * (o - stop) <= 0:  # opened through the stop
            reason, price = "stop", o
        elif d * (o - tgt) >= 0:  # opened through the target
            reason, price = "target", o
        elif (l <= stop) if d > 0 else (h >= stop):  # stop touched (wins over the target)
            reason, price = "stop", stop
        else:
            reason, price = "target", tgt
        slip = self._slip if reason == "stop" else 0.0
        self._fill(-self.position, price - d * slip, slip, reason, t)
        self.last_exit = reason
        self.last_exit_direction = d

    def _fill(self, qty: int, price: float, slip: float, reason: str, t: int) -> None:
        """Book one fill of signed ``qty`` at ``price`` (slippage ``slip`` points inside it)."""
        aqty = qty if qty > 0 else -qty
        comm = self._comm * aqty
        slip_cost = slip * aqty * self._pv
        self.commissions += comm
        self.slippage_cost += slip_cost
        self.realised -= comm
        self.n_fills += 1
        self.turnover += aqty
        if self.record:
            self._fills.append((t, qty, price, comm, slip_cost, reason))
        pos = self.position
        if pos == 0 or (pos > 0) == (qty > 0):
            self._open(qty, price, comm, t)
            return
        apos = pos if pos > 0 else -pos
        closed = aqty if aqty < apos else apos
        self._close(closed, price, self._comm * closed, reason, t)
        if aqty > apos:  # reversal: open the rest at the same price
            self._open(qty + pos, price, self._comm * (aqty - apos), t)

    def _open(self, qty: int, price: float, comm: float, t: int) -> None:
        """Open or add ``qty`` contracts (same direction as the position, or from flat)."""
        pos = self.position
        aqty = abs(qty)
        tr = self._tr
        if pos == 0:
            self.entry_price = price
            tr[:] = [t, 1 if qty > 0 else -1, 0, 0, 0.0, 0, 0.0, 0.0, 0.0]
        else:
            apos = abs(pos)
            self.entry_price = (self.entry_price * apos + price * aqty) / (apos + aqty)
        self.position = pos + qty
        tr[2] = max(tr[2], abs(self.position))
        tr[3] += aqty
        tr[4] += price * aqty
        tr[8] += comm

    def _close(self, closed: int, price: float, comm: float, reason: str, t: int) -> None:
        """Close ``closed`` contracts (at most the position) at ``price``."""
        pos = self.position
        d = 1 if pos > 0 else -1
        gross = (price - self.entry_price) * closed * d * self._pv
        self.realised += gross
        tr = self._tr
        tr[5] += closed
        tr[6] += price * closed
        tr[7] += gross
        tr[8] += comm
        self.position = pos - d * closed
        if self.position == 0:
            self.entry_price = self.stop_price = self.target_price = NAN
            if self.record:
                self._trades.append((
                    int(tr[0]), t, d, int(tr[2]), tr[4] / tr[3], tr[6] / tr[5],
                    tr[7], tr[8], tr[7] - tr[8], reason,
                ))

    def fills(self) -> pd.DataFrame:
        """Every fill since reset: t, qty (signed), price, commission, slippage ($), reason."""
        self._require_record("fills")
        frame = pd.DataFrame.from_records(self._fills, columns=list(FILL_COLUMNS))
        return frame.astype({"t": np.int64, "qty": np.int64, "price": np.float64,
                             "commission": np.float64, "slippage": np.float64, "reason": object})

    def trades(self) -> pd.DataFrame:
        """One row per completed round trip (see TRADE_COLUMNS)."""
        self._require_record("trades")
        frame = pd.DataFrame.from_records(self._trades, columns=list(TRADE_COLUMNS))
        ints = ("entry_t", "exit_t", "direction", "contracts")
        types: dict[str, type] = {n: (np.int64 if n in ints else np.float64) for n in TRADE_COLUMNS}
        types["exit_reason"] = object
        return frame.astype(types)

    def _require_record(self, what: str) -> None:
        if not self.record:
            raise ConfigError(f"Account.{what}() needs the fill log, but this account was "
                              "created with record=False; create it with record=True")


def _check_args(contract: object, max_position: object, initial_equity: object) -> None:
    """Raise ConfigError on a bad constructor argument."""
    if not isinstance(contract, ContractSpec):
        raise ConfigError(f"Account: contract must be a ContractSpec, got "
                          f"{type(contract).__name__}; use "
                          "algospace.data.contracts.get_contract('ES')")
    if (isinstance(max_position, bool) or not isinstance(max_position, int | np.integer)
            or max_position < 1):
        raise ConfigError(f"Account: max_position must be an integer >= 1 (contracts), got "
                          f"{max_position!r}; pass e.g. max_position=5")
    if (isinstance(initial_equity, bool) or not isinstance(initial_equity, int | float)
            or not math.isfinite(initial_equity) or initial_equity <= 0):
        raise ConfigError(f"Account: initial_equity must be a finite number > 0 (dollars), got "
                          f"{initial_equity!r}; pass e.g. initial_equity=100_000.0")


def _check_ruin(ruin_level: object, initial_equity: float) -> float:
    """The ruin level as a float (-inf for None); ConfigError unless below initial equity."""
    if ruin_level is None:
        return -INF
    if (isinstance(ruin_level, bool) or not isinstance(ruin_level, int | float | np.floating)
            or not math.isfinite(ruin_level) or ruin_level >= initial_equity):
        raise ConfigError(f"Account: ruin_level must be a finite number below initial_equity "
                          f"({initial_equity:g}) or None, got {ruin_level!r}; pass e.g. "
                          "ruin_level=50_000.0 (ruin at half of $100,000)")
    return float(ruin_level)


def _per_bar(value: float | Sequence[float] | np.ndarray | None, n: int, name: str) -> list[float]:
    """A per-bar list of distances from None (no bracket), a scalar or an array of length n."""
    if value is None:
        return [NAN] * n
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        return [float(arr)] * n
    if arr.shape != (n,):
        raise ConfigError(f"simulate: {name} must be a scalar or have one value per bar ({n}), "
                          f"got shape {arr.shape}; pass a scalar or an array as long as targets")
    return [float(x) for x in arr]


def simulate(contract: ContractSpec, targets: Sequence[int] | np.ndarray,
             o: Sequence[float] | np.ndarray, h: Sequence[float] | np.ndarray,
             l: Sequence[float] | np.ndarray, c: Sequence[float] | np.ndarray,  # noqa: E741
             *, stop_distance: float | Sequence[float] | np.ndarray | None = None,
             target_distance: float | Sequence[float] | np.ndarray | None = None,
             max_position: int = 5, initial_equity: float = 100_000.0,
             ruin_level: float | None = None) -> tuple[np.ndarray, Account]:
    """Run Account over arrays; returns per-bar equity and the account (for fills/trades).

    ``targets[i]`` is the target position for bar ``i`` (decided at the close of bar
    ``i - 1``). Distances are None (no stop / no target), a scalar, or one per bar
    (the value of the bar on which a position is opened is used). ``ruin_level``: the
    account's ruin stop (None: none).
    """
    cols = [np.asarray(x) for x in (targets, o, h, l, c)]
    n = cols[0].shape[0] if cols[0].ndim == 1 else -1
    if any(x.shape != (n,) for x in cols):
        shapes = ", ".join(f"{k}={x.shape}" for k, x in zip("tohlc", cols, strict=True))
        raise ConfigError(f"simulate: targets, o, h, l, c must be 1-D of equal length, got "
                          f"{shapes}; pass one value per bar in each")
    tg, oo, hh, ll, cc = (x.tolist() for x in cols)
    sd = _per_bar(stop_distance, n, "stop_distance")
    td = _per_bar(target_distance, n, "target_distance")
    acct = Account(contract, max_position=max_position, initial_equity=initial_equity,
                   ruin_level=ruin_level)
    equity = np.empty(n, dtype=np.float64)
    step = acct.step
    for i in range(n):
        step(int(tg[i]), oo[i], hh[i], ll[i], cc[i], stop_distance=sd[i],
             target_distance=td[i], t=i)
        equity[i] = acct.equity
    return equity, acct
