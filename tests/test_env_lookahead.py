"""No look-ahead in the envs: changing every bar after t changes nothing observed up to t.

The market is written to CSV, and a second CSV has every 5-minute bar after
row t replaced by a different random walk. Both are prepared, and each env
runs the same seeded actions from the same start in the test split (whose
bars do not enter the train-split normalisation). Every agent's observation,
the global state and every reward up to t must be bit-identical; after t
something must differ.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from algospace.config import DataConfig
from algospace.data.synthetic import SyntheticConfig, generate, to_csv
from envs import joint_v0, single_v0, strategic_v0, tactical_v0
from envs.core.base import TradingEnv
from tests.test_envs import random_actions
from tests.test_features_lookahead import perturb_after


@pytest.fixture(scope="module")
def csv_pair(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The original CSV and, per cut row, a CSV changed after that row."""
    root = tmp_path_factory.mktemp("lookahead")
    market = generate(SyntheticConfig(days=30, seed=11))
    original = to_csv(market, root / "ES original.csv")
    probe = strategic_v0.parallel_env(data=_csv(original, root), split="test",
                                      episode_steps=30)
    start = int(probe.valid_starts()[3])
    first_row = int(probe.market["close_step"][start])
    cuts = [first_row + 60, first_row + 63, first_row + 95]  # a close, mid-bar, last 5 min
    changed = {}
    for cut in cuts:
        bars = perturb_after(market.bars, cut, np.random.default_rng(cut))
        changed[cut] = to_csv(bars, root / f"ES changed after {cut}.csv")
    return {"root": root, "original": original, "changed": changed, "first_row": first_row}


def _csv(path: Path, root: Path) -> DataConfig:
    """A data config reading ``path`` (ES) with a private cache."""
    return DataConfig(source="csv", path=str(path), symbol="ES", cache_dir=str(root / "cache"))


def _trace(env: TradingEnv, start: int, steps: int) -> list[tuple[int, Any, Any, Any]]:
    """(5-minute row, obs, state, rewards) at the start and after each step."""
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=0, options={"start": start})
    out = [(env._brow, obs, env.state().copy(), None)]
    for _ in range(steps):
        obs, rewards, _, _, _ = env.step(random_actions(env, rng))
        out.append((env._brow, obs, env.state().copy(), rewards))
    return out


@pytest.mark.parametrize("module", [strategic_v0, tactical_v0, joint_v0, single_v0],
                         ids=lambda m: m.__name__.split(".")[-1])
def test_changing_the_future_changes_nothing_up_to_t(module: ModuleType,
                                                     csv_pair: dict[str, Any]) -> None:
    root = csv_pair["root"]
    steps = 30 if module is strategic_v0 else 150
    env = module.parallel_env(data=_csv(csv_pair["original"], root), split="test",
                              episode_steps=steps)
    first_row = csv_pair["first_row"]
    starts = env.valid_starts()
    start = int(starts[np.searchsorted(starts, first_row)]) if module is not strategic_v0 \
        else int(np.flatnonzero(env.market["close_step"] == first_row)[0])
    base = _trace(env, start, steps)
    for cut, path in csv_pair["changed"].items():
        other = module.parallel_env(data=_csv(path, root), split="test", episode_steps=steps)
        trace = _trace(other, start, steps)
        seen = 0
        for (row, obs, state, rewards), (row2, obs2, state2, rewards2) in zip(
                base, trace, strict=True):
            assert row == row2
            if row > cut:
                break
            seen += 1
            np.testing.assert_array_equal(state, state2)
            for agent in obs:
                np.testing.assert_array_equal(obs[agent]["local"], obs2[agent]["local"])
            assert rewards == rewards2
        assert seen >= 2, "the cut must fall inside the traced episode"
        assert any(not np.array_equal(s, s2) for (_, _, s, _), (_, _, s2, _) in
                   zip(base, trace, strict=True)), "changing the future must show up later"
