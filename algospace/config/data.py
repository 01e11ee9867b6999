"""The ``data`` section: where the bars come from and how they are read, split and cached."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from algospace.data.contracts import ContractSpec, get_contract, symbol_from_filename
from algospace.data.splits import check_fractions
from algospace.data.synthetic_config import SyntheticConfig
from algospace.errors import ConfigError
from algospace.schema import build

DEFAULT_CACHE_DIR = ".algospace/cache"


SYNTHETIC_SYMBOL = "MES"
"""The contract the built-in market trades by default."""


@dataclass(frozen=True)
class DataConfig:
    """Where the bars come from and how they are read, split and cached."""

    source: Literal["synthetic", "csv"] = "synthetic"
    """``synthetic``: the built-in market (see ``synthetic``); ``csv``: the file at ``path``."""
    path: str | None = None
    """Base-bar CSV (e.g. 5-minute bars); required when ``source`` is ``csv``."""
    strategic_path: str | None = None
    """Optional strategic-bar CSV (e.g. 30-minute); checked against bars resampled from ``path``."""
    symbol: str | None = None
    """Contract root (ES, NQ, …); guessed from the file name when omitted; the built-in market
    trades MES (the micro E-mini, $5 a point) so that the default $100k account holds several
    contracts within the leverage cap."""
    contract: dict[str, float] = field(default_factory=dict)
    """Overrides of the contract spec: point_value, tick_size, commission, slippage_ticks."""
    timestamps: Literal["open", "close"] = "open"
    """Whether the file's timestamps mark each bar's open or its close."""
    dayfirst: bool | None = None
    """Dates like 01/02/2020: true = day first, false = month first, null = detect safely."""
    strategic_minutes: int = 30
    """Strategic bar size in minutes; a whole multiple of the base bar size."""
    split: tuple[float, float, float] = (0.7, 0.15, 0.15)
    """Chronological train / validation / test fractions."""
    cache_dir: str = DEFAULT_CACHE_DIR
    """Directory of the prepared-data store (relative paths are from the working directory)."""
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    """Built-in market parameters, used when ``source`` is ``synthetic``."""

    def __post_init__(self) -> None:
        check_fractions(self.split)
        if self.source == "csv" and not self.path:
            raise ConfigError(
                "data.path: required when data.source is 'csv' (give the bar CSV's path), "
                "or set data.source: synthetic to use the built-in market"
            )
        if self.source == "synthetic" and (self.path or self.strategic_path):
            raise ConfigError(
                "data.path is set but data.source is 'synthetic': set data.source: csv to "
                "train on your file (AlgoSpace never swaps your data for synthetic data)"
            )
        if self.strategic_minutes <= 0:
            raise ConfigError(f"data.strategic_minutes must be > 0, got {self.strategic_minutes}")

    def cache_path(self) -> Path:
        """The prepared-data store's directory as an absolute path (``~`` expanded): the one
        place ``cache_dir`` is resolved, so that every Ray worker finds the same store."""
        return Path(self.cache_dir).expanduser().resolve()

    def contract_spec(self) -> ContractSpec:
        """The contract spec: explicit symbol, else guessed from the file name, else MES on the
        built-in market (ES for a CSV given contract overrides only)."""
        symbol = self.symbol
        if symbol is None and self.path:
            symbol = symbol_from_filename(Path(self.path).name)
            if symbol is None and not self.contract:
                raise ConfigError(
                    f"data.symbol: cannot tell the contract from the file name "
                    f"{Path(self.path).name!r}; set data.symbol (e.g. ES, NQ, CL)"
                )
        default = SYNTHETIC_SYMBOL if self.source == "synthetic" else "ES"
        return get_contract(symbol or default, **self.contract)


def load_data_config(data: dict[str, Any] | None, path: str = "data") -> DataConfig:
    """Build a :class:`DataConfig` from a mapping (e.g. a YAML file's ``data`` section)."""
    return build(DataConfig, data, path)
