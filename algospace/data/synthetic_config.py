"""Constants and the validated config of the built-in synthetic market.

The market itself (what the constants mean, how bars are generated, the
calibration) is documented in :mod:`algospace.data.synthetic`, which
re-exports every name defined here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from numbers import Integral, Real

import numpy as np
import pandas as pd

from algospace.errors import ConfigError

SESSION_MINUTES = 23 * 60
"""Length of one trading session (18:00 to 17:00 next day) in minutes."""
SESSION_OPEN = pd.Timedelta(hours=18)
"""Wall-clock time at which a session opens (on the calendar day before its trading day)."""
ALLOWED_BAR_MINUTES = (1, 5, 15, 30, 60)
"""Bar sizes the generator supports."""

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
STRATEGIC_ON = np.array([True, True, False])
"""Per regime: whether the strategic (30-minute) component is planted (trend, range)."""
TACTICAL_ON = np.array([False, True, True])
"""Per regime: whether the tactical (5-minute) component is planted (range, volatile)."""
STRATEGIC_LAGS = 3
"""Earlier blocks of the same session whose standardized returns make the strategic score."""
TACTICAL_LAGS = 3
"""Earlier bars of the same block whose return x volume-surprise products make the tactical
score."""
STRATEGIC_STRENGTH = 0.045
"""Calibrated strategic strength a_s (drift per bar in units of the bar's sigma)."""
TACTICAL_STRENGTH = 0.14
"""Calibrated tactical strength a_t (drift per bar in units of the bar's sigma)."""
MAX_STRENGTH = 1.0
"""Upper sanity bound of either strength (1 sigma per bar is already absurd)."""
VOLUME_NOISE_SD = 0.25
"""Standard deviation of the log-normal volume noise (the volume surprise u times this)."""
GAP_SD_BREAK = 0.03
"""Opening-gap standard deviation after the weekday break, in daily volatilities."""
GAP_SD_WEEKEND = 0.12
"""Opening-gap standard deviation after a weekend, in daily volatilities."""


@dataclass(frozen=True)
class SyntheticConfig:
    """Parameters of the synthetic market; validated on construction."""

    seed: int = 0
    """Seed of the only random generator used (``np.random.default_rng(seed)``)."""
    days: int = 250
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
    signal: float = 1.0
    """Overall multiplier of both planted components (>= 0): 1.0 the calibrated market, 0 none."""
    strategic_strength: float = STRATEGIC_STRENGTH
    """Strategic strength a_s: drift ``signal * a_s * sigma_t * g_k`` per bar (>= 0)."""
    tactical_strength: float = TACTICAL_STRENGTH
    """Tactical strength a_t: drift ``signal * a_t * sigma_t * h_t`` per bar (>= 0)."""
    regimes: bool = True
    """Hidden regimes; False: one regime (code 0, volatility x1) and no planted signal."""
    signal_minutes: int | None = None
    """Strategic block length in minutes (multiple of ``bar_minutes``, at most 690);
    ``None``: 30, or the bar size for bars longer than 30 minutes."""
    base_volume: float = 1000.0
    """Typical volume of a 5-minute bar; other bar sizes scale with their length."""

    def __post_init__(self) -> None:
        _check_int("seed", self.seed, 0, 0)
        _check_int("days", self.days, 1, 250)
        _check_choice("bar_minutes", self.bar_minutes, ALLOWED_BAR_MINUTES)
        _check_start(self.start)
        _check_positive("start_price", self.start_price, "e.g. start_price=4000.0")
        _check_positive("tick_size", self.tick_size, "e.g. tick_size=0.25")
        _check_positive("annual_vol", self.annual_vol, "a fraction, e.g. annual_vol=0.18")
        _check_below("annual_vol", self.annual_vol, 5.0)
        _check_positive("base_volume", self.base_volume, "e.g. base_volume=1000.0")
        _check_non_negative("signal", self.signal, "use 0.0 for no planted signal")
        for name in ("strategic_strength", "tactical_strength"):
            _check_strength(name, getattr(self, name))
        _check_bool("regimes", self.regimes)
        _check_signal_minutes(self.block_minutes, self.bar_minutes)
        if self.start_price < self.tick_size:
            raise ConfigError(
                f"start_price must be at least one tick ({self.tick_size}); got "
                f"{self.start_price}. Fix: raise start_price or lower tick_size."
            )

    @property
    def block_minutes(self) -> int:
        """The strategic block length in minutes (``signal_minutes`` resolved)."""
        if self.signal_minutes is None:
            return max(30, self.bar_minutes)
        return self.signal_minutes

    @property
    def strategic_loading(self) -> float:
        """Effective strategic strength ``signal * a_s`` (0 without regimes)."""
        return float(self.signal * self.strategic_strength) if self.regimes else 0.0

    @property
    def tactical_loading(self) -> float:
        """Effective tactical strength ``signal * a_t`` (0 without regimes)."""
        return float(self.signal * self.tactical_strength) if self.regimes else 0.0

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


def _check_strength(name: str, value: object) -> None:
    """Raise ConfigError unless ``value`` is a finite number in [0, MAX_STRENGTH]."""
    if not _is_real(value) or not 0 <= value <= MAX_STRENGTH:  # type: ignore[operator]
        raise ConfigError(
            f"{name} must be a finite number between 0 and {MAX_STRENGTH} (drift per bar in "
            f"units of the bar's volatility); got {value!r}. Fix: use a small value such as "
            f"{STRATEGIC_STRENGTH if name.startswith('strategic') else TACTICAL_STRENGTH} "
            "(the calibrated default), or 0 to remove the component."
        )


def _check_bool(name: str, value: object) -> None:
    """Raise ConfigError unless ``value`` is a bool."""
    if not isinstance(value, bool | np.bool_):
        raise ConfigError(
            f"{name} must be true or false; got {value!r}. Fix: set {name}: true (hidden "
            "regimes and planted signal) or false (one regime, no signal)."
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
    """Raise ConfigError unless the strategic block is a whole number of bars, two per session."""
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
