"""Position limits that fit the account: the leverage cap, MES on the built-in market."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from algospace.config import LEVERAGE_CAP, DataConfig, EnvConfig
from algospace.data.synthetic import SyntheticConfig
from algospace.errors import ConfigError
from algospace.market.sizing import leverage, position_limit
from envs.core.layout import RISK_CONTRACTS
from envs.registry import env_class


def test_position_limit_by_hand() -> None:
    # 2 × $100k / (4000 × $5) = 10 MES contracts; 2 × $100k / (4000 × $50) = 1 ES contract.
    assert position_limit(100_000, 4000.0, 5.0, 2.0) == 10
    assert position_limit(100_000, 4001.0, 5.0, 2.0) == 9
    assert position_limit(100_000, 4000.0, 50.0, 2.0) == 1
    assert position_limit(10_000, 20_000.0, 20.0, 2.0) == 1  # never below one contract
    assert leverage(10, 100_000, 4000.0, 5.0) == pytest.approx(2.0)
    with pytest.raises(ConfigError, match="reference_price"):
        position_limit(100_000, 0.0, 5.0)


def test_default_limit_on_the_built_in_market_fits_the_cap(env_data: DataConfig) -> None:
    env = env_class("strategic_v0")(EnvConfig(data=env_data))
    contract = env.market.contract
    assert contract.symbol == "MES"
    close = np.asarray(env._ohlc)[:, 3]
    lo, hi = env.market.splits.range("train")
    assert env.market.reference_price == pytest.approx(
        float(np.asarray(env.market.arrays["base_ohlc"])[lo:hi, 3].max()))
    limit = env.max_position
    assert limit >= 5, "several contracts"
    at_reference = leverage(limit, 100_000, env.market.reference_price, contract.point_value)
    assert at_reference <= LEVERAGE_CAP
    assert leverage(limit + 1, 100_000, env.market.reference_price,
                    contract.point_value) > LEVERAGE_CAP
    assert leverage(limit, 100_000, float(np.median(close)), contract.point_value) < 2.5


def test_explicit_limit_and_cap_override(env_data: DataConfig) -> None:
    assert env_class("strategic_v0")(EnvConfig(data=env_data, max_position=3)).max_position == 3
    capped = env_class("strategic_v0")(EnvConfig(data=env_data, leverage_cap=1.0))
    default = env_class("strategic_v0")(EnvConfig(data=env_data))
    assert capped.max_position == default.max_position // 2 or \
        capped.max_position == position_limit(100_000, default.market.reference_price, 5.0, 1.0)
    with pytest.raises(ConfigError, match="leverage_cap"):
        EnvConfig(leverage_cap=0.0)


def _tactical_target(env: Any, size: int, vote: int) -> int:
    """The target the tactical env sets for ``size`` (risk action 0) and a common vote."""
    env.reset(seed=0)
    actions: dict[str, Any] = {a: vote for a in env.agents if a != "risk"}
    actions["risk"] = np.array([size, 0, 0])
    return int(env.decide(actions))


def test_size_actions_keep_their_meaning_under_the_limit(env_data: DataConfig) -> None:
    env = env_class("tactical_v0")(EnvConfig(data=env_data))
    limit = env.max_position
    targets = [_tactical_target(env, k, 2) for k in range(len(RISK_CONTRACTS))]  # BUY_LARGE
    # risk action k asks for k fifths of the limit: 0 … limit, increasing.
    assert targets[0] == 0 and targets[-1] == limit
    assert targets == sorted(targets) and len(set(targets)) == len(targets)
    assert targets[1] == round(limit / 5)
    short = [_tactical_target(env, k, 4) for k in range(len(RISK_CONTRACTS))]  # SELL_LARGE
    assert short == [-t for t in targets]


def test_strategic_size_actions_change_the_position(env_data: DataConfig) -> None:
    env = env_class("strategic_v0")(EnvConfig(data=env_data))
    env.reset(seed=0)
    conservative = env.decide({a: 1 for a in env.agents})  # BUY_CONSERVATIVE: vote 0.5
    env.reset(seed=0)
    aggressive = env.decide({a: 2 for a in env.agents})  # BUY_AGGRESSIVE: vote 1.0
    assert 0 < conservative < aggressive <= env.max_position


def test_micro_contract_on_the_synthetic_market_only() -> None:
    assert DataConfig().contract_spec().symbol == "MES"
    assert DataConfig(synthetic=SyntheticConfig(days=5), symbol="ES").contract_spec().symbol \
        == "ES"


def test_a_guessed_full_size_contract_is_traded_as_its_micro() -> None:
    from algospace.data.contracts import get_contract
    from algospace.market.sizing import traded_contract

    nq = get_contract("NQ")  # $20 a point: 2× $100k allows 1 contract at 20,000
    chosen, note = traded_contract(nq, 100_000, 20_000.0)
    assert chosen.symbol == "MNQ" and note is not None and "data.symbol: NQ" in note
    assert position_limit(100_000, 20_000.0, chosen.point_value) == 5
    assert traded_contract(nq, 100_000, 20_000.0, explicit=True)[0].symbol == "NQ"
    assert traded_contract(nq, 1_000_000, 20_000.0)[0].symbol == "NQ"  # room for 5 NQ
    assert traded_contract(get_contract("ZN"), 10_000, 110.0)[0].symbol == "ZN"  # no micro


def test_a_csv_named_after_a_full_size_contract_trades_its_micro(tmp_path: Any) -> None:
    from algospace.data.synthetic import generate, to_csv

    csv = tmp_path / "@ES - 5 min.csv"
    to_csv(generate(SyntheticConfig(days=30, seed=3)), csv)
    data = DataConfig(source="csv", path=str(csv), cache_dir=str(tmp_path / "cache"),
                      split=(0.7, 0.15, 0.15))
    guessed = env_class("tactical_v0")(EnvConfig(data=data))
    assert guessed.market.contract.symbol == "MES" and guessed.max_position >= 5
    named = env_class("tactical_v0")(EnvConfig(data=replace(data, symbol="ES")))
    assert named.market.contract.symbol == "ES" and named.max_position == 1
