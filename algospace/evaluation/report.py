"""Evaluate a checkpoint on unseen data and write the report a researcher reads.

:func:`evaluate` loads the run's config and actors from a checkpoint, runs the
greedy policy over the chosen split (default ``test``) with
:func:`algospace.evaluation.backtest.backtest`, and writes next to the run
(``<run>/evaluation-<split>/`` unless ``out`` is given):

- ``report.json`` — the split, its dates and bars, the costs assumed, where
  the feature normalisation came from, the agents' metrics, every baseline's
  metrics on the same bars (random: mean and spread over several seeds), a
  bootstrap confidence interval of the Sharpe difference to the best
  baseline, per-agent action counts and monthly returns;
- ``equity.png`` (equity with the drawdown underneath), ``positions.png``
  (price, position and trades over the last few days), ``actions.png``
  (per-agent action distribution), ``monthly.png`` (monthly returns table);
- ``report.html`` — one self-contained page with all of it (images inline,
  opens offline).

The agents are run twice on the same bars: greedily as they are, and through
the two gates of the live decision (DESIGN §6,
:mod:`algospace.inference.gates`: a new position only when the synergy detector
and the agents' MC-dropout consensus agree), with the engine's own decision
code (:class:`algospace.inference.policy.GatedTeam`). The report gives the gated
run's figures beside the plain ones and counts how often each gate closed and
how many trades the gates held back (``gates=None``: the plain run only).

Evaluating on the training split needs ``allow_train=True``; the report says
so. With ``data`` (a CSV of base bars) the agents are evaluated on that file
instead of the data they trained on; its features are standardised with the
statistics of that file's own training split (stated in the report).
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from algospace.config import STRATEGIC_AGENTS, SYNTHETIC_SYMBOL, DataConfig
from algospace.errors import ConfigError
from algospace.evaluation.backtest import (
    Backtest,
    Observations,
    Policy,
    backtest,
    greedy_policy,
    load_actors,
)
from algospace.evaluation.metrics import (
    ANNUALISATION,
    Metrics,
    baseline_equity,
    daily_pnl,
    daily_returns,
    to_dict,
)
from algospace.evaluation.oracles import CAPTURE_KEYS
from algospace.evaluation.stats import deflated_sharpe_ratio
from algospace.inference.gates import GateConfig
from envs.core.layout import RISK_CONTRACTS, STRATEGIC_ACTIONS, TACTICAL_ACTIONS

Log = Callable[[str], None]
COMPARED = ("flat", "buy_and_hold", "random", "rule")
"""Baselines the agents are compared with (the oracle is a ceiling, not a baseline)."""


@dataclass(frozen=True)
class EvaluateConfig:
    """What to evaluate, on which data, and where the report goes."""

    checkpoint: str
    """A training checkpoint (``TrainResult.checkpoint``)."""
    split: Literal["train", "val", "test"] = "test"
    """Split of the data to run on."""
    data: str | None = None
    """A CSV of base bars to evaluate on instead of the run's own data."""
    out: str | None = None
    """Report directory; default ``<run>/evaluation-<split>`` next to the checkpoint."""
    allow_train: bool = False
    """Allow the training split (in-sample figures; the report says so)."""
    random_seeds: int = 5
    """Seeds of the random baseline (its figures are averaged over them)."""
    bootstrap: int = 2000
    """Resamples of the Sharpe-difference confidence interval."""
    window_days: int = 3
    """Trading days shown in the positions plot (the last ones of the split)."""
    seed: int = 0
    """Seed of the random baseline's first draw and of the bootstrap."""
    gates: GateConfig | None = field(default_factory=GateConfig)
    """The two gates of the gated run (None: no gated run)."""
    mc_passes: int = 50
    """MC-dropout passes per decision of the gated run (gate 2's consensus)."""
    gate_seed: int = 0
    """Seeds the gated run's dropout masks (with the clock step), as ``decide --seed``."""
    selection: str | None = None
    """``selection.json`` of the run (what model selection looked at, for the Deflated
    Sharpe Ratio); default: the one next to the checkpoint's folder, if any."""

    def __post_init__(self) -> None:
        if self.mc_passes < 1:
            raise ConfigError(f"mc_passes must be >= 1 (gate 2 reads the MC consensus), got "
                              f"{self.mc_passes!r}")
        if self.gate_seed < 0:
            raise ConfigError(f"gate_seed must be >= 0, got {self.gate_seed!r}")
        if self.random_seeds < 1:
            raise ConfigError(f"random_seeds must be >= 1, got {self.random_seeds!r}")
        if self.bootstrap < 100:
            raise ConfigError(f"bootstrap must be >= 100 resamples, got {self.bootstrap!r}")
        if self.window_days < 1:
            raise ConfigError(f"window_days must be >= 1, got {self.window_days!r}")


def evaluate(cfg: EvaluateConfig, log: Log = print) -> dict[str, Any]:
    """Run the evaluation of ``cfg`` and write the report; returns the report's content."""
    from algospace.training.train import load_train_config

    if cfg.split == "train" and not cfg.allow_train:
        raise ConfigError("evaluating on the training split gives in-sample figures; use "
                          "--split test (or val), or pass --allow-train-split to do it anyway")
    train_cfg = load_train_config(cfg.checkpoint)
    data = _data(train_cfg.env_config.data, cfg.data)
    env_cfg = replace(train_cfg.env_config, data=data, split=cfg.split, random_start=False)
    modules = load_actors(cfg.checkpoint)
    counts: dict[str, Counter[int]] = {}
    policy = _recording(greedy_policy(modules), counts)
    log(f"[evaluate] {train_cfg.env} {cfg.split} split of {_describe(data)}")
    bt = backtest(train_cfg.env, env_cfg, policy, seed=cfg.seed, progress=log)
    gated = None
    if cfg.gates is not None:
        from algospace.inference.policy import GatedTeam

        log(f"[evaluate] the same bars through the two gates (threshold {cfg.gates.threshold}, "
            f"{cfg.mc_passes} MC passes)")
        team = GatedTeam(modules, mc_passes=cfg.mc_passes, gates=cfg.gates, seed=cfg.gate_seed)
        gated = backtest(train_cfg.env, env_cfg, team, seed=cfg.seed, progress=log)
    out = _out_dir(cfg)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        report = _report(cfg, train_cfg, env_cfg, bt, counts, tmp, gated)
        (tmp / "report.json").write_text(json.dumps(report, indent=2, default=_json))
        _html(report, tmp)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    report["out"] = str(out)
    log(f"[evaluate] wrote {out / 'report.html'}")
    return report


# ------------------------------------------------------------------ inputs
def _data(trained_on: DataConfig, csv: str | None) -> DataConfig:
    """The run's data, or a CSV with the run's contract settings."""
    if csv is None:
        return trained_on
    path = Path(csv).expanduser()
    if not path.is_file():
        raise ConfigError(f"--data {csv}: no such file; pass a CSV of bars "
                          "(Timestamp,Open,High,Low,Close,Volume)")
    symbol = trained_on.symbol or (SYNTHETIC_SYMBOL if trained_on.source == "synthetic"
                                   else None)
    return DataConfig(source="csv", path=str(path.resolve()), symbol=symbol,
                      contract=dict(trained_on.contract), timestamps=trained_on.timestamps,
                      dayfirst=trained_on.dayfirst,
                      strategic_minutes=trained_on.strategic_minutes,
                      split=trained_on.split, cache_dir=trained_on.cache_dir)


def _describe(data: DataConfig) -> str:
    """Short name of the data."""
    return data.synthetic.describe() if data.source == "synthetic" else str(data.path)


def _recording(policy: Policy, counts: dict[str, Counter[int]]) -> Policy:
    """``policy``, counting each agent's actions when it decides."""
    def act(obs: Observations, decision: bool) -> dict[str, Any]:
        actions = policy(obs, decision)
        for agent, action in actions.items():
            if agent in STRATEGIC_AGENTS and not decision:
                continue
            key = int(np.asarray(action).reshape(-1)[0])  # risk: its contracts head
            counts.setdefault(agent, Counter())[key] += 1
        return actions

    return act


def _out_dir(cfg: EvaluateConfig) -> Path:
    """Where the report goes."""
    if cfg.out is not None:
        return Path(cfg.out).expanduser().resolve()
    return Path(cfg.checkpoint).expanduser().resolve().parent / f"evaluation-{cfg.split}"


# ------------------------------------------------------------------ figures
def _report(cfg: EvaluateConfig, train_cfg: Any, env_cfg: Any, bt: Backtest,
            counts: dict[str, Counter[int]], folder: Path, gated: Backtest | None = None
            ) -> dict[str, Any]:
    """Every figure of the report (and the PNGs, written into ``folder``)."""
    from algospace.features.pipeline import prepare

    prepared = prepare(env_cfg.data, log=lambda _: None)
    contract = bt.contract
    initial = env_cfg.initial_equity
    size = bt.position_limit
    rule_signal = bt.rule_signal
    common = {"size": size, "initial_equity": initial, "ruin_level": bt.ruin_level}
    curves = {name: baseline_equity(name, bt.bars, contract, seed=cfg.seed,
                                    rule_signal=rule_signal, **common)
              for name in ("flat", "buy_and_hold", "rule")}
    randoms = [baseline_equity("random", bt.bars, contract, seed=cfg.seed + k, **common)
               for k in range(cfg.random_seeds)]
    curves["random"] = randoms[0]
    baselines = {name: to_dict(m) for name, (_, m) in curves.items()}
    random_sharpes = [m.sharpe for _, m in randoms]
    baselines["random"]["sharpe_mean_over_seeds"] = float(np.mean(random_sharpes))
    baselines["random"]["sharpe_sd_over_seeds"] = float(np.std(random_sharpes, ddof=1)) \
        if len(random_sharpes) > 1 else 0.0
    baselines["random"]["seeds"] = cfg.random_seeds
    best = max(COMPARED, key=lambda n: bt.baselines[n].sharpe if n != "random"
               else float(np.mean(random_sharpes)))
    ci = sharpe_difference_ci(bt.equity, curves[best][0], initial, cfg.bootstrap, cfg.seed)
    pnl_ci = pnl_difference_ci(bt.equity, curves[best][0], initial, cfg.bootstrap, cfg.seed)
    splits = prepared.splits
    lo, hi = splits.range(env_cfg.split)
    meta = prepared.meta
    agents = {**to_dict(bt.metrics), **{k: bt.capture[k] for k in CAPTURE_KEYS
                                        if k in bt.capture}}
    agents["expected_pnl"] = bt.capture.get("expected_pnl", math.nan)
    selection = _selection(cfg)
    agents["deflated_sharpe"] = deflated_sharpe_ratio(
        daily_returns(bt.equity, initial_equity=initial).to_numpy(),
        sr_variance=selection["sharpe_variance"], n_trials=selection["effective_trials"])
    report: dict[str, Any] = {
        "checkpoint": str(Path(cfg.checkpoint).resolve()),
        "env": train_cfg.env, "algorithm": train_cfg.algorithm,
        "data": _describe(env_cfg.data),
        "data_is_training_data": cfg.data is None,
        "split": env_cfg.split,
        "in_sample": env_cfg.split == "train" and cfg.data is None,
        "period": {"first_bar": str(bt.equity.index[0]), "last_bar": str(bt.equity.index[-1]),
                   "bars": len(bt.equity), "trading_days": bt.metrics.days,
                   "split_rows_5min": [int(lo), int(hi)], "tiles": bt.tiles,
                   "ruined_tiles": bt.ruined_tiles},
        "costs_assumed": {"symbol": contract.symbol, "point_value": contract.point_value,
                          "tick_size": contract.tick_size,
                          "commission_per_contract_per_side": contract.commission,
                          "slippage_ticks_per_side": contract.slippage_ticks},
        "normalisation": _normalisation_note(cfg, meta),
        "annualisation": ANNUALISATION,
        "policy": "greedy (most likely action of each agent, dropout off)",
        "max_position": size, "initial_equity": initial,
        "sizing": _sizing(env_cfg, meta, contract, size),
        "ruin_level": bt.ruin_level,
        "selection": selection,
        "agents": agents,
        "baselines": baselines,
        "best_baseline": best,
        "sharpe_difference_vs_best": ci,
        "pnl_difference_vs_best": pnl_ci,
        "actions": _action_table(counts),
        "monthly_returns": _monthly(bt.equity, initial),
    }
    if bt.oracles:
        report["oracles"] = {layer: {**to_dict(run.metrics), "expected_pnl": run.expected_pnl}
                             for layer, run in bt.oracles.items()}
        report["oracle_layer"] = bt.layer
    if gated is not None:
        assert cfg.gates is not None and gated.gate_counts is not None
        report["gated"] = {
            "policy": "greedy, a new position only when both gates are open (the live "
                      "decision of algospace decide)",
            "gates": {"threshold": cfg.gates.threshold,
                      "regime_adjustment": cfg.gates.regime_adjustment,
                      "drawdown_adjustment": cfg.gates.drawdown_adjustment,
                      "max_threshold": cfg.gates.max_threshold,
                      "mc_passes": cfg.mc_passes, "seed": cfg.gate_seed},
            "gate_counts": dict(gated.gate_counts),
            "metrics": to_dict(gated.metrics),
        }
    _plots(bt, curves, counts, report, folder, cfg.window_days,
           None if gated is None else gated.equity)
    return report


def _normalisation_note(cfg: EvaluateConfig, meta: dict[str, Any]) -> str:
    """Where the feature statistics came from."""
    fitted = meta.get("normalisation_fitted_on", "unknown")
    if cfg.data is None:
        return (f"features standardised with statistics fitted on the {fitted} split of the "
                "same data (nothing from the evaluated period)")
    return (f"features standardised with statistics fitted on the {fitted} split of the "
            f"evaluated file {cfg.data} itself (not on the data the agents trained on)")


def _selection(cfg: EvaluateConfig) -> dict[str, Any]:
    """What model selection looked at (``selection.json``), or one trial when unknown."""
    path = Path(cfg.selection) if cfg.selection else \
        Path(cfg.checkpoint).expanduser().resolve().parent / "selection.json"
    if path.is_file():
        found = json.loads(path.read_text())
        return {**found, "source": str(path)}
    return {"candidates": 1, "effective_trials": 1.0, "sharpe_variance": 0.0,
            "note": "no selection.json next to the checkpoint: the DSR counts one trial "
                    "(it then equals the PSR)"}


def _sizing(env_cfg: Any, meta: dict[str, Any], contract: Any, size: int) -> dict[str, Any]:
    """How the position limit was set, and the leverage it allows."""
    from algospace.market.sizing import contract_of, leverage

    price = float(meta.get("reference_price", math.nan))
    return {"position_limit": size, "leverage_cap": env_cfg.leverage_cap,
            "contract": contract.symbol, "contract_note": contract_of(meta, env_cfg)[1],
            "limit_from": "env.max_position" if env_cfg.max_position else
            "leverage cap at the training split's highest close",
            "reference_price": price,
            "leverage_at_reference_price": leverage(size, env_cfg.initial_equity, price,
                                                    contract.point_value)}


def pnl_difference_ci(agent: pd.Series, other: pd.Series, initial: float, resamples: int,
                      seed: int) -> dict[str, Any]:
    """Paired bootstrap over trading days of the mean daily dollar P&L difference, 95 %."""
    a = daily_pnl(agent, initial_equity=initial).to_numpy()
    b = daily_pnl(other, initial_equity=initial).to_numpy()
    d = a - b
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(resamples, len(d)))].mean(axis=1)
    return {"mean_daily_usd": float(d.mean()), "low_2.5": float(np.percentile(means, 2.5)),
            "high_97.5": float(np.percentile(means, 97.5)),
            "share_above_0": float(np.mean(means > 0)), "resamples": resamples,
            "days": len(d), "method": "paired iid bootstrap over trading days"}


def sharpe_difference_ci(agent: pd.Series, other: pd.Series, initial: float, resamples: int,
                         seed: int) -> dict[str, Any]:
    """Paired bootstrap over trading days of Sharpe(agent) - Sharpe(other), 95 % interval.

    Days are resampled with replacement (the same days for both curves), which keeps the
    day-to-day correlation of the two strategies but not serial correlation.
    """
    a = daily_returns(agent, initial_equity=initial).to_numpy()
    b = daily_returns(other, initial_equity=initial).to_numpy()
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), size=(resamples, len(a)))

    def sharpe(r: np.ndarray) -> np.ndarray:
        sd = r.std(axis=1, ddof=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.where(sd > 0, r.mean(axis=1) / sd, 0.0)
        return out * math.sqrt(252)

    diff = sharpe(a[idx]) - sharpe(b[idx])
    point = float(sharpe(a[None])[0] - sharpe(b[None])[0])
    return {"point": point, "low_2.5": float(np.percentile(diff, 2.5)),
            "high_97.5": float(np.percentile(diff, 97.5)),
            "share_above_0": float(np.mean(diff > 0)), "resamples": resamples,
            "days": len(a), "method": "paired iid bootstrap over trading days"}


def _action_table(counts: dict[str, Counter[int]]) -> dict[str, dict[str, int]]:
    """Per agent: how often each action was chosen (risk: its contracts head)."""
    table = {}
    for agent in sorted(counts):
        names: tuple[Any, ...]
        if agent in STRATEGIC_AGENTS:
            names = STRATEGIC_ACTIONS
        elif agent == "risk":
            names = tuple(f"{n}_contracts" for n in RISK_CONTRACTS)
        else:
            names = TACTICAL_ACTIONS
        table[agent] = {str(names[k]): int(counts[agent].get(k, 0)) for k in range(len(names))}
    return table


def _monthly(equity: pd.Series, initial: float) -> dict[str, dict[str, float]]:
    """Dollar P&L per calendar month over the capital base: {year: {month: return}}."""
    daily = daily_returns(equity, initial_equity=initial)
    grouped = daily.groupby([daily.index.year, daily.index.month]).sum()
    out: dict[str, dict[str, float]] = {}
    for (year, month), value in grouped.items():
        out.setdefault(str(year), {})[f"{month:02d}"] = float(value)
    return out


def _json(value: Any) -> Any:
    """JSON for numpy scalars and non-finite floats."""
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


# ------------------------------------------------------------------- plots
def _equity_plot(bt: Backtest, curves: dict[str, tuple[pd.Series, Metrics]],
                 report: dict[str, Any], folder: Path, gated: pd.Series | None) -> None:
    """``equity.png``: the agents' equity (and the gated run's), the baselines and the
    oracle, with the agents' drawdown underneath."""
    import matplotlib.pyplot as plt

    initial = report["initial_equity"]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(13, 6.5), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 1]})
    x = np.arange(len(bt.equity))
    top.plot(x, bt.equity.to_numpy(), label="agents", lw=1.6)
    shown = [bt.equity.to_numpy(), *(c.to_numpy() for c, _ in curves.values())]
    if gated is not None:  # same bars, unless a tile was ruined in one run only
        on_bars = gated[~gated.index.duplicated()].reindex(bt.equity.index).to_numpy()
        top.plot(x, on_bars, label="agents, gated", lw=1.3)
        shown.append(on_bars)
    for name, (curve, _) in curves.items():
        top.plot(x, curve.to_numpy(), label=_label(name), lw=0.9, alpha=0.8)
    low, high = min(map(np.nanmin, shown)), max(map(np.nanmax, shown))
    for layer, run in bt.oracles.items():
        oracle = run.equity.reindex(bt.equity.index, method="ffill").to_numpy()
        label = f"{layer} oracle"
        off_scale = np.nanmax(oracle) - initial > 3 * max(high - low, 1.0)
        if off_scale:  # keep the agents and baselines readable; say where the oracle ends
            label += f", off the scale: ends at ${oracle[-1]:,.0f}"
        top.plot(x, oracle, label=label, ls="--", lw=0.9)
        if off_scale:
            pad = 0.08 * (high - low)
            top.set_ylim(low - pad, high + pad)
    if bt.ruin_level > 0 and low < initial - 0.5 * (initial - bt.ruin_level):
        top.axhline(bt.ruin_level, color="tab:red", lw=0.6, ls=":", label="ruin level")
    top.axhline(initial, color="grey", lw=0.5)
    top.set(ylabel="equity ($)", title=f"{report['env']} — {report['split']} split, "
            f"{report['period']['trading_days']} trading days, after costs")
    top.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    values = bt.equity.to_numpy()
    peak = np.maximum.accumulate(np.concatenate([[initial], values]))[1:]
    bottom.fill_between(x, (values - peak) / initial * 100, 0, color="tab:red", alpha=0.5)
    bottom.set(ylabel="drawdown (% of capital)", xlabel="trading day")
    _day_ticks(bottom, bt.equity.index)
    fig.tight_layout()
    fig.savefig(folder / "equity.png", dpi=100)
    plt.close(fig)


def _plots(bt: Backtest, curves: dict[str, tuple[pd.Series, Metrics]],
           counts: dict[str, Counter[int]], report: dict[str, Any], folder: Path,
           window_days: int, gated: pd.Series | None = None) -> None:
    """Write the four PNGs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _equity_plot(bt, curves, report, folder, gated)

    # Price, position and trades over the last days.
    days = pd.DatetimeIndex(bt.equity.index + pd.Timedelta(hours=6)).normalize()
    keep = days >= np.unique(days)[-min(window_days, len(np.unique(days)))]
    idx = np.flatnonzero(keep)
    fig, ax = plt.subplots(figsize=(11, 4.5))
    close = bt.bars["close"].to_numpy()[idx]
    ax.plot(idx, close, color="black", lw=1.0, label="close")
    pos = bt.positions[idx]
    change = np.diff(np.concatenate([[bt.positions[idx[0] - 1] if idx[0] else 0], pos]))
    ax.scatter(idx[change > 0], close[change > 0], marker="^", color="tab:green",
               label="buy", zorder=3)
    ax.scatter(idx[change < 0], close[change < 0], marker="v", color="tab:red",
               label="sell", zorder=3)
    ax.set(ylabel="price", xlabel="bar", title=f"last {window_days} trading days: price, "
           "trades and position")
    twin = ax.twinx()
    twin.step(idx, pos, where="post", color="tab:blue", alpha=0.5, label="position")
    twin.set_ylabel("position (contracts)")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / "positions.png", dpi=100)
    plt.close(fig)

    # Action distribution per agent.
    table = report["actions"]
    n = max(1, len(table))
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.4 * rows), squeeze=False)
    for ax, agent in zip(axes.flat, table, strict=False):
        names = list(table[agent])
        total = max(1, sum(table[agent].values()))
        ax.bar(range(len(names)), [table[agent][k] / total for k in names])
        ax.set_xticks(range(len(names)), [k.lower().replace("_", " ") for k in names],
                      fontsize=7, rotation=45, ha="right")
        ax.set(title=agent, ylim=(0, 1))
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle("share of decisions per action")
    fig.tight_layout()
    fig.savefig(folder / "actions.png", dpi=100)
    plt.close(fig)

    # Monthly returns table.
    monthly = report["monthly_returns"]
    years = sorted(monthly)
    grid = np.full((len(years), 12), np.nan)
    for i, year in enumerate(years):
        for month, value in monthly[year].items():
            grid[i, int(month) - 1] = value * 100
    fig, ax = plt.subplots(figsize=(11, 0.6 + 0.5 * len(years)))
    limit = np.nanmax(np.abs(grid)) if np.isfinite(grid).any() else 1.0
    ax.imshow(grid, cmap="RdYlGn", vmin=-limit, vmax=limit, aspect="auto")
    for i in range(len(years)):
        for j in range(12):
            if np.isfinite(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.1f}%", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(12), ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep",
                              "Oct", "Nov", "Dec"])
    ax.set_yticks(range(len(years)), years)
    ax.set_title("monthly P&L over the capital base")
    fig.tight_layout()
    fig.savefig(folder / "monthly.png", dpi=100)
    plt.close(fig)


def _label(name: str) -> str:
    """Display name of a strategy column."""
    return {"rule": "synergy rule"}.get(name, name.replace("_", " "))


def _day_ticks(ax: Any, index: pd.DatetimeIndex) -> None:
    """Label a bar-number axis with the first bar of some trading days."""
    days = pd.DatetimeIndex(index + pd.Timedelta(hours=6)).normalize()
    first = np.flatnonzero(np.r_[True, days[1:] != days[:-1]])
    step = max(1, len(first) // 8)
    ticks = first[::step]
    ax.set_xticks(ticks, [d.strftime("%Y-%m-%d") for d in days[ticks]], fontsize=8,
                  rotation=20)


# -------------------------------------------------------------------- html
_ROWS = (("net_pnl", "net P&L ($)", "{:,.0f}"),
         ("total_return", "net P&L / capital", "{:.2%}"),
         ("annual_return", "annual return (× 252 days)", "{:.2%}"),
         ("sharpe", "Sharpe (daily)", "{:.2f}"), ("sortino", "Sortino (daily)", "{:.2f}"),
         ("bar_sharpe", "Sharpe (bars)", "{:.2f}"), ("calmar", "Calmar", "{:.2f}"),
         ("max_drawdown", "max drawdown", "{:.2%}"),
         ("max_drawdown_days", "drawdown duration (days)", "{:d}"),
         ("trades", "trades", "{:d}"), ("win_rate", "win rate (per trade)", "{:.1%}"),
         ("profit_factor", "profit factor", "{:.2f}"), ("avg_trade", "average trade ($)",
                                                        "{:,.0f}"),
         ("turnover", "turnover (contracts/day)", "{:.1f}"), ("exposure", "exposure", "{:.1%}"),
         ("costs", "costs paid ($)", "{:,.0f}"),
         ("probabilistic_sharpe", "PSR (Sharpe > 0)", "{:.2f}"),
         ("ruin_time", "ruined at", "{}"))


def _fmt(value: Any, pattern: str) -> str:
    """A figure for the table ('—' when missing or not finite)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—" if value is None or math.isnan(value) else ("∞" if value > 0 else "−∞")
    try:
        return pattern.format(value)
    except (ValueError, TypeError):
        return str(value)


def _oracle_html(report: dict[str, Any]) -> str:
    """The oracles' dollar P&L and the agents' capture of them (built-in market)."""
    if "oracles" not in report:
        return ""
    a = report["agents"]
    rows = "".join(
        f"<tr><td>{layer}</td><td>{_fmt(o['net_pnl'], '{:,.0f}')}</td>"
        f"<td>{_fmt(o['expected_pnl'], '{:,.0f}')}</td><td>{_fmt(o['sharpe'], '{:.2f}')}</td>"
        f"<td>{o['trades']}</td></tr>" for layer, o in report["oracles"].items())
    return (f"<p><b>Oracles</b> (know the planted drifts; same bars, limit, costs and ruin "
            f"rule). The agents' net P&L is <b>{_fmt(a.get('capture_of_oracle'), '{:.1%}')}"
            f"</b> of the {report['oracle_layer']} oracle's and "
            f"{_fmt(a.get('capture_of_joint_oracle'), '{:.1%}')} of the joint oracle's; in "
            f"expectation (planted drifts only, free of this draw's noise) "
            f"<b>{_fmt(a.get('expected_capture'), '{:.1%}')}</b> and "
            f"{_fmt(a.get('expected_capture_of_joint_oracle'), '{:.1%}')}. Deflated Sharpe "
            f"ratio {_fmt(a.get('deflated_sharpe'), '{:.2f}')} "
            f"({report['selection']['effective_trials']:.1f} effective trials).</p>"
            f"<table><tr><th>oracle</th><th>net P&L ($)</th><th>expected net P&L ($)</th>"
            f"<th>Sharpe</th><th>trades</th></tr>{rows}</table>")


def _html(report: dict[str, Any], folder: Path) -> None:
    """The self-contained report page (images embedded)."""
    gated = report.get("gated")
    columns = ["agents", *(["agents, gated"] if gated else []), *report["baselines"]]
    head = "".join(f"<th>{html.escape(_label(c))}</th>" for c in columns)
    body = []
    for key, label, pattern in _ROWS:
        cells = [_fmt(report["agents"].get(key), pattern)]
        if gated:
            cells.append(_fmt(gated["metrics"].get(key), pattern))
        cells += [_fmt(report["baselines"][b].get(key), pattern) for b in report["baselines"]]
        body.append(f"<tr><td>{label}</td>" + "".join(f"<td>{c}</td>" for c in cells)
                    + "</tr>")
    ci = report["sharpe_difference_vs_best"]
    period = report["period"]
    costs = report["costs_assumed"]
    random = report["baselines"]["random"]
    warn = ("<p class='warn'>In-sample: these figures are on the training split.</p>"
            if report["in_sample"] else "")
    oracle = _oracle_html(report)

    gates = ""
    if gated:
        g, n = gated["gates"], gated["gate_counts"]
        gates = (f"<p><b>Two-gate decision</b> (the live decision of <code>algospace "
                 f"decide</code>; threshold {g['threshold']:g}, {g['mc_passes']} MC passes): "
                 f"gate 1 (synergy) closed at {n['synergy_closed']:,} and gate 2 (MC "
                 f"consensus) at {n['consensus_closed']:,} of {n['decisions']:,} decisions; "
                 f"the gates held back {n['held_back']:,} trades. Gated: Sharpe "
                 f"{gated['metrics']['sharpe']:.2f}, net P&L "
                 f"${gated['metrics']['net_pnl']:,.0f}, {gated['metrics']['trades']} "
                 "trades (column <i>agents, gated</i>).</p>")

    def img(name: str, alt: str) -> str:
        data = base64.b64encode((folder / name).read_bytes()).decode("ascii")
        return f"<img alt='{alt}' src='data:image/png;base64,{data}'>"

    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>AlgoSpace evaluation — {report['env']}</title>
<style>body{{font-family:sans-serif;max-width:1150px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:3px 8px;
text-align:right}}td:first-child{{text-align:left}}img{{max-width:100%;margin:0.5em 0}}
.warn{{color:#b00;font-weight:bold}}code{{background:#f3f3f3}}</style></head><body>
<h1>Evaluation: {html.escape(report['env'])} ({html.escape(report['algorithm'])})</h1>
{warn}
<p><b>Data</b>: {html.escape(report['data'])}, <b>{report['split']}</b> split —
{period['first_bar']} to {period['last_bar']}, {period['bars']:,} bars,
{period['trading_days']} trading days, {period['tiles']} episode tiles
({period['ruined_tiles']} ended by ruin).<br>
<b>Costs</b>: {costs['symbol']} ${costs['point_value']:g}/point, commission
${costs['commission_per_contract_per_side']:g} and {costs['slippage_ticks_per_side']:g}
tick(s) slippage per contract per side; up to {report['max_position']} contracts
(leverage cap {report['sizing']['leverage_cap']:g}× of ${report['initial_equity']:,.0f} at
{report['sizing']['reference_price']:,.2f}, the training split's highest close); every
strategy is flattened for good when its equity falls to ${report['ruin_level']:,.0f}.<br>
<b>Normalisation</b>: {html.escape(report['normalisation'])}.<br>
<b>Policy</b>: {html.escape(report['policy'])}. <b>Annualisation</b>:
{html.escape(report['annualisation'])}.</p>
{oracle}
<p>Daily P&L of the agents minus the best baseline (<b>{report['best_baseline']}</b>):
${report['pnl_difference_vs_best']['mean_daily_usd']:,.0f} a day, 95 % interval
[${report['pnl_difference_vs_best']['low_2.5']:,.0f},
${report['pnl_difference_vs_best']['high_97.5']:,.0f}]. Sharpe difference:
{ci['point']:.2f}, 95 % interval [{ci['low_2.5']:.2f}, {ci['high_97.5']:.2f}]
({ci['method']}, {ci['resamples']} resamples). Random baseline: Sharpe
{random['sharpe_mean_over_seeds']:.2f} ± {random['sharpe_sd_over_seeds']:.2f} over
{random['seeds']} seeds (the table shows the first seed).</p>
{gates}
<table><tr><th></th>{head}</tr>{''.join(body)}</table>
{img('equity.png', 'equity and drawdown')}
{img('positions.png', 'price, trades and position')}
{img('actions.png', 'action distribution')}
{img('monthly.png', 'monthly returns')}
<p>Checkpoint: <code>{html.escape(report['checkpoint'])}</code>. Figures in
<code>report.json</code>.</p></body></html>
"""
    (folder / "report.html").write_text(page, encoding="utf-8")
