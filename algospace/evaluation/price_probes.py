"""Price probes: what a supervised learner reaches from the agents' observations and
the realised prices alone, without the generator's truth.

The probes of :mod:`algospace.evaluation.probes` are fitted with the planted truth as
labels (the layer oracle's position, which the generator computes from the drifts it
planted). They answer "how much of the oracle could a policy reading these
observations reach if it were shown the answer", an upper bound no learner that sees
only prices can be held to. A **price probe** is the same classifier on the same
observations and rows, fitted and chosen the way a quant with the data would:

* **Labels**: the sign of each row's own realised move, close − open of its
  5-minute bar (-1 down, 0 unchanged, +1 up): what holding one contract over that
  bar earned before costs. Nothing the generator knows enters the fit.
* **Trading**: the model's lean ``p(up) − p(down)`` per row; long where it exceeds
  a band ``m``, short where it is below ``−m``, flat in between, × the position
  limit, through the same account as the agents and the oracles. The band keeps a
  weak lean from paying a round trip per bar.
* **Choice** (L2 strength and band): on the validation split, by the **realised**
  net P&L of trading it there (the agents' runs pick their checkpoints by realised
  validation figures too), the simpler candidate (stronger L2, wider band) on a tie.
  The bands tried are quantiles of the validation rows' ``|lean|``
  (:data:`BAND_QUANTILES`); the widest still trades the top 1 % of leans, so a probe
  that finds nothing trades little and pays for it rather than staying flat.

Scored once on the evaluation split like the agents: expected capture of the layer's
and the joint oracle (the truth is read only here), realised figures beside.
``bench probes`` (:mod:`experiments.probes`) tabulates both kinds of probe by signal
strength: where the price probe reaches nothing, no learner of realised P&L can be
expected to either, with this much data.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from algospace.config import EnvConfig
from algospace.errors import ConfigError
from algospace.evaluation.oracles import LAYERS
from algospace.evaluation.probe_model import ProbeModel, fit_probe
from algospace.evaluation.probes import (  # lean, positions: importable from here too
    BAND_QUANTILES,
    L2_GRID,
    ProbeData,
    lean,
    oracle_runs,
    positions,
    splits,
    trade,
)


@dataclass(frozen=True)
class PriceProbeResult:
    """A layer's price probe: chosen on validation by realised P&L, scored on ``split``."""

    env: str
    layer: str
    split: str
    l2: float
    band: float
    """The chosen band on ``p(up) − p(down)`` (0: every lean trades)."""
    band_quantile: float
    """The validation quantile of ``|lean|`` the band was set at."""
    validation_net_pnl: float
    """Realised net P&L of the chosen candidate on validation (the selection score)."""
    expected_capture: float
    """Of the env's layer oracle on the evaluation split."""
    expected_capture_of_joint_oracle: float
    capture_of_oracle: float
    capture_of_joint_oracle: float
    expected_pnl: float
    net_pnl: float
    sharpe: float
    trades: int


def realised_labels(data: ProbeData) -> np.ndarray:
    """Sign of each row's own bar move (close − open): -1, 0 or +1 (int64)."""
    ohlc = data.truth.ohlc
    return np.sign(ohlc[:, 3] - ohlc[:, 0]).astype(np.int64)


def select_price_probe(train: ProbeData, val: ProbeData, *,
                       l2_grid: Sequence[float] = L2_GRID,
                       quantiles: Sequence[float] = BAND_QUANTILES
                       ) -> tuple[ProbeModel, float, float, float]:
    """Fit on ``train``'s realised labels for each L2; the (L2, band) whose trading on
    ``val`` earns the most realised net P&L: model, band, its quantile and that P&L
    (strongest L2 and widest band first; a later candidate must earn strictly more)."""
    if not l2_grid or not quantiles:
        raise ConfigError("price probe: pass at least one L2 strength and one band quantile")
    labels = realised_labels(train)
    best: tuple[float, ProbeModel, float, float] | None = None
    previous = None
    for l2 in sorted(l2_grid, reverse=True):
        model = fit_probe(train.features, labels, l2=l2, start=previous)
        previous = model
        val_lean = lean(model, val.features)
        for q in sorted(quantiles, reverse=True):  # widest band first
            band = float(np.quantile(np.abs(val_lean), q))
            score = trade(val, positions(val_lean, band)).metrics.net_pnl
            if best is None or score > best[0]:
                best = (score, model, band, float(q))
    assert best is not None
    score, model, band, q = best
    return model, band, q, score


def price_probe(env: str, env_config: EnvConfig, *, split: str = "test",
                l2_grid: Sequence[float] = L2_GRID,
                eval_config: EnvConfig | None = None) -> PriceProbeResult:
    """The price probe of ``env`` (a name or a layer): fit on train's realised labels,
    choose on val by realised net P&L, score ``split`` (of ``eval_config``'s market when
    given)."""
    train, val, evaluation = splits(env, env_config, split, eval_config)
    model, band, q, val_pnl = select_price_probe(train, val, l2_grid=l2_grid)
    run = trade(evaluation, positions(lean(model, evaluation.features), band),
                oracle_runs(evaluation))
    cap, m = run.capture, run.metrics
    return PriceProbeResult(evaluation.env, evaluation.layer, split, model.l2, band, q,
                            val_pnl, cap["expected_capture"],
                            cap["expected_capture_of_joint_oracle"], cap["capture_of_oracle"],
                            cap["capture_of_joint_oracle"], run.expected_pnl, m.net_pnl,
                            m.sharpe, m.trades)


def run_price_probes(env_config: EnvConfig, *, split: str = "test",
                     layers: Iterable[str] = LAYERS, l2_grid: Sequence[float] = L2_GRID,
                     eval_config: EnvConfig | None = None) -> dict[str, PriceProbeResult]:
    """Every layer's price probe, keyed by layer."""
    return {layer: price_probe(layer, env_config, split=split, l2_grid=l2_grid,
                               eval_config=eval_config) for layer in layers}

