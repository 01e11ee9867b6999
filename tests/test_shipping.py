"""The driver's prepared data and hand-off checkpoints reach Ray workers that lack them.

The test process is the driver: it prepares a CSV market and serves it; then the CSV and
the store are deleted (a node that has neither) and a Ray worker builds an env from the
env config alone — the store entry is copied from the driver, the CSV never read.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from algospace.config import DataConfig
from algospace.data.synthetic import SyntheticConfig, generate, to_csv
from algospace.features import shipping
from algospace.features.pipeline import prepare

pytestmark = pytest.mark.slow


def _build_env(shipped: dict[str, Any], data: dict[str, Any]) -> tuple[str, str, Any]:
    """In a worker: an env from its RLlib env config (as an env runner makes it)."""
    from envs.rllib import make_env

    env = make_env("strategic_v0", {"data": data, shipping.ENV_KEY: shipped})
    prepared = prepare(DataConfig(**{**data, "split": tuple(data["split"]),
                                     "synthetic": SyntheticConfig()}))
    obs, _ = env.reset(seed=0)
    return prepared.key, str(prepared.path), (prepared.table("features_tactical"),
                                              sorted(obs))


def test_worker_gets_the_prepared_data_without_the_csv(ray_session: Any,
                                                      tmp_path: Path) -> None:
    ray = ray_session
    csv = tmp_path / "ES - 5 min.csv"
    to_csv(generate(SyntheticConfig(days=20, seed=5)), csv)
    cfg = DataConfig(source="csv", path=str(csv), cache_dir=str(tmp_path / "cache"))
    prepared = prepare(cfg)
    shipped = shipping.serve(prepared, cfg)
    assert shipped.key == prepared.key and "features_tactical" in shipped.tables
    expected = prepared.table("features_tactical")
    csv.unlink()
    shutil.rmtree(tmp_path / "cache")

    from algospace.schema import to_dict

    remote = ray.remote(_build_env)
    key, path, (table, agents) = ray.get(remote.remote(shipped.to_dict(), to_dict(cfg)))
    assert key == prepared.key and Path(path) == tmp_path / "cache" / key
    pd.testing.assert_frame_equal(table, expected)
    assert agents == ["mlmi", "nwrqk", "portfolio", "regime"]

    # a node where data.cache_dir cannot be created: a temporary directory instead
    (tmp_path / "a-file").write_text("")
    blocked = to_dict(DataConfig(source="csv", path=str(csv),
                                 cache_dir=str(tmp_path / "a-file" / "cache")))
    key, path, (table, _) = ray.get(remote.remote(shipped.to_dict(), blocked))
    assert key == prepared.key
    assert Path(path).parent.name.startswith("algospace-cache-")
    assert Path(path).is_relative_to(tempfile.gettempdir())
    pd.testing.assert_frame_equal(table, expected)


def test_worker_gets_a_checkpoint_folder(ray_session: Any, tmp_path: Path) -> None:
    ray = ray_session
    root = tmp_path / "checkpoint"
    part = "learner_group/learner/rl_module/mlmi"
    (root / part).mkdir(parents=True)
    (root / part / "module_state.pt").write_bytes(b"\x00weights")
    (root / "learner_group" / "other.pkl").write_bytes(b"not shipped")
    name = shipping.serve_tree(root, [part])
    assert shipping.local_tree(str(root), name, [part], tmp_path) == str(root)  # here: as is
    shutil.rmtree(root)

    def fetch(into: str) -> str:
        return shipping.local_tree(str(root), name, [part], Path(into))

    copy = Path(ray.get(ray.remote(fetch).remote(str(tmp_path / "worker"))))
    assert (copy / part / "module_state.pt").read_bytes() == b"\x00weights"
    assert not (copy / "learner_group" / "other.pkl").exists()
