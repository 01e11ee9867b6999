"""Supervised probes: features are what the agents see and nothing later, the fit, the
capture of a planted signal against shuffled labels and no signal, costs by hand."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import numpy as np
import pytest

from algospace.config import DataConfig, EnvConfig
from algospace.data.synthetic import SyntheticConfig
from algospace.errors import ConfigError
from algospace.evaluation.backtest import backtest
from algospace.evaluation.oracles import LAYERS
from algospace.evaluation.probe_model import _Objective, fit_probe, log_loss
from algospace.evaluation.probes import (
    BAND_QUANTILES,
    ProbeData,
    collect,
    layer_features,
    oracle_runs,
    probe,
    rule_positions,
    run_probes,
    select,
    trade,
)
from envs.core.layout import AGENT_COLUMNS, CONTEXT, LATENT_DIM
from envs.registry import env_class

GRID = (1.0, 0.1)


@pytest.fixture(scope="module")
def strong(tmp_path_factory: pytest.TempPathFactory) -> EnvConfig:
    """60 days with both planted components at twice their calibrated strength."""
    return EnvConfig(data=DataConfig(synthetic=SyntheticConfig(days=60, seed=1, signal=2.0),
                                     cache_dir=str(tmp_path_factory.mktemp("probe-cache"))))


@pytest.fixture(scope="module")
def strategic(strong: EnvConfig) -> dict[str, ProbeData]:
    """The strategic probe's rows of every split."""
    return {split: collect("strategic", strong, split) for split in ("train", "val", "test")}


# ------------------------------------------------------------------------------- the model
@pytest.mark.parametrize("hidden", [0, 4])
def test_gradient_matches_finite_differences(hidden: int) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 5))
    x[20:] = x[:20]  # repeated rows are merged, their class counts kept
    y = rng.integers(0, 3, 40)
    objective = _Objective(x, y, 0.05, hidden, np.float64)
    assert len(objective.x) == 20 and objective.counts.sum() == 40
    theta = rng.normal(size=sum(int(np.prod(s)) for s in objective.shapes)) * 0.3
    loss, grad = objective(theta)
    step = 1e-5
    for i in range(len(theta)):
        e = np.zeros_like(theta)
        e[i] = step
        numeric = (objective(theta + e)[0] - objective(theta - e)[0]) / (2 * step)
        assert numeric == pytest.approx(grad[i], abs=2e-5)
    # The merged loss is the mean cross-entropy over all 40 rows, plus the penalty.
    model_layers = objective.unpack(theta)
    scores = np.tanh(x @ model_layers[0] + model_layers[1]) @ model_layers[2] \
        + model_layers[3] if hidden else x @ model_layers[0] + model_layers[1]
    log_p = scores - np.log(np.exp(scores).sum(axis=1, keepdims=True))
    penalty = 0.05 * sum(float((w * w).sum()) for w in model_layers[0::2])
    assert loss == pytest.approx(-log_p[np.arange(40), y].mean() + penalty, rel=1e-5)


def test_fit_learns_a_toy_and_is_deterministic() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(600, 6))
    y = np.digitize(x[:, 0] + 0.3 * rng.normal(size=600), [-0.5, 0.5]) - 1
    for hidden in (0, 8):
        first = fit_probe(x, y, l2=1e-3, hidden=hidden, seed=3)
        again = fit_probe(x, y, l2=1e-3, hidden=hidden, seed=3)
        for (w1, b1), (w2, b2) in zip(first.layers, again.layers, strict=True):
            np.testing.assert_array_equal(w1, w2)
            np.testing.assert_array_equal(b1, b2)
        assert np.mean(first.predict(x) == y) > 0.8
        assert log_loss(first, x, y) < math.log(3) - 0.4
    with pytest.raises(ConfigError, match="-1, 0 and \\+1"):
        fit_probe(x, y + 1, l2=0.1)


# ------------------------------------------------------------------------- the features
def _check_observation(obs: dict[str, Any], feats: np.ndarray, names: tuple[str, ...]) -> None:
    """Every feature is in some agent's local observation, and every value there is one."""
    at = {n: i for i, n in enumerate(names)}
    assert len(at) == len(names)
    seen: set[str] = set()
    for agent, o in obs.items():
        cols = AGENT_COLUMNS[agent]
        local = o["local"][:-len(CONTEXT)]
        latent = LATENT_DIM if agent == "regime" else 0
        window = (len(local) - latent) // len(cols)
        values = local[:window * len(cols)].reshape(window, len(cols))
        for k in range(window):
            lag = window - 1 - k
            for j, col in enumerate(cols):
                key = f"{col}[t-{lag}]" if lag else f"{col}[t]"
                assert feats[at[key]] == values[k, j], (agent, key)
                seen.add(key)
        if latent:
            mu = [f"regime_mu_{i}" for i in range(LATENT_DIM)]
            np.testing.assert_array_equal(feats[[at[m] for m in mu]], local[-LATENT_DIM:])
            seen.update(mu)
    if "strategic_decision" in at:  # joint_v0: the context's decision flag
        assert feats[at["strategic_decision"]] == obs["fvg"]["local"][-1]
        seen.add("strategic_decision")
    assert seen == set(names)  # nothing the agents do not see


def test_features_are_the_agents_observations(strong: EnvConfig) -> None:
    for name, layer in (("strategic_v0", "strategic"), ("tactical_v0", "tactical"),
                        ("joint_v0", "joint")):
        env = env_class(name)(dataclasses.replace(strong, split="val"))
        market = env.market
        windows = (market.strategic_window, market.tactical_window)
        for start in env.valid_starts()[[0, -1]].tolist():
            obs, infos = env.reset(options={"start": start})
            for _ in range(3):  # at the start and two steps on (not at a 30-minute close)
                row = next(iter(infos.values()))["row"]  # the 5-minute row of the decision
                feats, names = layer_features(market.arrays, np.array([row]), layer, windows)
                _check_observation(obs, feats[0], names)
                obs, _, _, _, infos = env.step(_flat(obs, env.decision))


def test_rows_are_decided_at_the_previous_close(strategic: dict[str, ProbeData],
                                                strong: EnvConfig) -> None:
    data = strategic["test"]
    market = env_class("strategic_v0")(dataclasses.replace(strong, split="test")).market
    windows = (market.strategic_window, market.tactical_window)
    feats, _ = layer_features(market.arrays, data.truth.rows - 1, "strategic", windows)
    np.testing.assert_array_equal(data.features, feats)
    assert np.array_equal(data.target, data.truth.unit_positions["strategic"])
    # every row of a 30-minute bar shares its features: one decision per bar
    sindex = np.asarray(market.arrays["strategic_index"])[data.truth.rows - 1]
    for bar in np.unique(sindex)[:20]:
        same = data.features[sindex == bar]
        assert len(same) >= 1 and (same == same[0]).all()


def test_no_look_ahead(strong: EnvConfig, strategic: dict[str, ProbeData]) -> None:
    """Redrawing every table after bar t leaves the features and predictions up to t."""
    env = env_class("joint_v0")(dataclasses.replace(strong, split="test"))
    arrays = env.market.arrays
    windows = (env.market.strategic_window, env.market.tactical_window)
    rows = np.arange(int(env.valid_starts()[0]), env.market.n_base - 12)
    t = int(rows[len(rows) // 2])
    s_t = int(arrays["strategic_index"][t])
    rng = np.random.default_rng(5)
    changed = {k: np.array(v, copy=True) for k, v in arrays.items()}
    for key, values in changed.items():
        if key.startswith("t_"):
            values[t + 1:] = rng.normal(size=values[t + 1:].shape)
        elif key.startswith("s_") or key == "latent":
            values[s_t + 1:] = rng.normal(size=values[s_t + 1:].shape)
    model = fit_probe(strategic["train"].features, strategic["train"].target, l2=0.1)
    for layer in LAYERS:
        before, _ = layer_features(arrays, rows, layer, windows)
        after, _ = layer_features(changed, rows, layer, windows)
        past = rows <= t
        np.testing.assert_array_equal(before[past], after[past])
        assert not np.array_equal(before[~past], after[~past])
        if layer == "strategic":
            np.testing.assert_array_equal(model.predict(before[past]),
                                          model.predict(after[past]))
            assert not np.array_equal(model.scores(before[~past]), model.scores(after[~past]))


# ------------------------------------------------------------------------ the captures
def test_probe_captures_a_planted_signal_that_shuffled_labels_do_not(
        strong: EnvConfig, strategic: dict[str, ProbeData]) -> None:
    result = probe("strategic", strong, l2_grid=GRID)
    assert result.env == "strategic_v0" and result.split == "test"
    assert result.model == "linear" and result.l2 in GRID
    assert len(result.candidates) == len(GRID) * (1 + len(BAND_QUANTILES))
    chosen = max(result.candidates, key=lambda c: c.expected_pnl)
    assert (result.l2, result.band) == (chosen.l2, chosen.band)
    assert result.validation_expected_capture == chosen.expected_capture > 0.3
    assert result.expected_capture > 0.3 and result.expected_pnl > 0 and result.trades > 10
    assert 0 < result.expected_capture_of_joint_oracle < result.expected_capture
    assert result.accuracy > 0.5
    # the same grid fitted to the same rows with their labels shuffled
    train = strategic["train"]
    shuffled = dataclasses.replace(
        train, target=train.target[np.random.default_rng(0).permutation(len(train.target))])
    model, pick, _ = select(shuffled, strategic["val"], l2_grid=GRID)
    test = strategic["test"]
    blind = trade(test, rule_positions(model, pick.band, test.features))
    assert blind.capture["expected_capture"] < 0.15
    assert result.expected_capture - blind.capture["expected_capture"] > 0.25


def test_no_signal_no_capture(env_data: DataConfig) -> None:
    cfg = EnvConfig(data=env_data)
    train, val, test = (collect("strategic", cfg, s) for s in ("train", "val", "test"))
    # The oracle never trades a market without drift: nothing to learn, nothing traded.
    assert not train.target.any()
    model, pick, _ = select(train, val, l2_grid=(1.0,))
    run = trade(test, rule_positions(model, pick.band, test.features))
    assert run.metrics.trades == 0 and run.expected_pnl == 0.0 and run.metrics.net_pnl == 0.0
    assert math.isnan(run.capture["expected_capture"])
    # Made to trade every 5 minutes: labels = the sign of the move of the bar each row holds
    # (the answer, shown in training). Nothing known before a bar forecasts it: the realised
    # P&L is no better than noise, and the expected P&L is what the costs take.
    def bait(d: ProbeData) -> ProbeData:
        o, c = d.truth.ohlc[:, 0], d.truth.ohlc[:, 3]
        return dataclasses.replace(d, target=np.sign(c - o).astype(np.int64))

    train, val, test = (bait(collect("tactical", cfg, s)) for s in ("train", "val", "test"))
    model, _, _ = select(train, val, l2_grid=(0.01,), quantiles=())  # the argmax rule
    run = trade(test, model.predict(test.features))
    assert run.metrics.trades > 50 and run.metrics.exposure > 0.5
    pnl = np.diff(np.r_[test.initial_equity, run.equity.to_numpy()])
    t_stat = pnl.mean() / pnl.std(ddof=1) * math.sqrt(len(pnl))
    assert t_stat < 3.0
    assert run.expected_pnl == pytest.approx(-run.metrics.costs) and run.expected_pnl < 0


def test_band_rule_trades_where_the_argmax_stays_flat(
        strategic: dict[str, ProbeData]) -> None:
    """An oracle flat on most rows, as the tactical one is (here the strategic oracle's
    positions kept on 15 % of the rows, flat elsewhere): "flat" is the most likely class
    on every row, so the argmax rule never trades, but the model still leans the drift's
    way, and the band rule, chosen on validation, trades it and earns."""
    rng = np.random.default_rng(0)

    def thin(d: ProbeData) -> ProbeData:
        return dataclasses.replace(d, target=np.where(rng.random(len(d.target)) < 0.15,
                                                      d.target, 0))

    train, val, test = thin(strategic["train"]), thin(strategic["val"]), strategic["test"]
    model, chosen, table = select(train, val, l2_grid=GRID)
    argmax = [c for c in table if c.band is None]
    assert not model.predict(val.features).any() and all(c.expected_pnl == 0 for c in argmax)
    assert chosen.band is not None and chosen.expected_pnl > 0 and chosen.expected_capture > 0.3
    assert chosen == max(table, key=lambda c: c.expected_pnl) and model.l2 == chosen.l2
    # per model: the argmax rule, then the bands, widest first
    assert len(table) == len(GRID) * (1 + len(BAND_QUANTILES))
    for i in range(0, len(table), 1 + len(BAND_QUANTILES)):
        bands = [c.band for c in table[i:i + 1 + len(BAND_QUANTILES)]]
        assert bands[0] is None and bands[1:] == sorted(bands[1:], reverse=True)
    _, only, _ = select(train, val, l2_grid=GRID, quantiles=())  # the argmax rule alone
    assert only.band is None and only.expected_pnl == 0
    run = trade(test, rule_positions(model, chosen.band, test.features))
    assert run.metrics.trades > 10 and run.expected_pnl > 0
    assert run.capture["expected_capture"] > 0.25


def test_costs_are_charged_as_by_hand(strategic: dict[str, ProbeData]) -> None:
    data = strategic["test"]
    c, n = data.contract, data.limit
    k = 30
    unit = np.zeros(len(data.target), dtype=np.int64)
    unit[k:k + 3] = 1  # long the limit over rows k, k+1, k+2; sold at row k+3's open
    run = trade(data, unit)
    o = data.truth.ohlc[:, 0]
    slip = c.slippage_ticks * c.tick_size
    hand = n * c.point_value * ((o[k + 3] - slip) - (o[k] + slip)) - 2 * n * c.commission
    assert run.metrics.net_pnl == pytest.approx(hand, abs=1e-6)
    assert run.metrics.costs == pytest.approx(2 * n * c.cost_per_side)
    assert run.metrics.trades == 1
    drift = data.truth.drift("joint")[k:k + 3]
    assert run.expected_pnl == pytest.approx(n * c.point_value * drift.sum()
                                             - 2 * n * c.cost_per_side)
    with pytest.raises(ConfigError, match="unit positions"):
        trade(data, unit * 2)


def _flat(obs: dict[str, Any], decision: bool) -> dict[str, Any]:
    return {a: (np.zeros(3, dtype=np.int64) if a == "risk" else 0) for a in obs}


@pytest.mark.parametrize("name", ["strategic_v0", "joint_v0"])
def test_oracles_on_the_backtests_bars(signal_data: DataConfig, name: str) -> None:
    """The probe's rows are the backtest's: the oracles' figures agree to the cent."""
    cfg = EnvConfig(data=signal_data, split="test")
    bt = backtest(name, cfg, _flat)
    data = collect(name, cfg, "test")
    runs = oracle_runs(data)
    for layer in LAYERS:
        assert runs[layer].expected_pnl == pytest.approx(bt.oracles[layer].expected_pnl)
        assert runs[layer].metrics.net_pnl == pytest.approx(bt.oracles[layer].metrics.net_pnl)
    flat = trade(data, np.zeros(len(data.target), dtype=np.int64), runs)
    assert flat.expected_pnl == bt.capture["expected_pnl"] == 0.0


def test_every_layer_runs(signal_data: DataConfig) -> None:
    results = run_probes(EnvConfig(data=signal_data), split="val", l2_grid=(1.0,))
    assert list(results) == list(LAYERS)
    for layer, result in results.items():
        assert result.layer == layer and result.split == "val"
        assert result.expected_capture == pytest.approx(result.validation_expected_capture,
                                                        nan_ok=True)
        assert np.isfinite(result.net_pnl) and set(result.row()) >= {"expected_capture",
                                                                      "net_pnl", "l2", "band"}
        json.dumps(result.row())  # the band is a float or None
