"""The ``checkpoint`` and ``evaluation`` sections: which checkpoints are kept and how the
agents are judged during and after training."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from algospace.config.model import CONSENSUS_THRESHOLD
from algospace.data.walkforward import check_layout
from algospace.errors import ConfigError


@dataclass(frozen=True)
class CheckpointSection:
    """How often checkpoints are written, how many are kept, which is best."""

    every: int = 5
    """Checkpoint (and validation backtest) every this many iterations; always at the end."""
    keep: int | None = 3
    """Checkpoints kept per trial when the run ends: the best by ``score``, plus the latest
    (None: all). All are kept while it runs, so an interrupted run can always resume."""
    score: str = "val_net_pnl"
    """Metric ranking checkpoints and trials: ``val_net_pnl`` (net dollar P&L of the
    validation backtest, the same sign and scale as the expected P&L the capture figures
    measure), ``val_sharpe``, or any reported metric such as ``episode_return_mean``.
    Not ``val_sharpe`` by default: over a validation split of a few dozen days a
    checkpoint that barely trades can show the best Sharpe by luck (the strategic phase of
    the 6x curriculum, seed 0: validation Sharpe 4.05 at iteration 1, expected capture of
    the strategic oracle 0.002; 5.97 at iteration 15, 0.165, the one val_sharpe chose;
    4.48 at iteration 40, 0.275)."""
    mode: Literal["max", "min"] = "max"
    """Whether a higher or lower ``score`` is better."""

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ConfigError(f"checkpoint.every must be >= 1, got {self.every}")
        if self.keep is not None and self.keep < 1:
            raise ConfigError(f"checkpoint.keep must be >= 1 (or null for all), got {self.keep}")


@dataclass(frozen=True)
class WalkForwardSection:
    """Walk-forward folds with purge and embargo (:mod:`algospace.data.walkforward`)."""

    folds: int = 4
    """Folds; their test blocks tile the last ``folds × test_fraction`` of the bars in time
    order (>= 2)."""
    mode: Literal["anchored", "rolling"] = "anchored"
    """``anchored``: every fold trains from the first bar; ``rolling``: on a window of
    ``train_fraction`` of the bars ending before its validation block."""
    val_fraction: float = 0.1
    """Each fold's validation block, as a fraction of all bars."""
    test_fraction: float = 0.1
    """Each fold's test block, as a fraction of all bars."""
    train_fraction: float | None = None
    """Rolling training window, as a fraction of all bars; null: the first fold's training."""
    purge_bars: int | str = "auto"
    """Base bars left out between train and val and between val and test; ``auto``: the
    longest feature look-back plus one episode."""
    embargo_bars: int | str = "auto"
    """Base bars after each test block left out of later folds' training; ``auto``: the
    longest feature look-back."""

    def __post_init__(self) -> None:
        check_layout(self.folds, self.mode, self.val_fraction, self.test_fraction,
                     self.train_fraction)
        for name in ("purge_bars", "embargo_bars"):
            value = getattr(self, name)
            if value != "auto" and not (isinstance(value, int) and value >= 0):
                raise ConfigError(f"evaluation.walk_forward.{name} must be a number of base "
                                  f"bars >= 0 or auto, got {value!r}")

    def layout(self) -> dict[str, Any]:
        """Keyword arguments of ``walk_forward_folds`` (purge and embargo resolved apart)."""
        return {"folds": self.folds, "mode": self.mode, "val_fraction": self.val_fraction,
                "test_fraction": self.test_fraction, "train_fraction": self.train_fraction}


@dataclass(frozen=True)
class EvaluationSection:
    """Validation metrics during training and the report at the end."""

    validation: bool = True
    """Backtest on the validation split at every checkpoint (reports ``val_*`` metrics)."""
    final: bool = True
    """Evaluate the best checkpoint on ``split`` at the end and write the report."""
    split: Literal["val", "test"] = "test"
    """Split of the final evaluation."""
    random_seeds: int = 5
    """Seeds of the random baseline."""
    bootstrap: int = 2000
    """Resamples of the Sharpe-difference confidence interval."""
    gates: bool = True
    """Also run the agents through the two gates of the live decision and report it."""
    gate_threshold: float = CONSENSUS_THRESHOLD
    """Gate 2's MC-consensus threshold in that run (with ``choose_gate_threshold``: the
    default the choice falls back to on ties)."""
    choose_gate_threshold: bool = True
    """Choose the gates on the validation split for a test report: gate 1 enforced or
    recorded only × gate 2's threshold (0.3, 0.4, 0.5, 0.6, 0.65, 0.7, 0.8, 0.9), then the
    regime and drawdown adjustments, by net P&L; false: both gates, ``gate_threshold``."""
    mc_passes: int = 50
    """MC-dropout passes per decision in that run."""
    walk_forward: WalkForwardSection | None = None
    """Walk-forward folds (keys below); null: off, ``data.split`` is the single split."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.gate_threshold <= 1.0:
            raise ConfigError(f"evaluation.gate_threshold must lie in [0, 1], got "
                              f"{self.gate_threshold!r}")
        if self.mc_passes < 1:
            raise ConfigError(f"evaluation.mc_passes must be >= 1, got {self.mc_passes!r}")
