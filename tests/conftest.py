"""Shared fixtures: a small built-in market for the env tests, one Ray instance per session.

Lanes: a test that uses the ``ray_session`` fixture is marked ``ray`` here; tests that
train (an RLlib algorithm, the regime detector, a Tune run) carry ``train`` or ``slow``.
``bash scripts/test.sh --fast`` runs the rest: ``-m "not ray and not train and not slow"``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from algospace.config import DataConfig
from algospace.data.synthetic import SyntheticConfig
from tests.readme_runs import (  # noqa: F401  (session fixtures: the README's runs)
    readme_asha_sweep,
    readme_grid_sweep,
    readme_pipeline,
    readme_quick_start,
    readme_walkforward,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that starts Ray (through ``ray_session``) as ``ray``."""
    for item in items:
        if "ray_session" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.ray)


@pytest.fixture(scope="session")
def env_data(tmp_path_factory: pytest.TempPathFactory) -> DataConfig:
    """30 synthetic days, no planted signal, in a session-wide cache."""
    return DataConfig(synthetic=SyntheticConfig(days=30, seed=7, signal=0.0),
                      cache_dir=str(tmp_path_factory.mktemp("env-cache")))


@pytest.fixture(scope="session")
def signal_data(tmp_path_factory: pytest.TempPathFactory) -> DataConfig:
    """30 synthetic days of the calibrated two-timescale market (planted components on)."""
    return DataConfig(synthetic=SyntheticConfig(days=30, seed=7, signal=1.0),
                      cache_dir=str(tmp_path_factory.mktemp("signal-cache")))


@pytest.fixture(scope="session")
def ray_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One local Ray instance for every test that needs it.

    W&B's cache, config and data directories point into a temp dir, set before Ray starts
    so that its workers (where Ray's W&B logging actors run) inherit them.
    """
    ray = pytest.importorskip("ray")
    wandb_home = tmp_path_factory.mktemp("wandb-home")
    with pytest.MonkeyPatch.context() as mp:
        for var in ("WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
            mp.setenv(var, str(wandb_home / var.lower()))
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
        yield ray
        ray.shutdown()


@pytest.fixture(scope="session")
def _torch_determinism_at_start() -> bool:
    """Whether torch's deterministic algorithms were on when the session started."""
    import torch

    return torch.are_deterministic_algorithms_enabled()


@pytest.fixture(autouse=True)
def _restore_torch_determinism(_torch_determinism_at_start: bool) -> Iterator[None]:
    """RLlib's seeding switches torch to deterministic algorithms process-wide; undo it.

    Restores the session's starting value (not the value before this test: a wider-scoped
    fixture that trained with RLlib may already have switched it on by then).
    """
    import torch

    yield
    torch.use_deterministic_algorithms(_torch_determinism_at_start)


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Torch on one intra-op thread for a module (restored after).

    The actor networks are tiny: on a busy 2-core machine a second thread only adds waits.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
