"""The built-in synthetic futures market: the default data when you have no CSV.

:func:`generate` turns a :class:`SyntheticConfig` into a :class:`SyntheticMarket`:
OHLCV :class:`~algospace.data.bars.Bars` of an ES-like equity-index future, the
hidden regime of every bar, the planted signal's direction and the Sharpe
ratio of the oracle that trades it. The same config (seed included) always
gives the same bars, and :func:`to_csv` writes them byte-identically.

Sessions
--------
Exchange wall-clock time, tz-naive, CME Globex hours. Trading day *D*
(Monday to Friday, no holidays) is one session from 18:00 of the calendar day
before *D* to 17:00 of *D*: 23 hours, e.g. 276 five-minute bars. Monday's
session opens Sunday 18:00, so the market is closed 17:00–18:00 each weekday
and from Friday 17:00 to Sunday 18:00. Bars are stamped with their **open**
time and lie on the ``bar_minutes`` grid counted from 18:00. The first trading
day is ``start`` (or the first weekday after it). A bar's trading day is the
calendar date of ``open_time + 6 h``.

Price model
-----------
The log price moves bar by bar: ``r_t = drift_t + sigma_t * eps_t`` with
``eps_t`` standard normal, plus the planted signal term below. The bar
volatility is ``sigma_t = sigma_base * regime_mult * intraday_shape(t)``,
where ``sigma_base = annual_vol / sqrt(252 * bars_per_session)`` and the
intraday shape (normalised to a mean square of 1 over the session) is low
overnight, has a bump at the 08:30 data releases and is U-shaped over the
09:30–16:00 cash session (highest just after 09:30, rising again into 16:00).

A hidden Markov chain of three regimes runs over the bars (trading time; it
carries on across session breaks). Each regime lasts a geometric number of
bars with mean :data:`REGIME_MEAN_SESSIONS` sessions, then jumps to another
regime with the probabilities in :data:`REGIME_NEXT` (the first regime is drawn
uniformly):

* 0 ``trend``: volatility x1.0 and a persistent drift of
  ``TREND_DRIFT * sigma_t`` per bar in a direction (up or down, even odds)
  drawn when the regime is entered;
* 1 ``range``: volatility x0.7 and mean reversion towards an anchor (the
  price at the start of the signal block in which the range regime began):
  over each signal block the expected deviation from the anchor shrinks as
  ``exp(-ln 2 * minutes_in_range / RANGE_HALF_LIFE_MINUTES)``, spread over
  the block's range bars in proportion to their length;
* 2 ``volatile``: volatility x2.25, no drift.

Each session after the first opens with a gap from the previous close: a
normal log-return with standard deviation ``GAP_SD_BREAK`` (weekday break) or
``GAP_SD_WEEKEND`` (Monday session) times the daily volatility
``annual_vol / sqrt(252)``. Inside a session the open of a bar is the close of
the bar before. Prices are rounded to ``tick_size`` (never below one tick);
high and low extend beyond open and close by exponential amounts proportional
to ``sigma_t``, rounded out to the tick. Volume (whole contracts, at least
1) is ``base_volume * bar_minutes / 5`` times an intraday shape proportional
to the volatility shape, a regime factor (:data:`REGIME_VOLUME_MULT`), a
factor ``0.6 + 0.5 * |r_t / sigma_t|`` rising with the bar's move, and
log-normal noise.

Planted signal
--------------
Each session is cut into blocks of ``signal_minutes`` counted from 18:00
(18:00–18:30, 18:30–19:00, … for 30; the last block of the session is
shorter when ``signal_minutes`` does not divide 1380). The block return is
the close of its last bar minus the open of its first bar, on the rounded
prices; inside a session this is the close-to-close return, and it never
includes the session's opening gap. For block *k* the direction ``d_k`` is
the sign of block *k-1*'s return, or 0 for the first block of a session or
when that return is exactly 0. Every bar of block *k* gets an extra drift of
``signal * sigma_t * d_k`` in its log return. ``d_k`` depends only on prices
known when block *k* opens, so a policy that sees the last block's return can
trade it exactly; :attr:`SyntheticMarket.signal_direction` gives ``d_k`` for
every bar.

Oracle
------
The oracle holds ``d_k`` contracts over block *k*: it enters at the open of
the block's first bar and exits at the close of its last bar. Its P&L per bar
in price points is ``d_k * (close - open)``; summed per trading day, the daily
Sharpe ratio annualised with ``sqrt(252)`` is ``oracle_sharpe_gross``. The net
version charges ``cost_points_per_side`` points per contract on every change
of position (the position is 0 before each session and after its last bar, so
holding the same direction through consecutive blocks costs nothing, and the
exit at the session close is charged to that day). The default cost, 0.30
points, is ES: one tick of slippage (0.25) plus $2.50 commission at $50 per
point. A Sharpe ratio is 0.0 when undefined (fewer than two days, or no
variation). With ``signal=0`` the oracle is still computed: about 0 gross,
negative net. The regimes alone move it a little (trends help a block-momentum
rule, the range regime's mean reversion hurts it): over 5 years at
``signal=0`` its gross Sharpe is about -0.4 +- 0.7 across seeds, so the
planted component is what the oracle's Sharpe measures once ``signal`` is
0.05 or more (``signal=0.1`` gives about 17 gross, 14 net on 5-minute bars).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields
from numbers import Integral, Real
from pathlib import Path

import numpy as np
import pandas as pd

from algospace.data.bars import COLUMNS, Bars
from algospace.errors import ConfigError

SESSION_MINUTES = 23 * 60
"""Length of one trading session (18:00 to 17:00 next day) in minutes."""
SESSION_OPEN = pd.Timedelta(hours=18)
"""Wall-clock time at which a session opens (on the calendar day before its trading day)."""
ALLOWED_BAR_MINUTES = (1, 5, 15, 30, 60)
"""Bar sizes the generator supports."""
TRADING_DAYS_PER_YEAR = 252
"""Annualisation factor for daily Sharpe ratios (applied as its square root)."""
ES_COST_POINTS_PER_SIDE = 0.30
"""Default cost per contract per side in points: 1 ES tick (0.25) plus $2.50 at $50/point."""

TREND, RANGE, VOLATILE = 0, 1, 2
"""Regime codes as stored in :attr:`SyntheticMarket.regimes`."""
REGIME_NAMES = ("trend", "range", "volatile")
"""Name of each regime code."""
REGIME_VOL_MULT = np.array([1.0, 0.7, 2.25])
"""Volatility multiplier per regime."""
REGIME_VOLUME_MULT = np.array([1.1, 0.8, 1.6])
"""Volume multiplier per regime."""
REGIME_MEAN_SESSIONS = np.array([1.5, 2.0, 0.75])
"""Mean regime duration in sessions (23 trading hours each)."""
REGIME_NEXT = np.array([[0.0, 0.6, 0.4], [0.65, 0.0, 0.35], [0.5, 0.5, 0.0]])
"""Row i: probabilities of the regime entered when regime i ends."""
TREND_DRIFT = 0.03
"""Trend-regime drift per bar in units of the bar's volatility."""
RANGE_HALF_LIFE_MINUTES = 360.0
"""Half-life of the deviation from the anchor in the range regime (trading minutes)."""
GAP_SD_BREAK = 0.03
"""Opening-gap standard deviation after the weekday break, in daily volatilities."""
GAP_SD_WEEKEND = 0.12
"""Opening-gap standard deviation after a weekend, in daily volatilities."""


@dataclass(frozen=True)
class SyntheticConfig:
    """Parameters of the synthetic market; validated on construction."""

    seed: int = 0
    """Seed of the only random generator used (``np.random.default_rng(seed)``)."""
    days: int = 60
    """Number of trading days (Monday to Friday sessions)."""
    bar_minutes: int = 5
    """Bar size in minutes: one of 1, 5, 15, 30, 60."""
    start: str = "2020-01-06"
    """First trading day (a date; a weekend date moves to the Monday after)."""
    start_price: float = 4000.0
    """Price of the first bar's open (rounded to the tick)."""
    tick_size: float = 0.25
    """Minimum price increment; all prices are multiples of it."""
    annual_vol: float = 0.18
    """Baseline annualised volatility (the trend regime's; range x0.7, volatile x2.25)."""
    signal: float = 0.0
    """Planted signal strength: extra drift ``signal * sigma_t * d_k`` per bar (>= 0)."""
    signal_minutes: int | None = None
    """Planted signal block length in minutes (multiple of ``bar_minutes``, at most 690);
    ``None``: 30, or the bar size for bars longer than 30 minutes."""
    base_volume: float = 1000.0
    """Typical volume of a 5-minute bar; other bar sizes scale with their length."""

    def __post_init__(self) -> None:
        _check_int("seed", self.seed, 0, 0)
        _check_int("days", self.days, 1, 60)
        _check_choice("bar_minutes", self.bar_minutes, ALLOWED_BAR_MINUTES)
        _check_start(self.start)
        _check_positive("start_price", self.start_price, "e.g. start_price=4000.0")
        _check_positive("tick_size", self.tick_size, "e.g. tick_size=0.25")
        _check_positive("annual_vol", self.annual_vol, "a fraction, e.g. annual_vol=0.18")
        _check_below("annual_vol", self.annual_vol, 5.0)
        _check_positive("base_volume", self.base_volume, "e.g. base_volume=1000.0")
        _check_non_negative("signal", self.signal, "use 0.0 for no planted signal")
        _check_signal_minutes(self.block_minutes, self.bar_minutes)
        if self.start_price < self.tick_size:
            raise ConfigError(
                f"start_price must be at least one tick ({self.tick_size}); got "
                f"{self.start_price}. Fix: raise start_price or lower tick_size."
            )

    @property
    def block_minutes(self) -> int:
        """The planted signal's block length in minutes (``signal_minutes`` resolved)."""
        if self.signal_minutes is None:
            return max(30, self.bar_minutes)
        return self.signal_minutes

    def describe(self) -> str:
        """Short text naming the market, used as the ``source`` of its bars."""
        head = ["seed", "days", "bar_minutes", "signal"]
        parts = [f"{name}={getattr(self, name)!r}" for name in head]
        default = SyntheticConfig()
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name not in head and value != getattr(default, f.name):
                parts.append(f"{f.name}={value!r}")
        return f"synthetic({', '.join(parts)})"


def _is_int(value: object) -> bool:
    """True for integers (numpy included), False for bools."""
    return isinstance(value, Integral) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    """True for finite real numbers (numpy included), False for bools."""
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


def _check_int(name: str, value: object, minimum: int, example: int) -> None:
    """Raise ConfigError unless ``value`` is an integer >= ``minimum``."""
    if not _is_int(value) or int(value) < minimum:  # type: ignore[call-overload]
        raise ConfigError(
            f"{name} must be an integer >= {minimum}; got {value!r}. "
            f"Fix: set {name} to a whole number such as {example}."
        )


def _check_choice(name: str, value: object, allowed: tuple[int, ...]) -> None:
    """Raise ConfigError unless ``value`` is one of ``allowed``."""
    if not _is_int(value) or value not in allowed:
        choices = ", ".join(map(str, allowed))
        raise ConfigError(
            f"{name} must be one of {choices}; got {value!r}. Fix: pick one of {choices}."
        )


def _check_positive(name: str, value: object, hint: str) -> None:
    """Raise ConfigError unless ``value`` is a finite number > 0."""
    if not _is_real(value) or value <= 0:  # type: ignore[operator]
        raise ConfigError(
            f"{name} must be a finite number > 0; got {value!r}. Fix: set {name} > 0, {hint}."
        )


def _check_non_negative(name: str, value: object, hint: str) -> None:
    """Raise ConfigError unless ``value`` is a finite number >= 0."""
    if not _is_real(value) or value < 0:  # type: ignore[operator]
        raise ConfigError(
            f"{name} must be a finite number >= 0; got {value!r}. Fix: set {name} >= 0 ({hint})."
        )


def _check_below(name: str, value: float, limit: float) -> None:
    """Raise ConfigError if ``value`` exceeds a sanity ``limit``."""
    if value > limit:
        raise ConfigError(
            f"{name} must be at most {limit} (a fraction per year, 0.18 = 18%); got {value!r}. "
            f"Fix: give {name} as a fraction, e.g. 0.18, not a percentage."
        )


def _check_start(start: object) -> None:
    """Raise ConfigError unless ``start`` is a date string without a time of day."""
    stamp = None
    if isinstance(start, str):
        try:
            stamp = pd.Timestamp(start)
        except (TypeError, ValueError):
            stamp = None
    if stamp is None or pd.isna(stamp) or stamp != stamp.normalize():
        raise ConfigError(
            f"start must be a date string like '2020-01-06' with no time of day; got {start!r}. "
            "Fix: give the first trading day as YYYY-MM-DD."
        )


def _check_signal_minutes(signal_minutes: object, bar_minutes: int) -> None:
    """Raise ConfigError unless the signal block is a whole number of bars, two per session."""
    limit = SESSION_MINUTES // 2
    if (
        not _is_int(signal_minutes)
        or signal_minutes < bar_minutes  # type: ignore[operator]
        or signal_minutes % bar_minutes  # type: ignore[operator]
        or signal_minutes > limit  # type: ignore[operator]
    ):
        raise ConfigError(
            f"signal_minutes must be a multiple of bar_minutes ({bar_minutes}) between "
            f"{bar_minutes} and {limit}; got {signal_minutes!r}. Fix: set signal_minutes to "
            f"e.g. {max(30, bar_minutes)}."
        )


@dataclass(frozen=True, eq=False)
class SyntheticMarket:
    """A generated market: bars, hidden regimes, planted signal and its oracle's Sharpe."""

    bars: Bars
    """The OHLCV bars (index ``open_time``)."""
    regimes: np.ndarray
    """Regime per bar (int8): 0 trend, 1 range, 2 volatile."""
    signal_direction: np.ndarray
    """Planted-signal direction ``d_k`` of each bar's block (int8: -1, 0, +1)."""
    config: SyntheticConfig
    """The config that generated this market."""
    oracle_sharpe_gross: float
    """Annualised daily Sharpe of the oracle before costs."""
    oracle_sharpe_net: float
    """Annualised daily Sharpe of the oracle after ``cost_points_per_side``."""
    cost_points_per_side: float = ES_COST_POINTS_PER_SIDE
    """Cost per contract per side (points) used for ``oracle_sharpe_net``."""

    def oracle_positions(self) -> np.ndarray:
        """The oracle's position in contracts during each bar (a copy of ``signal_direction``)."""
        return self.signal_direction.copy()

    def oracle_daily_pnl(self, cost_points_per_side: float = 0.0) -> pd.Series:
        """The oracle's P&L in points per trading day, net of the given cost per side."""
        frame = self.bars.frame
        pnl = _oracle_bar_pnl(
            self.signal_direction,
            frame["open"].to_numpy(),
            frame["close"].to_numpy(),
            _session_starts(self.bars.open_time),
            cost_points_per_side,
        )
        days = trading_day(self.bars.open_time)
        return pd.Series(pnl, index=days).groupby(level=0).sum().rename("oracle_pnl")


def trading_day(open_time: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """Trading day of each bar: the date of ``open_time + 6 h`` (sessions open at 18:00)."""
    return (open_time + pd.Timedelta(hours=6)).normalize()


def _session_starts(open_time: pd.DatetimeIndex) -> np.ndarray:
    """Boolean per bar: True where a new trading day begins."""
    days = trading_day(open_time).to_numpy()
    first = np.ones(len(days), dtype=bool)
    first[1:] = days[1:] != days[:-1]
    return first


def _oracle_bar_pnl(
    position: np.ndarray,
    open_: np.ndarray,
    close: np.ndarray,
    session_start: np.ndarray,
    cost: float,
) -> np.ndarray:
    """Per-bar P&L in points of holding ``position``, flat between sessions, net of cost."""
    pos = position.astype(np.float64)
    before = np.concatenate([[0.0], pos[:-1]])
    before[session_start] = 0.0
    session_end = np.concatenate([session_start[1:], [True]])
    trades = np.abs(pos - before) + np.where(session_end, np.abs(pos), 0.0)
    return pos * (close - open_) - cost * trades


def _annualised_sharpe(daily: np.ndarray) -> float:
    """Mean over standard deviation of daily P&L times sqrt(252); 0.0 when undefined."""
    if len(daily) < 2:
        return 0.0
    std = float(np.std(daily, ddof=1))
    if not std > 0.0:
        return 0.0
    return float(np.mean(daily) / std * math.sqrt(TRADING_DAYS_PER_YEAR))


@dataclass(frozen=True)
class _Grid:
    """Bar timestamps and the session/block structure they fall into."""

    open_time: np.ndarray
    slot: np.ndarray
    session: np.ndarray
    block: np.ndarray
    block_start: np.ndarray
    block_first: np.ndarray
    block_session: np.ndarray
    monday: np.ndarray
    bars_per_session: int


def _first_trading_day(start: str) -> pd.Timestamp:
    """``start`` or, on a weekend, the Monday after it."""
    day = pd.Timestamp(start).normalize()
    while day.day_of_week >= 5:
        day += pd.Timedelta(days=1)
    return day


def _build_grid(config: SyntheticConfig) -> _Grid:
    """Lay out sessions, bars and signal blocks for ``config``."""
    days = pd.bdate_range(_first_trading_day(config.start), periods=config.days)
    per_session = SESSION_MINUTES // config.bar_minutes
    per_block = config.block_minutes // config.bar_minutes
    blocks_per_session = -(-per_session // per_block)
    opens = (days - pd.Timedelta(days=1) + SESSION_OPEN).to_numpy().astype("datetime64[ns]")
    offsets = np.arange(per_session) * np.timedelta64(config.bar_minutes, "m")
    session = np.repeat(np.arange(config.days), per_session)
    slot = np.tile(np.arange(per_session), config.days)
    block = session * blocks_per_session + slot // per_block
    block_start = np.flatnonzero(np.r_[True, block[1:] != block[:-1]])
    block_session = session[block_start]
    return _Grid(
        open_time=(opens[:, None] + offsets[None, :]).ravel(),
        slot=slot,
        session=session,
        block=block,
        block_start=block_start,
        block_first=slot[block_start] == 0,
        block_session=block_session,
        monday=np.asarray(days.day_of_week == 0),
        bars_per_session=per_session,
    )


def _intraday_shape(hours: np.ndarray) -> np.ndarray:
    """Relative volatility by wall-clock hour: quiet overnight, U-shaped cash session."""
    shape = np.full(hours.shape, 0.45)
    shape += 0.15 * np.exp(-(((hours - 3.0) / 1.0) ** 2))
    shape += 0.5 * np.exp(-(((hours - 8.5) / 0.25) ** 2))
    cash = (hours >= 9.5) & (hours < 16.0)
    rth = hours.clip(9.5, 16.0)
    u_shape = 0.55 + 1.1 * np.exp(-(rth - 9.5) / 0.5) + 0.5 * np.exp(-(16.0 - rth) / 0.4)
    shape += np.where(cash, u_shape, 0.0)
    shape += np.where((hours >= 16.0) & (hours < 17.0), 0.1, 0.0)
    return shape


def _session_shape(config: SyntheticConfig, per_session: int) -> np.ndarray:
    """Intraday volatility shape per bar slot, normalised to a mean square of 1."""
    minutes = (np.arange(per_session) + 0.5) * config.bar_minutes
    hours = (18.0 + minutes / 60.0) % 24.0
    shape = _intraday_shape(hours)
    return shape / np.sqrt(np.mean(shape**2))


def _regime_path(
    rng: np.random.Generator, n_bars: int, bar_minutes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Markov regime per bar and the trend direction (+1/-1, 0 outside trends)."""
    regimes = np.empty(n_bars, dtype=np.int8)
    direction = np.zeros(n_bars, dtype=np.int8)
    state = int(rng.integers(3))
    t = 0
    while t < n_bars:
        mean_bars = REGIME_MEAN_SESSIONS[state] * SESSION_MINUTES / bar_minutes
        end = min(n_bars, t + int(rng.geometric(1.0 / mean_bars)))
        regimes[t:end] = state
        if state == TREND:
            direction[t:end] = 1 if rng.random() < 0.5 else -1
        t = end
        state = int(rng.choice(3, p=REGIME_NEXT[state]))
    return regimes, direction


def _to_ticks(log_price: np.ndarray, tick: float) -> np.ndarray:
    """Price in whole ticks (float), at least one tick."""
    return np.maximum(np.rint(np.exp(log_price) / tick), 1.0)


def _scalar_ticks(log_price: float, tick: float) -> float:
    """Scalar :func:`_to_ticks`."""
    return float(max(round(math.exp(log_price) / tick), 1))


@dataclass(frozen=True)
class _BlockPath:
    """Block-level outcome of the sequential simulation."""

    direction: np.ndarray
    x_open: np.ndarray
    deviation: np.ndarray
    ticks_open: np.ndarray
    ticks_close: np.ndarray


def _simulate_blocks(
    sums: np.ndarray,
    reset: list[bool],
    first: list[bool],
    gap: list[float],
    x0: float,
    tick: float,
) -> _BlockPath:
    """Walk the blocks in order: d_k from the last block's rounded return, then the block's move.

    ``sums`` rows are, per block, the summed free move ``A``, signal loading ``G`` and
    mean-reversion loading ``H``; the block's log return is ``A + d*G + (x_open - anchor)*H``.
    """
    a_sum, g_sum, h_sum = (row.tolist() for row in sums)
    n = len(a_sum)
    out = np.zeros((5, n))
    x_close = anchor = x0
    n_open = n_close = 0.0
    for k in range(n):
        x_open = x_close + gap[k]
        d = 0 if first[k] else (n_close > n_open) - (n_close < n_open)
        if reset[k]:
            anchor = x_open
        x_close = x_open + a_sum[k] + d * g_sum[k] + (x_open - anchor) * h_sum[k]
        n_open, n_close = _scalar_ticks(x_open, tick), _scalar_ticks(x_close, tick)
        out[:, k] = (d, x_open, x_open - anchor, n_open, n_close)
    return _BlockPath(out[0].astype(np.int8), out[1], out[2], out[3], out[4])


def _range_loading(grid: _Grid, regimes: np.ndarray, bar_minutes: int) -> np.ndarray:
    """Per-bar mean-reversion coefficient (<= 0) applied to the block's anchor deviation."""
    weight = np.where(regimes == RANGE, float(bar_minutes), 0.0)
    minutes = np.add.reduceat(weight, grid.block_start)
    fraction = 1.0 - np.exp(-math.log(2.0) * minutes / RANGE_HALF_LIFE_MINUTES)
    per_minute = np.divide(fraction, minutes, out=np.zeros_like(minutes), where=minutes > 0)
    return -weight * per_minute[grid.block]


def _range_resets(grid: _Grid, regimes: np.ndarray) -> np.ndarray:
    """Per block: True when a range regime begins inside it (the anchor resets)."""
    in_range = regimes == RANGE
    entry = in_range & ~np.r_[False, in_range[:-1]]
    return np.add.reduceat(entry.astype(np.int64), grid.block_start) > 0


def _opening_gaps(rng: np.random.Generator, config: SyntheticConfig, grid: _Grid) -> np.ndarray:
    """Log gap at each block's open: nonzero only at session opens after the first."""
    daily_sigma = config.annual_vol / math.sqrt(TRADING_DAYS_PER_YEAR)
    sd = np.where(grid.monday, GAP_SD_WEEKEND, GAP_SD_BREAK) * daily_sigma
    session_gap = rng.standard_normal(config.days) * sd
    session_gap[0] = 0.0
    return np.where(grid.block_first, session_gap[grid.block_session], 0.0)


def _bar_path(
    grid: _Grid, path: _BlockPath, moves: np.ndarray, tick: float
) -> tuple[np.ndarray, np.ndarray]:
    """Open and close in ticks per bar; block boundaries come exactly from ``path``."""
    csum = np.cumsum(moves)
    before = csum[grid.block_start] - moves[grid.block_start]
    x = path.x_open[grid.block] + (csum - before[grid.block])
    close = _to_ticks(x, tick)
    block_end = np.r_[grid.block_start[1:] - 1, len(x) - 1]
    close[block_end] = path.ticks_close
    open_ = np.r_[close[0], close[:-1]]
    open_[grid.block_start] = path.ticks_open
    return open_, close


def _wicks(
    rng: np.random.Generator, open_: np.ndarray, close: np.ndarray, sigma: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """High and low in ticks: beyond open/close by exponential multiples of the bar's sigma."""
    extra = rng.exponential(0.35, size=(2, len(open_))) * sigma
    top, bottom = np.maximum(open_, close), np.minimum(open_, close)
    high = np.maximum(np.ceil(top * np.exp(extra[0]) - 1e-9), top)
    low = np.minimum(np.floor(bottom * np.exp(-extra[1]) + 1e-9), bottom)
    return high, np.maximum(low, 1.0)


def _volume(
    rng: np.random.Generator,
    config: SyntheticConfig,
    grid: _Grid,
    regimes: np.ndarray,
    move_z: np.ndarray,
) -> np.ndarray:
    """Whole-contract volume: intraday shape x regime x move size x log-normal noise."""
    shape = _session_shape(config, grid.bars_per_session)
    shape = shape / shape.mean()
    noise = np.exp(0.25 * rng.standard_normal(len(regimes)) - 0.5 * 0.25**2)
    level = config.base_volume * config.bar_minutes / 5.0
    raw = level * shape[grid.slot] * REGIME_VOLUME_MULT[regimes] * (0.6 + 0.5 * np.abs(move_z))
    return np.maximum(np.rint(raw * noise), 1.0)


def generate(
    config: SyntheticConfig, *, cost_points_per_side: float = ES_COST_POINTS_PER_SIDE
) -> SyntheticMarket:
    """Generate the synthetic market described by ``config`` (see the module docstring)."""
    _check_non_negative(
        "cost_points_per_side", cost_points_per_side, "e.g. 0.30 for ES: 1 tick + $2.50"
    )
    rng = np.random.default_rng(config.seed)
    grid = _build_grid(config)
    n_bars = len(grid.slot)
    regimes, trend_dir = _regime_path(rng, n_bars, config.bar_minutes)
    base = config.annual_vol / math.sqrt(TRADING_DAYS_PER_YEAR * grid.bars_per_session)
    shape = _session_shape(config, grid.bars_per_session)
    sigma = base * REGIME_VOL_MULT[regimes] * shape[grid.slot]
    free = sigma * (rng.standard_normal(n_bars) + TREND_DRIFT * trend_dir)
    loading = config.signal * sigma
    mean_rev = _range_loading(grid, regimes, config.bar_minutes)
    sums = np.stack([np.add.reduceat(v, grid.block_start) for v in (free, loading, mean_rev)])
    x0 = math.log(max(round(config.start_price / config.tick_size), 1) * config.tick_size)
    path = _simulate_blocks(
        sums,
        _range_resets(grid, regimes).tolist(),
        grid.block_first.tolist(),
        _opening_gaps(rng, config, grid).tolist(),
        x0,
        config.tick_size,
    )
    d_bar = path.direction[grid.block]
    moves = free + d_bar * loading + path.deviation[grid.block] * mean_rev
    open_, close = _bar_path(grid, path, moves, config.tick_size)
    high, low = _wicks(rng, open_, close, sigma)
    volume = _volume(rng, config, grid, regimes, moves / sigma)
    ticks = (open_, high, low, close)
    return _assemble(config, grid, ticks, volume, regimes, d_bar, cost_points_per_side)


def _assemble(
    config: SyntheticConfig,
    grid: _Grid,
    ticks: tuple[np.ndarray, ...],
    volume: np.ndarray,
    regimes: np.ndarray,
    direction: np.ndarray,
    cost: float,
) -> SyntheticMarket:
    """Build the bar table and compute the oracle's Sharpe ratios."""
    prices = [t * config.tick_size for t in ticks]
    data = dict(zip(COLUMNS, [*prices, volume], strict=True))
    index = pd.DatetimeIndex(grid.open_time, name="open_time")
    frame = pd.DataFrame(data, index=index, columns=list(COLUMNS), dtype=np.float64)
    session_start = grid.slot == 0
    sharpe = []
    for charge in (0.0, cost):
        pnl = _oracle_bar_pnl(direction, prices[0], prices[3], session_start, charge)
        sharpe.append(_annualised_sharpe(np.bincount(grid.session, weights=pnl)))
    for array in (regimes, direction):
        array.setflags(write=False)
    return SyntheticMarket(
        bars=Bars(frame, config.bar_minutes, config.describe()),
        regimes=regimes,
        signal_direction=direction,
        config=config,
        oracle_sharpe_gross=sharpe[0],
        oracle_sharpe_net=sharpe[1],
        cost_points_per_side=float(cost),
    )


def _decimals_for(values: np.ndarray, minimum: int = 2, maximum: int = 10) -> int:
    """Fewest decimals (at least ``minimum``) that write every value exactly."""
    for decimals in range(minimum, maximum + 1):
        if np.all(np.abs(np.round(values, decimals) - values) <= 1e-9 * np.maximum(1, values)):
            return decimals
    return maximum


def to_csv(data: SyntheticMarket | Bars, path: str | os.PathLike[str]) -> Path:
    """Write ``Timestamp,Open,High,Low,Close,Volume`` (bar open times) atomically; return path."""
    bars = data.bars if isinstance(data, SyntheticMarket) else data
    frame = bars.frame
    if isinstance(data, SyntheticMarket):
        decimals = _decimals_for(np.array([data.config.tick_size]))
    else:
        decimals = _decimals_for(frame[["open", "high", "low", "close"]].to_numpy().ravel())
    stamps = np.datetime_as_string(frame.index.to_numpy().astype("datetime64[s]"), unit="s")
    table = pd.DataFrame({"Timestamp": np.char.replace(stamps, "T", " ")})
    for column in ("open", "high", "low", "close"):
        table[column.capitalize()] = frame[column].to_numpy()
    table["Volume"] = np.rint(frame["volume"].to_numpy()).astype(np.int64)
    text = table.to_csv(index=False, float_format=f"%.{decimals}f", lineterminator="\n")
    return _write_atomic(Path(path), text)


def _write_atomic(path: Path, text: str) -> Path:
    """Write ``text`` to a sibling temporary file, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="ascii", newline="\n") as handle:
            handle.write(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
