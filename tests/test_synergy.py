"""Synergy detector: the type table, window, cooldown and causal events."""

from __future__ import annotations

import numpy as np
import pytest

from algospace.features.synergy import SYNERGY_TYPES, detect, strategic_events

N = 40


def events(**fired: list[tuple[int, int]]) -> dict[str, np.ndarray]:
    """Event arrays from {signal: [(step, direction), ...]}."""
    out = {name: np.zeros(N) for name in ("mlmi", "nwrqk", "fvg")}
    for name, items in fired.items():
        for step, direction in items:
            out[name][step] = direction
    return out


STRENGTH = np.full(N, 0.5)


@pytest.mark.parametrize(
    ("order", "kind"),
    [(("mlmi", "nwrqk", "fvg"), 1), (("mlmi", "fvg", "nwrqk"), 2),
     (("nwrqk", "fvg", "mlmi"), 3), (("nwrqk", "mlmi", "fvg"), 4)],
)
def test_type_is_the_firing_order(order: tuple[str, str, str], kind: int) -> None:
    assert SYNERGY_TYPES[order] == kind
    fired = {name: [(10 + 3 * i, 1)] for i, name in enumerate(order)}
    out = detect(events(**fired), STRENGTH)
    # Detected when the third fires (step 16), as a state lasting from there.
    assert np.flatnonzero(out["synergy_event"]).tolist() == [16]
    assert out[f"synergy_type_{kind}"][16] == 1.0
    assert sum(out[f"synergy_type_{k}"][16] for k in range(1, 5)) == 1.0
    assert out["synergy_direction"][15] == 0.0 and out["synergy_direction"][16] == 1.0
    assert out["synergy_strength"][20] == 0.5
    assert out["synergy_bars_since"][16] == 0.0
    assert out["synergy_bars_since"][19] == pytest.approx(3 / 60)


def test_fvg_first_is_not_a_synergy() -> None:
    out = detect(events(fvg=[(10, 1)], mlmi=[(12, 1)], nwrqk=[(14, 1)]), STRENGTH)
    assert not out["synergy_event"].any()


def test_window_and_direction() -> None:
    # 10-step window: events at 10, 15, 19 are within t-9..t at t=19 ...
    out = detect(events(mlmi=[(10, -1)], nwrqk=[(15, -1)], fvg=[(19, -1)]), STRENGTH)
    assert out["synergy_event"][19] == -1.0
    # ... but at 10, 15, 20 the MLMI event is 10 steps old: no synergy.
    out = detect(events(mlmi=[(10, -1)], nwrqk=[(15, -1)], fvg=[(20, -1)]), STRENGTH)
    assert not out["synergy_event"].any()
    # Mixed directions never combine.
    out = detect(events(mlmi=[(10, 1)], nwrqk=[(12, -1)], fvg=[(14, 1)]), STRENGTH)
    assert not out["synergy_event"].any()


def test_cooldown_and_ties() -> None:
    # MLMI and NW-RQK fire at the same step (tie → MLMI first), FVG at 12 and again at 15 and 18.
    fired = events(mlmi=[(10, 1)], nwrqk=[(10, 1)], fvg=[(12, 1), (15, 1), (18, 1)])
    out = detect(fired, STRENGTH)
    # 12 detects TYPE_1; 15 is within the 5-step cooldown; 18 detects again.
    assert np.flatnonzero(out["synergy_event"]).tolist() == [12, 18]
    assert out["synergy_type_1"][12] == 1.0


def test_state_expires() -> None:
    out = detect(events(mlmi=[(1, 1)], nwrqk=[(2, 1)], fvg=[(3, 1)]), STRENGTH, max_age=10)
    assert out["synergy_direction"][12] == 1.0 and out["synergy_direction"][13] == 0.0
    assert out["synergy_type_1"][13] == 0.0


def test_strategic_events_fire_when_the_bar_is_visible() -> None:
    # 30-min bar j becomes visible at the first 5-min step whose index reaches j.
    index = np.array([-1, -1, 0, 0, 0, 1, 1, 1, 3, 3])
    state = np.array([0.0, 1.0, 1.0, -1.0])
    np.testing.assert_array_equal(strategic_events(state, index, as_state=True),
                                  [0, 0, 0, 0, 0, 1, 0, 0, -1, 0])
    crossing = np.array([1.0, 0.0, -1.0, 0.0])
    # Bar 2 was never visible on its own (index jumps 1 → 3): its event fires with bar 3.
    np.testing.assert_array_equal(strategic_events(crossing, index, as_state=False),
                                  [0, 0, 1, 0, 0, 0, 0, 0, -1, 0])
