"""Futures contract specifications: point value, tick size, default costs.

Values are the exchange's contract specs (CME Group / NYMEX / COMEX / CBOT);
commissions are a typical all-in retail rate per contract per side and
slippage a default number of ticks per side. Every field can be overridden
in config (``data.contract``) for another broker or instrument.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from dataclasses import dataclass
from typing import Any

from algospace.errors import ConfigError


@dataclass(frozen=True)
class ContractSpec:
    """One futures contract's specification."""

    symbol: str
    """Root symbol, e.g. ``ES``."""
    point_value: float
    """Dollars per 1.0 price point per contract."""
    tick_size: float
    """Minimum price increment in points."""
    commission: float = 2.50
    """Commission in dollars per contract per side (entry or exit)."""
    slippage_ticks: float = 1.0
    """Assumed slippage per side, in ticks."""

    def __post_init__(self) -> None:
        for name in ("point_value", "tick_size"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"contract {self.symbol}: {name} must be > 0, "
                                  f"got {getattr(self, name)!r}")
        for name in ("commission", "slippage_ticks"):
            if getattr(self, name) < 0:
                raise ConfigError(f"contract {self.symbol}: {name} must be >= 0, "
                                  f"got {getattr(self, name)!r}")

    @property
    def tick_value(self) -> float:
        """Dollars per tick per contract."""
        return self.point_value * self.tick_size

    @property
    def cost_per_side(self) -> float:
        """Dollars per contract per side: commission plus slippage.

        Also the one price of closing a contract still held at an episode's end: the env
        charges it in the episode's last reward, the backtest and the decision engine at
        the end of each tile or session.
        """
        return self.commission + self.slippage_ticks * self.tick_value


CONTRACTS: dict[str, ContractSpec] = {
    spec.symbol: spec
    for spec in (
        ContractSpec("ES", 50.0, 0.25),
        ContractSpec("MES", 5.0, 0.25, commission=0.62),
        ContractSpec("NQ", 20.0, 0.25),
        ContractSpec("MNQ", 2.0, 0.25, commission=0.62),
        ContractSpec("YM", 5.0, 1.0),
        ContractSpec("MYM", 0.5, 1.0, commission=0.62),
        ContractSpec("RTY", 50.0, 0.10),
        ContractSpec("M2K", 5.0, 0.10, commission=0.62),
        ContractSpec("CL", 1000.0, 0.01),
        ContractSpec("MCL", 100.0, 0.01, commission=0.62),
        ContractSpec("GC", 100.0, 0.10),
        ContractSpec("MGC", 10.0, 0.10, commission=0.62),
        ContractSpec("SI", 5000.0, 0.005),
        ContractSpec("ZN", 1000.0, 1 / 64),
        ContractSpec("ZB", 1000.0, 1 / 32),
        ContractSpec("6E", 125000.0, 0.00005),
    )
}


def get_contract(symbol: str, **overrides: Any) -> ContractSpec:
    """The spec of ``symbol`` (case-insensitive), with any fields overridden."""
    key = symbol.strip().upper()
    if key not in CONTRACTS:
        if not overrides.get("point_value") or not overrides.get("tick_size"):
            close = difflib.get_close_matches(key, list(CONTRACTS), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"unknown contract {symbol!r}.{hint} Known: {', '.join(sorted(CONTRACTS))}; "
                "for another instrument give point_value and tick_size in data.contract"
            )
        return ContractSpec(symbol=key, **overrides)
    fields = {f.name for f in dataclasses.fields(ContractSpec)} - {"symbol"}
    unknown = set(overrides) - fields
    if unknown:
        raise ConfigError(f"unknown contract field(s) {sorted(unknown)}; known: {sorted(fields)}")
    return dataclasses.replace(CONTRACTS[key], **overrides)


_ROOT = re.compile(r"^\W*([A-Za-z0-9]{1,4}?)(?:[FGHJKMNQUVXZ]\d{1,2})?(?=[^A-Za-z0-9]|$)")


def symbol_from_filename(name: str) -> str | None:
    """Guess the root symbol from a vendor file name such as ``@NQ - 5 min - ETH.csv``."""
    match = _ROOT.match(name.strip())
    if match and match.group(1).upper() in CONTRACTS:
        return match.group(1).upper()
    return None
