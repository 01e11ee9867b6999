"""The built-in synthetic futures market: the default data when you have no CSV.

:func:`generate` turns a :class:`SyntheticConfig` into a :class:`SyntheticMarket`:
OHLCV :class:`~algospace.data.bars.Bars` of an ES-like equity-index future, the
hidden regime of every bar and the expected drift of its two planted components.
The same config (seed included) always gives the same bars, and :func:`to_csv`
writes them byte-identically. Config and constants: :mod:`.synthetic_config`;
oracles: :mod:`.oracle`.

Sessions
--------
Exchange wall-clock time, tz-naive, CME Globex hours. Trading day *D*
(Monday to Friday, no holidays) is one session from 18:00 of the calendar day
before *D* to 17:00 of *D*: 23 hours, 276 five-minute bars. The market is
closed 17:00-18:00 each weekday and from Friday 17:00 to Sunday 18:00. Bars are
stamped with their **open** time on the ``bar_minutes`` grid counted from
18:00; a bar's trading day is the date of ``open_time + 6 h``. Each session
after the first opens with a gap: a normal log-return with standard deviation
``GAP_SD_BREAK`` (weekday) or ``GAP_SD_WEEKEND`` (Monday) daily volatilities.

Price model
-----------
Bar ``t``'s log return is ``r_t = mu_t - sigma_t^2 / 2 + sigma_t * eps_t``
(``eps`` standard normal; the ``-sigma^2/2`` makes ``E[close/open] = exp(mu_t)``),
with ``sigma_t = annual_vol / sqrt(252 * bars_per_session) * regime_mult *
intraday_shape``: quiet overnight, a bump at 08:30, U-shaped over 09:30-16:00.
Prices are rounded to the tick (at least one); open = previous close inside a
session; high/low extend beyond open/close by exponential multiples of
``sigma_t``. Volume = ``base_volume * bar_minutes / 5`` x intraday shape x regime
factor x ``(0.6 + 0.5 |z_t|)`` x ``exp(0.25 u_t - 0.25^2 / 2)``, whole contracts,
where ``z_t = ln(close_t / open_t) / sigma_t`` (rounded prices) and ``u_t`` is the
standard-normal **volume surprise**, drawn independently of everything else.

Hidden regimes: a Markov chain over bars (mean durations 1.5 / 2 / 0.75
sessions, next-regime probabilities :data:`REGIME_NEXT`). ``trend``: volatility
x1.0, volume x1.1, strategic component on. ``range``: x0.7, x0.8, both on.
``volatile``: x2.25, x1.6, tactical on. There is no other drift: the planted
components are the only predictable part of the returns. ``regimes=False``:
every bar is regime 0 with volatility x1, no component (whatever the
strengths): independent returns, nothing to detect.

Planted components
------------------
``mu_t = signal * sigma_t * (a_s * S_t * g_k + a_t * T_t * h_t)``, ``S_t``/``T_t``
= 1 where the bar's regime plants the component, else 0.

* **Strategic** (30 minutes): sessions are cut into blocks of ``signal_minutes``
  from 18:00. ``Z_k`` = block ``k``'s log return (last close over first open,
  no gap) over its model sigma ``sqrt(sum sigma_t^2)``; ``g_k = clip((Z_{k-1} +
  Z_{k-2} + Z_{k-3}) / sqrt(3), -1, 1)`` over the blocks of the same session
  before ``k`` (missing ones count 0), constant over block ``k``. Readable
  from a window of 30-minute returns, but each lag carries a third of it.
* **Tactical** (5 minutes): ``h_t = clip(sum_{j=1..3} z_{t-j} u_{t-j} / sqrt(3),
  -1, 1)`` over the bars of **the same block** before ``t`` (0 on a block's first
  bar): volume-confirmed moves continue, quiet ones fade; a product, so a
  reader needs 5-minute returns and volume together. Why only inside the
  block: ``u_r`` is independent of ``z_r`` and of all before, so ``E[z_r u_r |
  anything known before bar r] = 0``; with the window inside block ``k``, the
  block's summed tactical drift has expectation exactly 0 given anything known
  when it opens (30-minute returns and volumes included). A window reaching
  into block ``k-1`` would leak: its last bars' ``z u`` correlate with that
  block's return x volume, which the 30-minute bar shows.

Every drift uses bars before ``t`` only; :attr:`SyntheticMarket.drift_strategic`
and ``drift_tactical`` give it in points (log drift x the bar's open).
With ``bar_minutes`` equal to the block length the tactical component vanishes.

Calibration (the market's card)
-------------------------------
Defaults ``a_s = 0.045``, ``a_t = 0.14`` (``signal=1``): per-bar R^2 0.09 %
(strategic) and 0.37 % (tactical); regimes hold ~39 % / 47 % / 15 % of bars.
Causal oracles (:mod:`.oracle`) on the default market (250 days), MES, $100k,
limit by the 2x leverage cap (6-9 contracts), $1.87 per contract per side,
expected figures, mean +- sd (min-max) over seeds 0-7:

* joint: net daily dollar Sharpe 5.36 +- 0.56 (4.43-6.20), net P&L $157k +- 29k;
* strategic: 3.65 +- 0.34, $79k +- 13k; tactical: 3.52 +- 0.48, $75k +- 17k;
* joint / better single expected net P&L: 1.94 +- 0.06 (1.83-2.03);
* realised joint Sharpe 5.29 +- 1.13 (one year of noise); the foresight bound
  on net P&L (no causal strategy expects more): $275k +- 34k (joint).

``signal=0`` gives every oracle zero drift: it holds nothing, zero P&L. The
default market generates in ~0.5 s (1,000 days ~2 s; a Python loop over bars).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from algospace.data.bars import COLUMNS, Bars
from algospace.data.calendar import TRADING_DAYS_PER_YEAR, trading_day
from algospace.data.synthetic_config import (
    ALLOWED_BAR_MINUTES,
    GAP_SD_BREAK,
    GAP_SD_WEEKEND,
    MAX_STRENGTH,
    RANGE,
    REGIME_MEAN_SESSIONS,
    REGIME_NAMES,
    REGIME_NEXT,
    REGIME_VOL_MULT,
    REGIME_VOLUME_MULT,
    SESSION_MINUTES,
    SESSION_OPEN,
    STRATEGIC_LAGS,
    STRATEGIC_ON,
    STRATEGIC_STRENGTH,
    TACTICAL_LAGS,
    TACTICAL_ON,
    TACTICAL_STRENGTH,
    TREND,
    VOLATILE,
    VOLUME_NOISE_SD,
    SyntheticConfig,
)
from algospace.files import write_text

__all__ = [
    "ALLOWED_BAR_MINUTES", "GAP_SD_BREAK", "GAP_SD_WEEKEND", "MAX_STRENGTH", "RANGE",
    "REGIME_MEAN_SESSIONS", "REGIME_NAMES", "REGIME_NEXT", "REGIME_VOLUME_MULT",
    "REGIME_VOL_MULT", "SESSION_MINUTES", "SESSION_OPEN", "STRATEGIC_LAGS", "STRATEGIC_ON",
    "STRATEGIC_STRENGTH", "TACTICAL_LAGS", "TACTICAL_ON", "TACTICAL_STRENGTH",
    "TRADING_DAYS_PER_YEAR", "TREND", "VOLATILE", "VOLUME_NOISE_SD", "SyntheticConfig",
    "SyntheticMarket", "generate", "to_csv", "trading_day",
]

TRUTH_COLUMNS = ("regime", "drift_strategic", "drift_tactical", "sigma_points")
"""Columns of :meth:`SyntheticMarket.truth` (the store's ``synthetic_truth`` table)."""


@dataclass(frozen=True, eq=False)
class SyntheticMarket:
    """A generated market: bars, hidden regimes and the planted components of every bar."""

    bars: Bars
    """The OHLCV bars (index ``open_time``)."""
    regimes: np.ndarray
    """Regime per bar (int8): 0 trend, 1 range, 2 volatile."""
    config: SyntheticConfig
    """The config that generated this market."""
    sigma: np.ndarray
    """Model volatility of each bar's log return."""
    strategic_score: np.ndarray
    """Strategic score g_k of each bar's block, in [-1, 1] (before regime gating)."""
    tactical_score: np.ndarray
    """Tactical score h_t of each bar, in [-1, 1] (before regime gating)."""
    volume_surprise: np.ndarray
    """Standard-normal volume surprise u_t of each bar (the volume model's noise)."""
    drift_strategic: np.ndarray
    """Expected strategic drift of each bar in price points (log drift x the bar's open)."""
    drift_tactical: np.ndarray
    """Expected tactical drift of each bar in price points (log drift x the bar's open)."""

    @property
    def sigma_points(self) -> np.ndarray:
        """Model volatility of each bar in price points (sigma x the bar's open)."""
        return self.sigma * self.bars.column("open")

    @property
    def day(self) -> np.ndarray:
        """Trading-day number of each bar (0 for the first session)."""
        per_session = SESSION_MINUTES // self.config.bar_minutes
        return np.arange(len(self.regimes)) // per_session

    def truth(self) -> pd.DataFrame:
        """Regime, expected drifts and sigma (points) per bar: the ``synthetic_truth`` table."""
        values = (self.regimes, self.drift_strategic, self.drift_tactical, self.sigma_points)
        return pd.DataFrame(dict(zip(TRUTH_COLUMNS, values, strict=True)),
                            index=self.bars.frame.index)


@dataclass(frozen=True)
class _Grid:
    """Bar timestamps and the session/block structure they fall into."""

    open_time: np.ndarray
    slot: np.ndarray
    block: np.ndarray
    block_start: np.ndarray
    monday: np.ndarray
    bars_per_session: int


def _first_trading_day(start: str) -> pd.Timestamp:
    """``start`` or, on a weekend, the Monday after it."""
    day = pd.Timestamp(start).normalize()
    while day.day_of_week >= 5:
        day += pd.Timedelta(days=1)
    return day


def _build_grid(config: SyntheticConfig) -> _Grid:
    """Lay out sessions, bars and strategic blocks for ``config``."""
    days = pd.bdate_range(_first_trading_day(config.start), periods=config.days)
    per_session = SESSION_MINUTES // config.bar_minutes
    per_block = config.block_minutes // config.bar_minutes
    blocks_per_session = -(-per_session // per_block)
    opens = (days - pd.Timedelta(days=1) + SESSION_OPEN).to_numpy().astype("datetime64[ns]")
    offsets = np.arange(per_session) * np.timedelta64(config.bar_minutes, "m")
    session = np.repeat(np.arange(config.days), per_session)
    slot = np.tile(np.arange(per_session), config.days)
    block = session * blocks_per_session + slot // per_block
    return _Grid(
        open_time=(opens[:, None] + offsets[None, :]).ravel(),
        slot=slot,
        block=block,
        block_start=np.flatnonzero(np.r_[True, block[1:] != block[:-1]]),
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


def _regime_path(rng: np.random.Generator, n_bars: int, bar_minutes: int) -> np.ndarray:
    """Markov regime per bar (int8)."""
    regimes = np.empty(n_bars, dtype=np.int8)
    state = int(rng.integers(3))
    t = 0
    while t < n_bars:
        mean_bars = REGIME_MEAN_SESSIONS[state] * SESSION_MINUTES / bar_minutes
        end = min(n_bars, t + int(rng.geometric(1.0 / mean_bars)))
        regimes[t:end] = state
        t = end
        state = int(rng.choice(3, p=REGIME_NEXT[state]))
    return regimes


@dataclass(frozen=True)
class _Path:
    """Outcome of the sequential simulation, per bar."""

    open_ticks: np.ndarray
    close_ticks: np.ndarray
    z: np.ndarray
    g: np.ndarray
    h: np.ndarray


def _score(values: list[float], lags: int) -> float:
    """``clip(sum(values) / sqrt(lags), -1, 1)``."""
    return min(1.0, max(-1.0, math.fsum(values) / math.sqrt(lags)))


def _simulate(grid: _Grid, sigma: np.ndarray, shocks: np.ndarray, loadings: np.ndarray,
              x0: float, tick: float) -> _Path:
    """Walk the bars in order; each bar's drift uses only earlier bars (see the docstring).

    ``shocks`` rows: price noise eps, volume surprise u, session gap (at session opens);
    ``loadings`` rows: per-bar strategic and tactical loading (signal x strength x gate).
    """
    n = len(sigma)
    block_start = np.zeros(n, dtype=bool)
    block_start[grid.block_start] = True
    block_end = np.r_[block_start[1:], True]
    block_var = np.add.reduceat(sigma**2, grid.block_start)
    block_sd = np.sqrt(block_var)[grid.block]
    cols = [a.tolist() for a in (sigma, *shocks, *loadings, block_sd)]
    new_session = (grid.slot == 0).tolist()
    starts, ends = block_start.tolist(), block_end.tolist()
    out = np.zeros((5, n))
    x, prev, block_open, g = x0, _ticks(x0, tick), 0.0, 0.0
    strategic: list[float] = []
    tactical: list[float] = []
    for t, (s, eps, u, gap, a_s, a_t, sd) in enumerate(zip(*cols, strict=True)):
        if new_session[t]:
            x += gap
            prev, strategic = _ticks(x, tick), []
        if starts[t]:
            g, block_open, tactical = _score(strategic[-STRATEGIC_LAGS:], STRATEGIC_LAGS), prev, []
        h = _score(tactical[-TACTICAL_LAGS:], TACTICAL_LAGS)
        x += s * (a_s * g + a_t * h - 0.5 * s + eps)
        close = _ticks(x, tick)
        z = math.log(close / prev) / s
        tactical.append(z * u)
        if ends[t]:
            strategic.append(math.log(close / block_open) / sd)
        out[:, t] = (prev, close, z, g, h)
        prev = close
    return _Path(*out)


def _ticks(log_price: float, tick: float) -> float:
    """Price in whole ticks (float), at least one tick."""
    return float(max(round(math.exp(log_price) / tick), 1))


def _opening_gaps(rng: np.random.Generator, config: SyntheticConfig, grid: _Grid) -> np.ndarray:
    """Log gap at each bar: nonzero only at session opens after the first."""
    daily_sigma = config.annual_vol / math.sqrt(TRADING_DAYS_PER_YEAR)
    sd = np.where(grid.monday, GAP_SD_WEEKEND, GAP_SD_BREAK) * daily_sigma
    session_gap = rng.standard_normal(config.days) * sd
    session_gap[0] = 0.0
    return np.where(grid.slot == 0, np.repeat(session_gap, grid.bars_per_session), 0.0)


def _wicks(
    rng: np.random.Generator, open_: np.ndarray, close: np.ndarray, sigma: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """High and low in ticks: beyond open/close by exponential multiples of the bar's sigma."""
    extra = rng.exponential(0.35, size=(2, len(open_))) * sigma
    top, bottom = np.maximum(open_, close), np.minimum(open_, close)
    high = np.maximum(np.ceil(top * np.exp(extra[0]) - 1e-9), top)
    low = np.minimum(np.floor(bottom * np.exp(-extra[1]) + 1e-9), bottom)
    return high, np.maximum(low, 1.0)


def _volume(config: SyntheticConfig, grid: _Grid, regimes: np.ndarray, z: np.ndarray,
            surprise: np.ndarray) -> np.ndarray:
    """Whole-contract volume: intraday shape x regime x move size x log-normal surprise."""
    shape = _session_shape(config, grid.bars_per_session)
    shape = shape / shape.mean()
    noise = np.exp(VOLUME_NOISE_SD * surprise - 0.5 * VOLUME_NOISE_SD**2)
    level = config.base_volume * config.bar_minutes / 5.0
    raw = level * shape[grid.slot] * REGIME_VOLUME_MULT[regimes] * (0.6 + 0.5 * np.abs(z))
    return np.maximum(np.rint(raw * noise), 1.0)


def _loadings(config: SyntheticConfig, regimes: np.ndarray) -> np.ndarray:
    """Per-bar strategic and tactical loading: signal x strength where the regime plants it."""
    return np.stack([config.strategic_loading * STRATEGIC_ON[regimes],
                     config.tactical_loading * TACTICAL_ON[regimes]]).astype(np.float64)


def generate(config: SyntheticConfig) -> SyntheticMarket:
    """Generate the synthetic market described by ``config`` (see the module docstring)."""
    rng = np.random.default_rng(config.seed)
    grid = _build_grid(config)
    n_bars = len(grid.slot)
    if config.regimes:
        regimes = _regime_path(rng, n_bars, config.bar_minutes)
    else:
        regimes = np.zeros(n_bars, dtype=np.int8)
    base = config.annual_vol / math.sqrt(TRADING_DAYS_PER_YEAR * grid.bars_per_session)
    shape = _session_shape(config, grid.bars_per_session)
    sigma = base * REGIME_VOL_MULT[regimes] * shape[grid.slot]
    noise = rng.standard_normal((2, n_bars))
    shocks = np.vstack([noise, _opening_gaps(rng, config, grid)[None, :]])
    loadings = _loadings(config, regimes)
    x0 = math.log(max(round(config.start_price / config.tick_size), 1) * config.tick_size)
    path = _simulate(grid, sigma, shocks, loadings, x0, config.tick_size)
    high, low = _wicks(rng, path.open_ticks, path.close_ticks, sigma)
    volume = _volume(config, grid, regimes, path.z, noise[1])
    frame = _frame(config, grid, (path.open_ticks, high, low, path.close_ticks), volume)
    drifts = loadings * sigma * np.stack([path.g, path.h]) * frame["open"].to_numpy()
    arrays = (regimes, sigma, path.g, path.h, noise[1].copy(), drifts[0], drifts[1])
    for array in arrays:
        array.setflags(write=False)
    return SyntheticMarket(Bars(frame, config.bar_minutes, config.describe()), arrays[0],
                           config, *arrays[1:])


def _frame(config: SyntheticConfig, grid: _Grid, ticks: tuple[np.ndarray, ...],
           volume: np.ndarray) -> pd.DataFrame:
    """The OHLCV table: prices from ticks, indexed by bar open time."""
    prices = [t * config.tick_size for t in ticks]
    return pd.DataFrame(dict(zip(COLUMNS, [*prices, volume], strict=True)),
                        index=pd.DatetimeIndex(grid.open_time, name="open_time"),
                        columns=list(COLUMNS), dtype=np.float64)


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
    return write_text(path, text)
