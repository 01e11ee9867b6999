"""``bench probes``: how strong must a planted signal be before anything can learn it?

For each signal strength (``--signals``, multiples of the calibrated market's) and seed,
on the markets ``bench team`` uses (training market: ``--days`` days, seed
``LEARN_SEED + seed``; a fresh evaluation market of ``--eval-days`` days, seed
``EVAL_SEED + seed``, scored on its last 85 %), per layer (strategic, tactical, joint):

- the **truth probe** (:mod:`algospace.evaluation.probes`): fitted with the layer
  oracle's positions as labels, traded by its most likely class or by a band on its
  lean (the rule and L2 chosen on validation by expected P&L), what a policy reading
  these observations reaches when shown the answer;
- the **price probe** (:mod:`algospace.evaluation.price_probes`): the same classifier
  on the same rows, fitted on the bars' realised moves and chosen on validation by
  realised net P&L, what a supervised learner of prices reaches.

Headline: each probe's expected capture of the joint oracle on the evaluation market
(and of its own layer's oracle beside it). JSON keys
``signal<X>_seed<S>_<layer>_{truth,price}_probe_expected_capture[_own]`` and
``signal<X>_<layer>_{truth,price}_probe_expected_capture_mean``.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from algospace.evaluation.oracles import LAYERS

EVAL_DAYS = 300
"""Days of the evaluation market (at 12x a 1,000-day market wanders too far in price)."""


def _key(signal: float) -> str:
    """``1``, ``3``, ``0.5``: a signal as it appears in the JSON keys."""
    return f"{signal:g}"


def run(*, signals: tuple[float, ...], seeds: tuple[int, ...], days: int,
        eval_days: int = EVAL_DAYS, quick: bool = False) -> dict[str, Any]:
    """Both probes of every layer for every signal and seed (see the module docstring)."""
    from algospace.evaluation.price_probes import run_price_probes
    from algospace.evaluation.probes import run_probes
    from experiments.team import market_configs

    grid = (1.0,) if quick else None
    out: dict[str, Any] = {"signals": ",".join(map(_key, signals)),
                           "seeds": ",".join(map(str, seeds)), "days": days,
                           "eval_days": eval_days}
    for signal in signals:
        for seed in seeds:
            started = time.perf_counter()
            train_cfg, eval_cfg = market_configs(seed, days=days, eval_days=eval_days,
                                                 regime_latent=False, signal=signal)
            kw: dict[str, Any] = {"eval_config": eval_cfg}
            if grid:
                kw["l2_grid"] = grid
            truth = run_probes(train_cfg, seed=seed, **kw)
            price = run_price_probes(train_cfg, **kw)
            prefix = f"signal{_key(signal)}_seed{seed}"
            for layer in LAYERS:
                for kind, result in (("truth", truth[layer]), ("price", price[layer])):
                    name = f"{prefix}_{layer}_{kind}_probe_expected_capture"
                    out[name] = result.expected_capture_of_joint_oracle
                    out[f"{name}_own"] = result.expected_capture
                    out[f"{prefix}_{layer}_{kind}_probe_trades"] = float(result.trades)
            out[f"{prefix}_seconds"] = time.perf_counter() - started
            print(f"[probes] signal {_key(signal)} seed {seed}: " + ", ".join(
                f"{layer} truth {out[f'{prefix}_{layer}_truth_probe_expected_capture']:.3f}"
                f" / price {out[f'{prefix}_{layer}_price_probe_expected_capture']:.3f}"
                for layer in LAYERS) + f" ({out[f'{prefix}_seconds']:.0f} s)", flush=True)
        for layer in LAYERS:
            for kind in ("truth", "price"):
                values = [out[f"signal{_key(signal)}_seed{s}_{layer}_{kind}_probe_expected_"
                              "capture"] for s in seeds]
                out[f"signal{_key(signal)}_{layer}_{kind}_probe_expected_capture_mean"] = \
                    statistics.fmean(values)
    print("\n" + table(out, signals))
    return out


def table(figures: dict[str, Any], signals: tuple[float, ...]) -> str:
    """Markdown table: expected capture of the joint oracle, truth / price probe, by signal
    (the mean over the seeds)."""
    head = "| signal | " + " | ".join(f"{layer}: truth / price" for layer in LAYERS) + " |"
    rows = [head, "|---" * (len(LAYERS) + 1) + "|"]
    for signal in signals:
        cells = []
        for layer in LAYERS:
            t, p = (figures[f"signal{_key(signal)}_{layer}_{k}_probe_expected_capture_mean"]
                    for k in ("truth", "price"))
            cells.append(f"{t:.3f} / {p:.3f}")
        rows.append(f"| {_key(signal)}x | " + " | ".join(cells) + " |")
    return "\n".join(rows)
