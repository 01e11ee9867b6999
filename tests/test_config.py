"""Typed config: unknown keys, wrong types and contradictions are explained."""

from __future__ import annotations

from pathlib import Path

import pytest

from algospace.config import load_data_config, read_yaml
from algospace.data.contracts import CONTRACTS, get_contract, symbol_from_filename
from algospace.errors import ConfigError


def test_defaults() -> None:
    cfg = load_data_config(None)
    assert cfg.source == "synthetic" and cfg.split == (0.7, 0.15, 0.15)
    assert cfg.contract_spec().symbol == "MES"  # the built-in market trades the micro


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"sorce": "csv"}, r"data.sorce: unknown key. Did you mean 'source'\?"),
        ({"synthetic": {"dayz": 3}}, r"data.synthetic.dayz: unknown key. Did you mean 'days'\?"),
        ({"source": "parquet"}, r"data.source: expected one of \['synthetic', 'csv'\]"),
        ({"timestamps": "opn"}, r"data.timestamps: .* Did you mean 'open'\?"),
        ({"split": [0.5, 0.5]}, r"data.split: expected a list of 3 items, got 2"),
        ({"split": "70/15/15"}, r"data.split: expected a list"),
        ({"split": [0.7, "a", 0.15]}, r"data.split\[1\]: expected float, got 'a'"),
        ({"split": [0.7, 0.2, 0.2]}, r"data.split fractions must sum to 1"),
        ({"strategic_minutes": "30"}, r"data.strategic_minutes: expected int, got '30'"),
        ({"dayfirst": "yes"}, r"data.dayfirst: expected bool"),
        ({"synthetic": {"days": 0}}, r"days"),
        ({"contract": {"point_value": "fifty"}}, r"data.contract.point_value: expected float"),
        ([1, 2], r"data: expected a mapping"),
    ],
)
def test_bad_sections(section: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_data_config(section)  # type: ignore[arg-type]


def test_symbol_from_file_name_and_overrides() -> None:
    cfg = load_data_config({"source": "csv", "path": "data/@NQ - 5 min - ETH.csv"})
    assert cfg.contract_spec().point_value == 20.0
    cfg = load_data_config({"source": "csv", "path": "x/NQ.csv", "symbol": "MES",
                            "contract": {"commission": 0.5}})
    assert cfg.contract_spec().point_value == 5.0 and cfg.contract_spec().commission == 0.5
    with pytest.raises(ConfigError, match="cannot tell the contract from the file name"):
        load_data_config({"source": "csv", "path": "bars.csv"}).contract_spec()


def test_contract_specs() -> None:
    for symbol in ("ES", "NQ", "MES", "MNQ", "CL", "YM", "RTY", "GC"):
        assert symbol in CONTRACTS
    es = get_contract("es")
    assert (es.point_value, es.tick_size, es.tick_value) == (50.0, 0.25, 12.5)
    assert es.cost_per_side == pytest.approx(2.50 + 12.5)
    assert get_contract("CL").tick_value == pytest.approx(10.0)
    with pytest.raises(ConfigError, match=r"unknown contract 'ESS'. Did you mean 'ES'\?"):
        get_contract("ESS")
    assert get_contract("ZZ", point_value=10, tick_size=0.5).tick_value == 5.0
    with pytest.raises(ConfigError, match="tick_size must be > 0"):
        get_contract("ES", tick_size=0)
    with pytest.raises(ConfigError, match="unknown contract field"):
        get_contract("ES", multiplier=3)


@pytest.mark.parametrize(
    ("name", "symbol"),
    [("ES  30 min  New.csv", "ES"), ("@NQ - 5 min - ETH.csv", "NQ"),
     ("@CL - 30 min - ETH.csv", "CL"), ("MES_5m.csv", "MES"), ("ESZ4 5min.csv", "ES"),
     ("bars.csv", None)],
)
def test_symbol_from_filename(name: str, symbol: str | None) -> None:
    assert symbol_from_filename(name) == symbol


def test_read_yaml_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        read_yaml(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  source: [csv\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: line \d+ not valid YAML"):
        read_yaml(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42\n")
    with pytest.raises(ConfigError, match="expected a mapping of sections"):
        read_yaml(scalar)
