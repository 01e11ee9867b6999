"""Supervised probes: the capture an agent could reach from what its layer sees.

A probe is a classifier fitted, with the generator's truth as labels, to the
observations one env's agents get, then traded greedily through the same
account as the agents. Its expected capture is a learnable ceiling for that
env: what a policy reading the same observations, with the answer shown during
training, reaches on held-out bars. On the built-in synthetic market only (the
labels come from the ``synthetic_truth`` table).

**Rows.** :func:`collect` takes the 5-minute rows a backtest of the env executes
on a split — every tile of ``random_start=False``, a 30-minute bar of
``strategic_v0`` spanning its six 5-minute rows — so the oracles and the capture
are computed on exactly the bars the agents' backtest uses
(:func:`~algospace.evaluation.oracles.span_rows`,
:func:`~algospace.evaluation.oracles.read_truth`).

**Features** (:func:`layer_features`) of a row ``r``: what the agents of the env
see at the close of row ``r - 1``, when the position held over ``r`` is decided.
The union of the layer's agents' local windows, each column once: the strategic
agents' columns over the last ``strategic_window`` closed 30-minute bars (the
bar visible at ``r - 1``, held until the next closes, as in the envs) plus the
regime latent; the tactical agents' columns over the last ``tactical_window``
5-minute rows up to ``r - 1``; in ``joint_v0`` also the flag saying that a
30-minute bar has just closed. Left out: the account and signal context at the
end of every local observation (position, P&L, the layers' latched votes),
which depend on the policy that trades rather than on the market, and columns
that appear in several agents' windows more than once (``entry`` and ``risk``
see the same table; ``return_30`` is in every strategic window).

**Target.** The env's layer oracle's unit position over row ``r``
(``oracle_<layer>`` in the truth table: -1, 0, +1). That oracle decides from the
planted drifts of its layer as known at ``r``'s open — all causal, and all
functions of bars the agents' windows show — and nets out the costs: it is flat
where the drift does not pay for the round trip. That is "the direction the
observation allows" in the form a trader uses it; the bare sign of the drift
would ask the probe to trade every bar whose drift is a hair from zero. The
joint probe reads both layers and targets the joint oracle.

**Model** (:mod:`algospace.evaluation.probe_model`): multinomial logistic
regression (or one tanh layer), standardised inputs, fitted on the train split
for every (hidden units, L2) of the grid. Chosen on the validation split,
together with its trading rule, by the **expected net P&L** of trading it there
(the numerator of its validation expected capture, so the same ranking): for
each fitted model the argmax rule first, then the band rule at each band of
:data:`BAND_QUANTILES`, widest first; a later candidate must expect strictly
more (the simpler one wins a tie: fewer hidden units, stronger L2, argmax, wider
band).

**Trading.** Each row's unit position × the env's position limit is its target
position (for ``strategic_v0`` one decision per 30-minute bar: every row of the
bar has the same features), traded through the account with the agents'
contract, limit, initial equity and ruin level, exactly as an oracle is
(:func:`~algospace.evaluation.oracles.run_oracle`); expected P&L and capture as
for the agents (:func:`~algospace.evaluation.oracles.capture`). The unit
position is either the **predicted class** (argmax) or, by the **band rule** the
price probes trade (:mod:`algospace.evaluation.price_probes`), long where the
lean ``p(+1) − p(-1)`` exceeds a band ``m``, short below ``−m``, flat between
(:func:`lean`, :func:`positions`), the band a quantile of the validation rows'
``|lean|``. The band rule is there for oracles that are flat most of the time,
as the tactical one is: "flat" is then the most likely class on nearly every
row, so the argmax never trades although the model's lean still points the way
the drift goes; the band trades the rows where it leans most.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from algospace.config import STRATEGIC_AGENTS, TACTICAL_AGENTS, EnvConfig
from algospace.data.contracts import ContractSpec
from algospace.errors import ConfigError
from algospace.evaluation.backtest import env_layer
from algospace.evaluation.metrics import Metrics
from algospace.evaluation.oracles import (
    LAYERS,
    TRUTH,
    OracleRun,
    Truth,
    capture,
    read_truth,
    run_oracle,
    span_rows,
)
from algospace.evaluation.probe_model import ProbeModel, fit_probe, log_loss
from algospace.features.pipeline import prepare
from envs.core.data import stored_tables
from envs.core.episodes import tile
from envs.core.layout import AGENT_COLUMNS, LATENT_DIM
from envs.registry import env_class

PROBE_ENVS: dict[str, str] = {"strategic": "strategic_v0", "tactical": "tactical_v0",
                              "joint": "joint_v0"}
"""The env whose agents' observations each layer's probe reads."""
L2_GRID: tuple[float, ...] = (1.0, 0.1, 0.01, 0.001)
"""L2 strengths tried, strongest first."""
HIDDEN: tuple[int, ...] = (0,)
"""Hidden units tried (0: logistic regression)."""
BAND_QUANTILES: tuple[float, ...] = (0.0, 0.5, 0.8, 0.9, 0.95, 0.99)
"""Bands tried: these quantiles of ``|lean|`` on the validation rows (0.0: trade every
row's lean)."""


@dataclass(frozen=True)
class ProbeData:
    """One env's probe rows on one split: features, targets and the truth of the bars."""

    env: str
    layer: str
    """The env's layer: strategic, tactical or joint (whose oracle the target is)."""
    split: str
    features: np.ndarray
    """Rows × columns (float32): what the agents saw when deciding each row's position."""
    columns: tuple[str, ...]
    """Name of every feature column (``column[t-k]``: k bars before the decision)."""
    target: np.ndarray
    """The layer oracle's unit position over each row (-1, 0, +1)."""
    truth: Truth
    """The generator's truth over the rows (5-minute bars, in time order)."""
    contract: ContractSpec
    limit: int
    """Position limit (contracts), as for the agents."""
    initial_equity: float
    ruin_level: float


@dataclass(frozen=True)
class ProbeRun:
    """A unit position path traded on a :class:`ProbeData`'s bars."""

    metrics: Metrics
    equity: pd.Series
    """Equity after each row (stopped at ruin)."""
    expected_pnl: float
    """Expected net P&L (both planted components, minus its costs), as for the agents."""
    capture: dict[str, float]
    """Realised and expected capture of the layer's and the joint oracle."""


@dataclass(frozen=True)
class Candidate:
    """One (hidden units, L2) of the grid with a trading rule, scored on the validation
    split."""

    hidden: int
    l2: float
    band: float | None
    """The band on the lean its trading rule uses (None: the argmax rule)."""
    expected_pnl: float
    """Validation expected net P&L of trading it (the selection score)."""
    expected_capture: float
    """That over the layer oracle's validation expected P&L."""
    log_loss: float
    """Validation cross-entropy."""


@dataclass(frozen=True)
class ProbeResult:
    """A layer's probe: chosen on validation, scored on the evaluation split."""

    env: str
    layer: str
    split: str
    model: str
    """``linear`` (logistic regression) or ``mlp<h>``."""
    l2: float
    band: float | None
    """The band on the lean the chosen rule trades by (None: the argmax rule)."""
    validation_expected_capture: float
    """Of the layer oracle, by the chosen model on the validation split."""
    validation_log_loss: float
    expected_capture: float
    """Of the env's layer oracle on the evaluation split."""
    expected_capture_of_joint_oracle: float
    capture_of_oracle: float
    """Realised: net P&L over the layer oracle's."""
    capture_of_joint_oracle: float
    expected_pnl: float
    net_pnl: float
    sharpe: float
    """Daily dollar Sharpe (net, annualised)."""
    trades: int
    accuracy: float
    """Share of rows whose traded unit position is the oracle's: the predicted class
    (argmax) under the argmax rule, the band's position under the band rule."""
    metrics: Metrics = field(repr=False)
    candidates: tuple[Candidate, ...] = field(default=(), repr=False)
    """Every candidate of the grid, as scored on validation."""

    def row(self) -> dict[str, Any]:
        """The figures as a flat dict (no metrics, no candidates)."""
        return {k: v for k, v in self.__dict__.items() if k not in ("metrics", "candidates")}


def layer_columns(layer: str) -> tuple[list[tuple[str, str, int]], list[tuple[str, str, int]]]:
    """Strategic and tactical columns a layer reads, each once: (name, agent table, index)."""
    strategic = layer in ("strategic", "joint")
    tactical = layer in ("tactical", "joint")
    if not (strategic or tactical):
        raise ConfigError(f"unknown layer {layer!r}; use one of {', '.join(LAYERS)}")
    out: tuple[list[tuple[str, str, int]], list[tuple[str, str, int]]] = ([], [])
    for part, agents, prefix, on in ((0, STRATEGIC_AGENTS, "s_", strategic),
                                     (1, TACTICAL_AGENTS, "t_", tactical)):
        seen: set[str] = set()
        for agent in sorted(agents) if on else ():
            for i, name in enumerate(AGENT_COLUMNS[agent]):
                if name not in seen:
                    seen.add(name)
                    out[part].append((name, prefix + agent, i))
    return out


def layer_features(arrays: Mapping[str, np.ndarray], decision_rows: np.ndarray, layer: str,
                   windows: tuple[int, int]) -> tuple[np.ndarray, tuple[str, ...]]:
    """The layer's features at the close of each 5-minute ``decision_rows`` row, and names.

    ``arrays``: the env arrays (:class:`~envs.core.data.MarketArrays`); ``windows``: the
    strategic and tactical window lengths. Reads rows ``<= decision_rows`` of the
    5-minute tables and 30-minute rows closed by then, nothing later.
    """
    rows = np.asarray(decision_rows, dtype=np.int64)
    strat_cols, tact_cols = layer_columns(layer)
    blocks: list[np.ndarray] = []
    names: list[str] = []
    for cols, window, at in ((strat_cols, windows[0], "strategic"),
                             (tact_cols, windows[1], "tactical")):
        if not cols:
            continue
        now = np.asarray(arrays["strategic_index"])[rows] if at == "strategic" else rows
        if len(now) and (now.min() < window - 1 or rows.min() < 0):
            raise ConfigError(f"{at} window of {window} bars incomplete at a decision row; "
                              "pass rows where the env's observations are usable")
        table = np.stack([np.asarray(arrays[t])[:, i] for _, t, i in cols], axis=1)
        lags = np.arange(-window + 1, 1)
        blocks.append(table[now[:, None] + lags].reshape(len(rows), -1))
        names += [f"{n}[t{k}]" if k else f"{n}[t]" for k in lags.tolist() for n, _, _ in cols]
        if at == "strategic":
            blocks.append(np.asarray(arrays["latent"])[now])
            names += [f"regime_mu_{i}" for i in range(LATENT_DIM)]
    if layer == "joint":
        blocks.append(np.asarray(arrays["is_close"])[rows, None].astype(np.float32))
        names.append("strategic_decision")
    return np.concatenate(blocks, axis=1).astype(np.float32), tuple(names)


def collect(env: str, env_config: EnvConfig, split: str) -> ProbeData:
    """Features and targets over the 5-minute rows a backtest of ``env`` executes on ``split``.

    ``env``: an env name, or a layer (its env in :data:`PROBE_ENVS`). The rows are those of
    every tile with ``random_start=False`` (see the module docstring).
    """
    name = PROBE_ENVS.get(env, env)
    cfg = replace(env_config, split=split, random_start=False)  # type: ignore[arg-type]
    cls = env_class(name)
    trading = cls(cfg)
    prepared = prepare(cfg.data, log=lambda _: None)
    if TRUTH not in stored_tables(prepared):
        raise ConfigError(f"probes need the generator's truth (table {TRUTH!r}); the data of "
                          "this config has none: use the built-in synthetic market")
    arrays = trading.market.arrays
    steps = trading.episode_steps
    starts = tile(trading.valid_starts(), steps)
    clock = (starts[:, None] + np.arange(1, steps + 1)[None, :]).ravel()
    close_step = np.asarray(arrays["close_step"]) if cls.STRATEGIC_CLOCK else None
    rows, _ = span_rows(clock, close_step)
    truth = read_truth(prepared.table(TRUTH), np.asarray(arrays["base_ohlc"]),
                       prepared.base.open_time, rows)
    layer = env_layer(trading)
    market = trading.market
    features, columns = layer_features(arrays, rows - 1, layer,
                                       (market.strategic_window, market.tactical_window))
    return ProbeData(name, layer, split, features, columns, truth.unit_positions[layer], truth,
                     market.contract, int(trading.max_position), cfg.initial_equity,
                     (1.0 - cfg.ruin_fraction) * cfg.initial_equity)


def lean(model: ProbeModel, features: np.ndarray) -> np.ndarray:
    """``p(+1) − p(-1)`` per row, in [-1, 1]."""
    p = model.probabilities(features)  # columns in CLASSES order: -1, 0, +1
    return p[:, 2] - p[:, 0]


def positions(leans: np.ndarray, band: float) -> np.ndarray:
    """Unit positions: +1 where the lean exceeds ``band``, -1 below ``-band``, else 0."""
    return np.where(leans > band, 1, np.where(leans < -band, -1, 0)).astype(np.int64)


def rule_positions(model: ProbeModel, band: float | None, features: np.ndarray) -> np.ndarray:
    """Unit positions of a trading rule: the predicted class (``band`` None) or the band."""
    return model.predict(features) if band is None else positions(lean(model, features), band)


def oracle_runs(data: ProbeData) -> dict[str, OracleRun]:
    """The three layer oracles on the data's bars (as the backtest runs them)."""
    return {layer: run_oracle(data.truth, layer, data.contract, data.limit,
                              data.initial_equity, data.ruin_level) for layer in LAYERS}


def trade(data: ProbeData, unit_positions: np.ndarray,
          oracles: Mapping[str, OracleRun] | None = None) -> ProbeRun:
    """Trade ``unit_positions`` × the limit on the data's bars; metrics, expected P&L, capture.

    The path goes through :func:`~algospace.evaluation.oracles.run_oracle` as if it were one
    more oracle, so it is charged, stopped at ruin and scored exactly as the oracles are.
    """
    unit = np.asarray(unit_positions, dtype=np.int64)
    if unit.shape != data.target.shape or not np.isin(unit, (-1, 0, 1)).all():
        raise ConfigError(f"unit positions must be -1, 0 or +1 per row ({len(data.target)} "
                          f"rows); found shape {unit.shape}")
    truth = replace(data.truth, unit_positions={**data.truth.unit_positions, "probe": unit})
    run = run_oracle(truth, "probe", data.contract, data.limit, data.initial_equity,
                     data.ruin_level)
    runs = dict(oracles) if oracles is not None else oracle_runs(data)
    return ProbeRun(run.metrics, run.equity, run.expected_pnl,
                    capture(run.metrics.net_pnl, run.expected_pnl, runs, data.layer))


def select(train: ProbeData, val: ProbeData, *, l2_grid: Sequence[float] = L2_GRID,
           hidden: Iterable[int] = HIDDEN, quantiles: Sequence[float] = BAND_QUANTILES,
           seed: int = 0) -> tuple[ProbeModel, Candidate, tuple[Candidate, ...]]:
    """Fit every (hidden, L2) on ``train``; the model and rule whose trading on ``val``
    expects the most: that model, its candidate and every candidate.

    Each model is traded by the argmax rule, then by the band rule at the ``quantiles`` of
    its validation ``|lean|``, widest band first (no quantiles: the argmax rule only).
    Candidates are tried simplest first (fewer hidden units, stronger L2, argmax, wider
    band); a later one must expect strictly more. A logistic regression starts from the
    previous L2's fit (convex: the same optimum, found sooner); a hidden layer from its
    seeded draw every time (from a strongly penalised fit, whose weights are near zero, it
    would stay at that saddle).
    """
    oracles = oracle_runs(val)
    best: tuple[ProbeModel, Candidate] | None = None
    table: list[Candidate] = []
    for units in hidden:
        previous = None
        for l2 in sorted(l2_grid, reverse=True):
            model = fit_probe(train.features, train.target, l2=l2, hidden=units, seed=seed,
                              start=previous)
            previous = model if units == 0 else None
            loss = log_loss(model, val.features, val.target)
            leans = lean(model, val.features)
            bands = [None, *(float(np.quantile(np.abs(leans), q))
                             for q in sorted(quantiles, reverse=True))]
            for band in bands:
                unit = model.predict(val.features) if band is None else positions(leans, band)
                run = trade(val, unit, oracles)
                candidate = Candidate(units, float(l2), band, run.expected_pnl,
                                      run.capture["expected_capture"], loss)
                table.append(candidate)
                if best is None or candidate.expected_pnl > best[1].expected_pnl:
                    best = (model, candidate)
    if best is None:
        raise ConfigError("probe grid is empty; pass at least one L2 strength and width")
    return best[0], best[1], tuple(table)


def splits(env: str, env_config: EnvConfig, split: str, eval_config: EnvConfig | None
           ) -> tuple[ProbeData, ProbeData, ProbeData]:
    """A probe's train and validation rows, and those it is scored on: ``split`` of
    ``eval_config``'s market when given, else of the training market."""
    train = collect(env, env_config, "train")
    val = collect(env, env_config, "val")
    if eval_config is not None:
        return train, val, collect(env, eval_config, split)
    return train, val, val if split == "val" else collect(env, env_config, split)


def probe(env: str, env_config: EnvConfig, *, split: str = "test",
          l2_grid: Sequence[float] = L2_GRID, hidden: Iterable[int] = HIDDEN,
          seed: int = 0, eval_config: EnvConfig | None = None) -> ProbeResult:
    """The probe of ``env`` (a name or a layer): fit on train, choose the model and its rule
    on val, score ``split`` with both (of ``eval_config``'s market when given: a fresh
    market from the same generator)."""
    train, val, evaluation = splits(env, env_config, split, eval_config)
    model, chosen, table = select(train, val, l2_grid=l2_grid, hidden=hidden, seed=seed)
    unit = rule_positions(model, chosen.band, evaluation.features)
    run = trade(evaluation, unit)
    cap, m = run.capture, run.metrics
    return ProbeResult(evaluation.env, evaluation.layer, split, model.kind, model.l2,
                       chosen.band, chosen.expected_capture, chosen.log_loss,
                       cap["expected_capture"], cap["expected_capture_of_joint_oracle"],
                       cap["capture_of_oracle"], cap["capture_of_joint_oracle"],
                       run.expected_pnl, m.net_pnl, m.sharpe, m.trades,
                       float(np.mean(unit == evaluation.target)), m, table)


def run_probes(env_config: EnvConfig, *, split: str = "test", layers: Iterable[str] = LAYERS,
               l2_grid: Sequence[float] = L2_GRID, hidden: Iterable[int] = HIDDEN,
               seed: int = 0, eval_config: EnvConfig | None = None) -> dict[str, ProbeResult]:
    """Every layer's probe (:data:`PROBE_ENVS`) on ``split``, keyed by layer."""
    return {layer: probe(layer, env_config, split=split, l2_grid=l2_grid,
                         hidden=tuple(hidden), seed=seed, eval_config=eval_config)
            for layer in layers}
