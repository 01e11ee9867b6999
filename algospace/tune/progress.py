"""A live progress table of a Tune experiment: one row per trial result, in the driver."""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from ray import tune

from algospace.config import ExperimentConfig
from algospace.tune.searched import compact, short_names

RL_COLUMNS = (("env_steps", "env steps", "{:>11,.0f}"),
              ("episode_return_mean", "return", "{:>9.3f}"),
              ("val_net_pnl", "val P&L", "{:>10,.0f}"),
              ("val_sharpe", "val Sharpe", "{:>11.2f}"),
              ("val_expected_capture", "val capture", "{:>12.3f}"),
              ("critic/explained_variance", "critic EV", "{:>9.2f}"),
              ("iteration_seconds", "s/iter", "{:>7.1f}"))
RDE_COLUMNS = (("val_loss", "val loss", "{:>10.4f}"),
               ("val_recon_mse", "val MSE", "{:>9.4f}"),
               ("baseline_recon_mse", "baseline", "{:>9.4f}"),
               ("epoch_seconds", "s/epoch", "{:>8.1f}"))
PARAM_WIDTH = 8
"""Narrowest column of a searched hyperparameter."""

INTERRUPTED = threading.Event()
"""Set when Ctrl-C (SIGINT) reached the driver during the current Tune run."""


class InterruptWatch(tune.Callback):
    """Notes a Ctrl-C before passing it on to Tune's own handler (which stops the trials
    gracefully and returns normally, so the runner could not tell otherwise)."""

    def setup(self, **info: Any) -> None:
        """Wrap the SIGINT handler Tune has just installed."""
        INTERRUPTED.clear()
        previous = signal.getsignal(signal.SIGINT)
        if threading.current_thread() is not threading.main_thread() or not callable(previous):
            return

        def handler(sig: int, frame: Any) -> None:
            INTERRUPTED.set()
            previous(sig, frame)

        signal.signal(signal.SIGINT, handler)


class ProgressTable(tune.Callback):
    """Prints ``trial | iteration/budget | figures | searched values | ETA`` as results
    arrive; ``searched``: the dotted keys of the phase's search spaces (a column each)."""

    def __init__(self, cfg: ExperimentConfig, log: Callable[[str], None] = print,
                 searched: Sequence[str] = ()) -> None:
        self.rde = cfg.phase == "rde"
        self.columns = RDE_COLUMNS if self.rde else RL_COLUMNS
        self.budget = cfg.rde.max_epochs if self.rde else cfg.stop.iterations
        self.step_budget = None if self.rde else cfg.stop.env_steps
        self.searched = dict(zip(searched, short_names(searched), strict=True))
        self.log = log
        self.started = time.time()
        self.header = False

    def _line(self, cells: list[str]) -> str:
        return " ".join(cells)

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any,
                        result: dict[str, Any], **info: Any) -> None:
        """One row per reported result (the regime detector's closing report, which
        repeats the best epoch's figures with its checkpoint, as one line)."""
        if self.rde and result.get("final") == 1.0:
            best, epochs = int(result.get("best_epoch", 0)), int(result.get("epoch", 0))
            loss = float(result.get("val_loss", math.nan))
            self.log(f"{trial.trial_id}: best epoch {best} of {epochs}, val loss {loss:.4f}")
            return
        if not self.header:
            titles = ["trial".ljust(12), "epoch" if self.rde else "iter".rjust(9)]
            titles += [t.rjust(len(f.format(0.0))) for _, t, f in self.columns]
            titles += [name.rjust(max(len(name), PARAM_WIDTH)) for name in self.searched.values()]
            titles.append("elapsed / ETA")
            self.log(self._line(titles))
            self.header = True
        done = int(result.get("epoch" if self.rde else "training_iteration", 0))
        cells = [str(trial.trial_id)[:12].ljust(12), f"{done:>4}/{self.budget:<4}"]
        for key, _, fmt in self.columns:
            value = result.get(key)
            width = len(fmt.format(0.0))
            ok = isinstance(value, int | float) and math.isfinite(value)
            cells.append(fmt.format(value) if ok else "-".rjust(width))
        config = getattr(trial, "config", None) or {}
        cells += [compact(config.get(key, "-")).rjust(max(len(name), PARAM_WIDTH))
                  for key, name in self.searched.items()]
        elapsed = float(result.get("time_total_s", time.time() - self.started))
        share = done / self.budget if self.budget else 0.0
        steps = result.get("env_steps")
        if self.step_budget and isinstance(steps, int | float) and math.isfinite(steps):
            share = max(share, steps / self.step_budget)  # whichever limit comes first
        share = min(share, 1.0)
        eta = elapsed / share * (1.0 - share) if share > 0 and not self.rde else math.nan
        cells.append(f"{_clock(elapsed)} / {_clock(eta)}" if math.isfinite(eta)
                     else _clock(elapsed))
        self.log(self._line(cells))

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """Say where a failed trial's traceback is."""
        self.log(f"{trial.trial_id}: failed (traceback in {trial.path}/error.txt); a failed "
                 "trial is retried from its last checkpoint up to tune.max_failures times")

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any,
                          **info: Any) -> None:
        """Say a trial finished."""
        self.log(f"{trial.trial_id}: finished")


def _clock(seconds: float) -> str:
    """``m:ss``."""
    if not math.isfinite(seconds):
        return "-"
    m, s = divmod(int(seconds), 60)
    return f"{m}:{s:02d}"
