"""No look-ahead anywhere in the feature layer, from CSV to matrices.

For several steps t, every 5-minute bar after t is replaced by different
(OHLC-consistent) bars; all features, synergy states and both matrices at
steps <= t must be bit-identical — with the file stamped at bar open and at
bar close.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from algospace.data.bars import Bars
from algospace.data.loader import load_bars
from algospace.data.resample import align_index, resample
from algospace.data.synthetic import SyntheticConfig, generate, to_csv
from algospace.features.assembler import FeatureMatrices, MatrixAssembler
from algospace.features.build import (
    STRATEGIC_FEATURES,
    TACTICAL_FEATURES,
    FeatureConfig,
    strategic_features,
    synergy_features,
    tactical_features,
)

CFG = FeatureConfig()


def everything(base: Bars) -> dict[str, object]:
    """All feature outputs of one base-bar series."""
    strategic = resample(base, 30)
    index = align_index(base, strategic)
    strat = strategic_features(strategic, CFG)
    tact = tactical_features(base, CFG)
    syn = synergy_features(strat, tact, index, CFG)
    matrices = FeatureMatrices(
        MatrixAssembler(strat[list(STRATEGIC_FEATURES)].to_numpy(), CFG.strategic_window),
        MatrixAssembler(tact[list(TACTICAL_FEATURES)].to_numpy(), CFG.tactical_window),
        index,
    )
    return {"strategic": strategic, "index": index, "strat": strat, "tact": tact, "syn": syn,
            "matrices": matrices}


def perturb_after(base: Bars, t: int, rng: np.random.Generator) -> Bars:
    """A copy of ``base`` whose bars after ``t`` are replaced by a different random walk."""
    frame = base.frame.copy()
    n = len(frame) - t - 1
    start = frame["close"].iloc[t]
    close = start * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    open_ = np.r_[start, close[:-1]]
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.002, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.002, n))
    frame.iloc[t + 1:] = np.column_stack([open_, high, low, close, rng.uniform(1, 5000, n)])
    return Bars(frame, base.bar_minutes, base.source)


@pytest.fixture(scope="module", params=["open", "close"])
def loaded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Bars:
    """40 synthetic days written with the given timestamp convention and read back."""
    market = generate(SyntheticConfig(days=40, seed=5, signal=0.2))
    bars = market.bars
    if request.param == "close":
        shifted = bars.frame.set_axis(bars.frame.index + bars.bar)
        bars = Bars(shifted, bars.bar_minutes, bars.source)
    path = Path(tmp_path_factory.mktemp("csv")) / f"ES - 5 min {request.param}.csv"
    to_csv(bars, path)
    out = load_bars(path, timestamps=request.param)
    pd.testing.assert_index_equal(out.frame.index, market.bars.frame.index, check_names=False)
    return out


def test_no_look_ahead(loaded: Bars) -> None:
    rng = np.random.default_rng(11)
    full = everything(loaded)
    matrices = full["matrices"]
    assert isinstance(matrices, FeatureMatrices)
    usable = np.flatnonzero(matrices.usable)
    assert usable.size > 1000
    minute = np.asarray(loaded.close_time.minute) % 30
    # One cut in each phase of a 30-minute bar (bar t closing at :05, :10, …, :30).
    cuts = [rng.choice(usable[:-10][minute[usable[:-10]] == m]) for m in range(0, 30, 5)]
    for t in cuts:
        cut = everything(perturb_after(loaded, int(t), rng))
        # Matrices are compared at t and the 12 steps before it (every phase of a 30-min bar).
        t_close = loaded.close_time[t]
        closed = full["strategic"].close_time <= t_close  # type: ignore[attr-defined]
        k = int(closed.sum())
        for name in ("strat",):
            a, b = full[name].iloc[:k], cut[name].iloc[:k]  # type: ignore[attr-defined]
            pd.testing.assert_frame_equal(a, b, check_exact=True)
        for name in ("tact", "syn"):
            a, b = full[name].iloc[: t + 1], cut[name].iloc[: t + 1]  # type: ignore[attr-defined]
            pd.testing.assert_frame_equal(a, b, check_exact=True)
        np.testing.assert_array_equal(full["index"][: t + 1], cut["index"][: t + 1])  # type: ignore[index]
        other = cut["matrices"]
        assert isinstance(other, FeatureMatrices)
        for step in range(int(t) - 12, int(t) + 1):
            if matrices.usable[step]:
                np.testing.assert_array_equal(matrices.strategic_at(step), other.strategic_at(step))
                np.testing.assert_array_equal(matrices.tactical_at(step), other.tactical_at(step))
        # The perturbation really changed the future (the test can fail).
        assert not np.array_equal(full["tact"].to_numpy()[t + 1:],  # type: ignore[attr-defined]
                                  cut["tact"].to_numpy()[t + 1:])  # type: ignore[attr-defined]


def test_strategic_matrix_changes_only_at_30_minute_closes(loaded: Bars) -> None:
    full = everything(loaded)
    matrices = full["matrices"]
    assert isinstance(matrices, FeatureMatrices)
    steps = np.flatnonzero(matrices.usable)
    changed = [s for s in steps[1:] if matrices.usable[s - 1]
               and not np.array_equal(matrices.strategic_at(s), matrices.strategic_at(s - 1))]
    closes = loaded.close_time[changed]
    assert len(changed) > 100
    assert all(ts.minute % 30 == 0 for ts in closes)
    assert all(matrices.strategic_at(s).shape == (48, 13) for s in steps[::97])
    assert all(matrices.tactical_at(s).shape == (60, 7) for s in steps[::97])
