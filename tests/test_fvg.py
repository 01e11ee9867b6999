"""FVG: hand-made bars with answers worked out by hand, lifecycle edges, and no look-ahead."""

from __future__ import annotations

import numpy as np
import pytest

from algospace.features.causality import assert_causal, random_ohlcv
from algospace.features.fvg import OUTPUT_NAMES, compute_fvg, fvg_warmup


def _fvg(rows: list[tuple[float, float, float, float]], **kw: float) -> dict[str, np.ndarray]:
    """compute_fvg on (open, high, low, close) rows."""
    o, h, lo, c = (np.array(col, dtype=np.float64) for col in zip(*rows, strict=True))
    return compute_fvg(o, h, lo, c, **kw)


# Bullish gap at bar 2, entered (mitigated) at bar 4, filled at bar 5.
#   bar 2: low 102 > high[0] 101            -> bullish gap, zone [101, 102], mid 101.5
#   bar 3: low 104 >= 102                     -> not entered; no new gap (104 > 104 is false)
#   bar 4: low 101.6 < 102 and > 101          -> entered, not filled: mitigation +1
#   bar 5: low 100.8 <= 101                   -> filled: inactive from bar 5
#   (bar 5 high 104.5 is not < low[3] 104, so no bearish gap)
BULLISH = [
    (100.0, 101.0, 99.0, 100.5),
    (100.5, 104.0, 100.4, 103.8),
    (103.8, 106.0, 102.0, 105.5),
    (105.5, 107.0, 104.0, 106.0),
    (106.0, 106.5, 101.6, 102.5),
    (102.5, 104.5, 100.8, 101.2),
]


def test_bullish_gap_lifecycle_by_hand() -> None:
    out = _fvg(BULLISH, body_multiplier=0)
    np.testing.assert_array_equal(out["fvg_bullish_active"], [0, 0, 1, 1, 1, 0])
    np.testing.assert_array_equal(out["fvg_bearish_active"], [0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(out["fvg_mitigation"], [0, 0, 0, 0, 1, 0])
    np.testing.assert_allclose(out["fvg_age"], [0, 0, 0, 1 / 50, 2 / 50, 0])
    # nearest level: 100 * (mid - close) / close, clipped to +-2, / 2
    #   bar 2: (101.5 - 105.5) / 105.5 = -3.79 %  -> -1
    #   bar 3: (101.5 - 106) / 106     = -4.25 %  -> -1
    #   bar 4: (101.5 - 102.5) / 102.5 = -0.9756 % -> -0.4878
    expected = [0, 0, -1, -1, 100 * (101.5 - 102.5) / 102.5 / 2, 0]
    np.testing.assert_allclose(out["fvg_nearest_level"], expected, rtol=0, atol=1e-15)


# Bearish mirror: gap at bar 2, entered at bar 4, filled at bar 5.
#   bar 2: high 97 < low[0] 99                -> bearish gap, zone [97, 99], mid 98
#   bar 3: high 96 <= 97                       -> not entered; high 96 < low[1] 96 is false
#   bar 4: high 97.8 > 97 and < 99             -> entered, not filled: mitigation -1
#   bar 5: high 99.2 >= 99                     -> filled (low 95.9 > high[3] 96 is false)
BEARISH = [
    (100.0, 101.0, 99.0, 99.5),
    (99.5, 99.6, 96.0, 96.2),
    (96.2, 97.0, 94.0, 94.5),
    (94.5, 96.0, 93.0, 95.0),
    (95.0, 97.8, 94.8, 97.5),
    (97.5, 99.2, 95.9, 99.0),
]


def test_bearish_gap_lifecycle_by_hand() -> None:
    out = _fvg(BEARISH, body_multiplier=0)
    np.testing.assert_array_equal(out["fvg_bearish_active"], [0, 0, 1, 1, 1, 0])
    np.testing.assert_array_equal(out["fvg_bullish_active"], [0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(out["fvg_mitigation"], [0, 0, 0, 0, -1, 0])
    #   bar 2: (98 - 94.5) / 94.5 = +3.7 % -> +1;  bar 3: (98 - 95) / 95 = +3.16 % -> +1
    #   bar 4: (98 - 97.5) / 97.5 = +0.5128 % -> +0.2564
    expected = [0, 0, 1, 1, 100 * (98 - 97.5) / 97.5 / 2, 0]
    np.testing.assert_allclose(out["fvg_nearest_level"], expected, rtol=0, atol=1e-15)


def test_expiry_at_max_age_and_no_mitigation_after_expiry() -> None:
    # Gap at bar 2 (zone [101, 102]); bars 3-4 stay above it; with max_age=3 it is
    # active at ages 0, 1, 2 (bars 2-4) and dropped at age 3 (bar 5). Bar 5's low
    # 101.5 enters the zone, but the gap has expired: no mitigation.
    rows = [
        *BULLISH[:3],
        (105.5, 107.0, 104.0, 106.0),
        (106.0, 107.5, 105.0, 107.0),
        (107.0, 107.2, 101.5, 102.0),
    ]
    out = _fvg(rows, body_multiplier=0, max_age=3)
    np.testing.assert_array_equal(out["fvg_bullish_active"], [0, 0, 1, 1, 1, 0])
    np.testing.assert_allclose(out["fvg_age"], [0, 0, 0, 1 / 3, 2 / 3, 0])
    np.testing.assert_array_equal(out["fvg_mitigation"], [0, 0, 0, 0, 0, 0])
    # with the default max_age the same bar 5 is a mitigation
    assert _fvg(rows, body_multiplier=0)["fvg_mitigation"][5] == 1


def test_enter_and_fill_in_one_bar_is_not_a_mitigation() -> None:
    # bar 3 goes straight through the zone [101, 102] (low 100.5 <= 101): a fill.
    rows = [*BULLISH[:3], (105.5, 106.0, 100.5, 101.0)]
    out = _fvg(rows, body_multiplier=0)
    np.testing.assert_array_equal(out["fvg_bullish_active"], [0, 0, 1, 0])
    np.testing.assert_array_equal(out["fvg_mitigation"], [0, 0, 0, 0])


# Ten quiet bars (body 0.5), a middle candle at bar 10, a gap at bar 11:
#   low[11] 101.2 > high[9] 101 -> bullish gap if the middle body passes the filter.
#   mean body of bars 0..9 = 0.5, threshold 1.5 * 0.5 = 0.75.
QUIET = [(100.0, 101.0, 99.5, 100.5)] * 10
GAP_BAR = (101.5, 103.0, 101.2, 102.5)


@pytest.mark.parametrize(("middle_close", "expected"), [(101.5, 1.0), (101.2, 0.0)])
def test_body_filter(middle_close: float, expected: float) -> None:
    # body 1.0 > 0.75 is kept; body 0.7 is not (and low[10] 100.4 > high[8] 101 is false)
    rows = [*QUIET, (100.5, 101.6, 100.4, middle_close), GAP_BAR]
    assert _fvg(rows)["fvg_bullish_active"][11] == expected
    assert _fvg(rows, body_multiplier=0)["fvg_bullish_active"][11] == 1.0
    assert fvg_warmup() == 11 and fvg_warmup(body_multiplier=0) == 2


def test_body_filter_needs_ten_bars_of_history() -> None:
    # The same 3-bar gap (bars 0-2) with a huge middle body cannot be seen before
    # bar 11 when the filter is on: there are no 10 bars before the middle candle.
    assert _fvg(BULLISH)["fvg_bullish_active"].sum() == 0


def test_only_max_gaps_most_recent_gaps_are_tracked() -> None:
    # Bars i = 0..5: low 10 i, high 10 i + 5 -> a bullish gap at every bar t >= 2
    # with zone [10 t - 15, 10 t]: t=2 [5, 20], t=3 [15, 30], t=4 [25, 40], t=5 [35, 50].
    # Bar 6 drops to low 12: fills gaps 3, 4, 5 (12 <= 15, 25, 35) and enters gap 2
    # (12 < 20, 12 > 5) without filling it.
    rows = [(10.0 * i + 1, 10.0 * i + 5, 10.0 * i, 10.0 * i + 4) for i in range(6)]
    rows.append((52.0, 55.0, 12.0, 13.0))
    kept = _fvg(rows, body_multiplier=0)
    assert kept["fvg_bullish_active"][6] == 1 and kept["fvg_mitigation"][6] == 1
    assert kept["fvg_age"][6] == pytest.approx((6 - 2) / 50)
    # with max_gaps=2, gap 2 was forgotten when gap 4 appeared (gap 3 when gap 5 did)
    capped = _fvg(rows, body_multiplier=0, max_gaps=2)
    np.testing.assert_array_equal(capped["fvg_bullish_active"], [0, 0, 1, 1, 1, 1, 0])
    assert capped["fvg_mitigation"][6] == 0


def _reference_fvg(
    bars: dict[str, np.ndarray], body_multiplier: float, max_age: int, max_gaps: int
) -> dict[str, np.ndarray]:
    """The module-doc state machine, one bar at a time (expiry, fills/entries, new gap)."""
    o, h, lo, c = bars["open"], bars["high"], bars["low"], bars["close"]
    body = np.abs(c - o)
    out = {name: np.zeros(len(c)) for name in OUTPUT_NAMES}
    active: list[dict[str, float]] = []
    made = {1.0: 0, -1.0: 0}
    for s in range(len(c)):
        active = [g for g in active if s - g["start"] < max_age]
        kept = []
        for g in active:
            bull = g["side"] > 0
            if (lo[s] <= g["lo"]) if bull else (h[s] >= g["hi"]):
                continue  # filled
            if not g["entered"] and ((lo[s] < g["hi"]) if bull else (h[s] > g["lo"])):
                g["entered"] = 1.0
                out["fvg_mitigation"][s] += g["side"]
            kept.append(g)
        active = kept
        big = body_multiplier == 0 or (
            s >= 11 and body[s - 1] > body_multiplier * body[s - 11 : s - 1].mean()
        )
        for side, is_gap, zone in (
            (1.0, s >= 2 and lo[s] > h[s - 2], (h[s - 2], lo[s])),
            (-1.0, s >= 2 and h[s] < lo[s - 2], (h[s], lo[s - 2])),
        ):
            if is_gap and big:
                made[side] += 1
                active = [g for g in active if g["side"] != side or g["n"] > made[side] - max_gaps]
                active.append(
                    {
                        "side": side,
                        "start": s,
                        "lo": zone[0],
                        "hi": zone[1],
                        "entered": 0.0,
                        "n": made[side],
                    }
                )
        out["fvg_mitigation"][s] = np.sign(out["fvg_mitigation"][s])
        out["fvg_bullish_active"][s] = any(g["side"] > 0 for g in active)
        out["fvg_bearish_active"][s] = any(g["side"] < 0 for g in active)
        if active:
            dist = [
                (abs(d := 100 * ((g["lo"] + g["hi"]) / 2 - c[s]) / c[s]), g["start"], d)
                for g in active
            ]
            out["fvg_nearest_level"][s] = np.clip(min(dist)[2], -2, 2) / 2
            out["fvg_age"][s] = (s - max(g["start"] for g in active)) / max_age
    return out


@pytest.mark.parametrize(
    ("body_multiplier", "max_age", "max_gaps", "sigma"),
    [(1.5, 50, 10, 0.002), (0.0, 50, 2, 0.002), (0.0, 5, 10, 0.004), (1.0, 20, 3, 0.003)],
)
def test_matches_a_per_bar_state_machine(
    body_multiplier: float, max_age: int, max_gaps: int, sigma: float
) -> None:
    bars = random_ohlcv(3000, np.random.default_rng(int(1000 * sigma) + max_gaps), sigma=sigma)
    got = compute_fvg(
        bars["open"],
        bars["high"],
        bars["low"],
        bars["close"],
        body_multiplier=body_multiplier,
        max_age=max_age,
        max_gaps=max_gaps,
    )
    expected = _reference_fvg(bars, body_multiplier, max_age, max_gaps)
    assert expected["fvg_bullish_active"].sum() > 100  # the walk does make gaps
    for name in OUTPUT_NAMES:
        np.testing.assert_allclose(got[name], expected[name], rtol=0, atol=1e-15, err_msg=name)


def test_no_look_ahead() -> None:
    rng = np.random.default_rng(11)
    bars = random_ohlcv(400, rng)
    ts = [2, 11, 60, 150, 251, 398]
    for kw in ({}, {"body_multiplier": 0.0, "max_gaps": 3}):
        assert_causal(
            lambda b, kw=kw: compute_fvg(b["open"], b["high"], b["low"], b["close"], **kw),
            bars,
            ts,
            rng,
        )


def test_ranges_on_a_random_walk() -> None:
    bars = random_ohlcv(20_000, np.random.default_rng(2))
    out = compute_fvg(bars["open"], bars["high"], bars["low"], bars["close"], body_multiplier=0)
    assert tuple(out) == OUTPUT_NAMES
    for name, arr in out.items():
        assert arr.shape == (20_000,) and arr.dtype == np.float64 and np.isfinite(arr).all(), name
    for name in ("fvg_bullish_active", "fvg_bearish_active"):
        assert set(np.unique(out[name])) == {0.0, 1.0}
    assert set(np.unique(out["fvg_mitigation"])) == {-1.0, 0.0, 1.0}
    assert np.abs(out["fvg_nearest_level"]).max() <= 1.0
    assert out["fvg_age"].min() >= 0.0 and out["fvg_age"].max() < 1.0
    any_active = (out["fvg_bullish_active"] + out["fvg_bearish_active"]) > 0
    assert (out["fvg_nearest_level"][~any_active] == 0).all()
    assert (out["fvg_age"][~any_active] == 0).all()


def test_rejects_bad_parameters() -> None:
    o = np.ones(5)
    with pytest.raises(ValueError, match="max_age"):
        compute_fvg(o, o, o, o, max_age=0)
