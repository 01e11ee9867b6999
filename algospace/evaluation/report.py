"""Evaluate a checkpoint on unseen data and write the report a researcher reads.

:func:`evaluate` loads the run's config and actors from a checkpoint, runs the
greedy policy over the chosen split (default ``test``) with
:func:`algospace.evaluation.backtest.backtest`, and writes the report into
``out``, or by default into ``<run>/evaluation-<split>/`` (``<run>``: the run folder holding
``summary.json`` above the checkpoint; a checkpoint outside a run: next to it) — never over
an earlier report: when that folder exists (the run's own test evaluation, say) the report
goes to ``evaluation-<split>-2`` (``-3``, …), first free at the rename (:func:`report_dir`):

- ``report.json`` — the split, its dates and bars, the costs assumed, where
  the feature normalisation came from, the agents' metrics, every baseline's
  metrics on the same bars (random: mean and spread over several seeds), a
  bootstrap confidence interval of the Sharpe difference to the best
  baseline, per-agent action counts, monthly returns, the cost sensitivity
  (:mod:`algospace.evaluation.costs`) and the P&L attribution
  (:mod:`algospace.evaluation.attribution`);
- ``equity.png`` (equity with the drawdown underneath), ``positions.png``
  (price, position and trades over the last few days), ``actions.png``
  (per-agent action distribution), ``monthly.png`` (monthly returns table),
  ``costs.png`` (net P&L against the cost multiple), ``hours.png`` (net P&L per hour
  and weekday);
- ``report.html`` — one self-contained page with all of it (images inline,
  opens offline).

The figures are drawn by :mod:`algospace.evaluation.plots`, the page by
:mod:`algospace.evaluation.page`, the bootstrap intervals computed by
:mod:`algospace.evaluation.bootstrap`; the folder appears whole or not at all.

The agents are run twice on the same bars: greedily as they are, and through
the two gates of the live decision (DESIGN §6,
:mod:`algospace.inference.gates`: a new position only when the synergy detector
and the agents' MC-dropout consensus agree), with the engine's own decision
code (:class:`algospace.inference.policy.GatedTeam`). The report gives the gated
run's figures beside the plain ones and counts how often each gate closed and
how many trades the gates held back (``gates=None``: the plain run only). With the gated
run comes the uncertainty study of :mod:`algospace.evaluation.uncertainty`: the calibration
of the MC consensus (``calibration.png``, a reliability plot, and a table), and — with
``gate_grid`` on a test report — the gates chosen on the validation split (gate 1 enforced
or recorded only, gate 2's threshold from the grid, the adjustments), the gated team set
beside the ungated one.

Progress: the backtest's per-tile lines only with ``verbose``; otherwise at most one
line every :data:`PROGRESS_EVERY` seconds, and each run ends with one line counting its
tiles and steps (a run's final evaluation keeps its console as quiet).

Evaluating on the training split needs ``allow_train=True``; the report says
so. With ``data`` (a CSV of base bars) the agents are evaluated on that file
instead of the data they trained on; its features are standardised with the
statistics of that file's own training split (stated in the report).
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from algospace.config import STRATEGIC_AGENTS, DataConfig
from algospace.errors import ConfigError
from algospace.evaluation.attribution import attribution, regime_labels
from algospace.evaluation.backtest import (
    Backtest,
    Observations,
    Policy,
    backtest,
    greedy_policy,
)
from algospace.evaluation.baselines import baseline_equity
from algospace.evaluation.bootstrap import pnl_difference_ci, sharpe_difference_ci
from algospace.evaluation.costs import cost_sensitivity
from algospace.evaluation.gate_choice import setting
from algospace.evaluation.metrics import (
    ANNUALISATION,
    daily_returns,
    to_dict,
)
from algospace.evaluation.oracles import CAPTURE_KEYS
from algospace.evaluation.own_data import csv_env_config
from algospace.evaluation.page import write_html
from algospace.evaluation.plots import write_plots
from algospace.evaluation.stats import deflated_sharpe_ratio
from algospace.evaluation.uncertainty import Study, uncertainty_study
from algospace.files import atomic_dir, numbered, publish_numbered
from algospace.inference.gates import GateConfig
from envs.core.layout import RISK_CONTRACTS, STRATEGIC_ACTIONS, TACTICAL_ACTIONS

Log = Callable[[str], None]
COMPARED = ("flat", "buy_and_hold", "random", "rule")
"""Baselines the agents are compared with (the oracle is a ceiling, not a baseline)."""
RUN_SUMMARY = "summary.json"
"""The file that marks a run folder (``algospace.tune.plan.SUMMARY``; tested equal)."""
PROGRESS_EVERY = 10.0
"""Seconds between the backtest's progress lines without ``verbose``."""


@dataclass(frozen=True)
class EvaluateConfig:
    """What to evaluate, on which data, and where the report goes."""

    checkpoint: str
    """A training checkpoint (``TrainResult.checkpoint``)."""
    split: Literal["train", "val", "test"] = "test"
    """Split of the data to run on."""
    data: str | None = None
    """A CSV of base bars to evaluate on instead of the run's own data (encoded with the
    checkpoint's own regime detector where the agents read its latents,
    :mod:`algospace.evaluation.own_data`)."""
    symbol: str | None = None
    """The contract of ``data``; default: the one its file name names, else the checkpoint's."""
    out: str | None = None
    """Report directory (replaced if it exists); default: see :func:`report_dir`."""
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
    gate_grid: tuple[float, ...] | None = None
    """Gate 2's thresholds to choose from on the validation split, with gate 1 enforced
    or not and then the adjustments (a test report only;
    :mod:`algospace.evaluation.gate_choice`); None: ``gates`` as given."""
    selection: str | None = None
    """``selection.json`` of the run (what model selection looked at, for the Deflated
    Sharpe Ratio); default: the one next to the checkpoint's folder or in its run folder."""
    verbose: bool = False
    """Log every progress line of the backtests (default: one every ~10 s at most)."""

    def __post_init__(self) -> None:
        if self.symbol is not None and self.data is None:
            raise ConfigError("--symbol names the contract of --data; give --data FILE too "
                              "(the run's own data keeps its contract)")
        if self.mc_passes < 1:
            raise ConfigError(f"mc_passes must be >= 1 (gate 2 reads the MC consensus), got "
                              f"{self.mc_passes!r}")
        if self.gate_grid is not None and (not self.gate_grid or not all(
                0.0 <= t <= 1.0 for t in self.gate_grid)):
            raise ConfigError(f"gate_grid must hold thresholds in [0, 1], got "
                              f"{self.gate_grid!r}")
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
    from algospace.training.checkpoint import load_actors, load_train_config

    if cfg.split == "train" and not cfg.allow_train:
        raise ConfigError("evaluating on the training split gives in-sample figures; use "
                          "--split test (or val), or pass --allow-train-split to do it anyway")
    train_cfg = load_train_config(cfg.checkpoint)
    env_cfg = train_cfg.env_config if cfg.data is None else \
        csv_env_config(cfg.checkpoint, train_cfg.env_config, cfg.data, cfg.symbol, log)
    data = env_cfg.data
    env_cfg = replace(env_cfg, split=cfg.split, random_start=False)
    modules = load_actors(cfg.checkpoint)
    counts: dict[str, Counter[int]] = {}
    policy = _recording(greedy_policy(modules), counts)
    log(f"[evaluate] {train_cfg.env} {cfg.split} split of {_describe(data)}")
    progress = log if cfg.verbose else throttled(log, PROGRESS_EVERY)
    began = time.monotonic()
    bt = backtest(train_cfg.env, env_cfg, policy, seed=cfg.seed, progress=progress)
    log(_ran("greedy run", bt, time.monotonic() - began))
    study = None
    if cfg.gates is not None:
        grid = "" if cfg.gate_grid is None else (
            f", the gates chosen on validation (gate 1 on/off × thresholds "
            f"{list(cfg.gate_grid)}, then the adjustments)")
        log(f"[evaluate] the same bars through the two gates ({cfg.mc_passes} MC passes"
            f"{grid}) and the consensus calibration")
        began = time.monotonic()
        study = uncertainty_study(train_cfg.env, env_cfg, modules, gates=cfg.gates,
                                  mc_passes=cfg.mc_passes, gate_seed=cfg.gate_seed,
                                  seed=cfg.seed, grid=cfg.gate_grid, progress=progress,
                                  log=log)
        log(_ran("gated run", study.gated, time.monotonic() - began))
    report: dict[str, Any] = {}

    def fill(folder: Path) -> None:
        report.update(_report(cfg, train_cfg, env_cfg, bt, counts, folder, study))
        (folder / "report.json").write_text(json.dumps(report, indent=2, default=_json))
        write_html(report, folder)

    if cfg.out is not None:
        out = atomic_dir(report_dir(cfg), fill)
    else:  # the free name at the rename: a report finished meanwhile is never replaced
        out = publish_numbered(_default_base(cfg), fill)
    report["out"] = str(out)
    log(f"[evaluate] wrote {out / 'report.html'}")
    return report


# ------------------------------------------------------------------ inputs
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


def throttled(log: Log, every: float, clock: Callable[[], float] = time.monotonic) -> Log:
    """``log``, passing a line on only when ``every`` seconds have gone by since the last
    one it passed (or since it was made): long backtests say they are alive, short ones
    stay quiet."""
    last = [clock()]

    def say(line: str) -> None:
        now = clock()
        if now - last[0] >= every:
            last[0] = now
            log(line)

    return say


def _ran(what: str, bt: Backtest, seconds: float) -> str:
    """The one line that ends a backtest: tiles and steps run, and how long it took."""
    return (f"[evaluate] {what}: {bt.tiles:,} tiles, {len(bt.equity):,} steps in "
            f"{seconds:,.1f} s")


def run_folder(checkpoint: str | Path) -> Path | None:
    """The run folder (holding ``summary.json``) that ``checkpoint`` lies in, if any: the
    nearest of its parents, up to four levels up."""
    path = Path(checkpoint).expanduser().resolve()
    for folder in path.parents[:4]:
        if (folder / RUN_SUMMARY).is_file():
            return folder
    return None


def _default_base(cfg: EvaluateConfig) -> Path:
    """``<run>/evaluation-<split>``, or ``evaluation-<split>`` next to the checkpoint."""
    checkpoint = Path(cfg.checkpoint).expanduser().resolve()
    return (run_folder(checkpoint) or checkpoint.parent) / f"evaluation-{cfg.split}"


def report_dir(cfg: EvaluateConfig) -> Path:
    """Where the report goes: ``cfg.out`` (replaced if it exists); else
    ``<run>/evaluation-<split>`` when the checkpoint lies in a run folder, or
    ``evaluation-<split>`` next to the checkpoint — with ``-2``, ``-3``, … appended when
    that folder exists, so a default never replaces an earlier report."""
    if cfg.out is not None:
        return Path(cfg.out).expanduser().resolve()
    base = _default_base(cfg)
    n = 1
    while numbered(base, n).exists():
        n += 1
    return numbered(base, n)


# ------------------------------------------------------------------ figures
def _report(cfg: EvaluateConfig, train_cfg: Any, env_cfg: Any, bt: Backtest,
            counts: dict[str, Counter[int]], folder: Path, study: Study | None = None
            ) -> dict[str, Any]:
    """Every figure of the report (and the PNGs, written into ``folder``)."""
    gated = None if study is None else study.gated
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
        "cost_sensitivity": cost_sensitivity(bt),
        "attribution": attribution(bt, regime_labels(prepared, bt.equity.index)),
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
            "gates": {**setting(study.gates if study else cfg.gates),
                      "max_threshold": (study.gates if study else cfg.gates).max_threshold,
                      "mc_passes": cfg.mc_passes, "seed": cfg.gate_seed},
            "gate_counts": dict(gated.gate_counts),
            "metrics": to_dict(gated.metrics),
        }
        report["uncertainty"] = study.summary if study else {}
    write_plots(bt, curves, counts, report, folder, cfg.window_days,
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
    run = run_folder(cfg.checkpoint)
    nearby = [Path(cfg.checkpoint).expanduser().resolve().parent / "selection.json",
              *([run / "selection.json"] if run is not None else [])]
    path = Path(cfg.selection) if cfg.selection else \
        next((p for p in nearby if p.is_file()), nearby[0])
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
