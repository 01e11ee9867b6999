"""Checkpoints load without unpickling: the safe weights every checkpoint carries.

A payload planted in RLlib's pickle files of a checkpoint (it creates a file
when unpickled) must stay inert when the actors are loaded for evaluation,
deciding or ``init_from``; RLlib's own loader, run as a control, does set it
off — so the test can tell the two apart.
"""

from __future__ import annotations

import contextlib
import pickle
import shutil
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from algospace.config import DataConfig
from algospace.errors import CheckpointError
from algospace.training.builder import ModuleSource, build_ppo_config
from algospace.training.checkpoint import (
    MODULES_DIR,
    MODULES_FILE,
    WEIGHTS_FILE,
    load_actors,
    load_safe_modules,
    main,
    read_states,
)
from algospace.training.spaces import space_from_json, space_to_json
from algospace.training.train import actor_modules, load_modules, train
from tests.test_checkpoints import tiny


class Payload:
    """Unpickling this creates ``marker`` (as a hostile checkpoint would run code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


@pytest.fixture(scope="module")
def checkpoint(env_data: DataConfig, tmp_path_factory: pytest.TempPathFactory,
               ray_session: Any) -> str:
    out = tmp_path_factory.mktemp("safe")
    return train(tiny(env_data, out, seed=3, iterations=1), log=lambda _: None).checkpoint


def _poisoned(checkpoint: str, into: Path) -> tuple[Path, Path]:
    """A copy of ``checkpoint`` whose RLlib pickles all carry the payload; its marker."""
    copy = into / "poisoned"
    shutil.copytree(checkpoint, copy)
    marker = into / "payload-ran"
    for pkl in copy.rglob("*.pkl"):
        pkl.write_bytes(pickle.dumps(Payload(marker)))
    return copy, marker


def _state(module: Any) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_spaces_survive_json() -> None:
    spaces = [
        gym.spaces.Dict({"local": gym.spaces.Box(-np.inf, np.inf, (5,), np.float32),
                         "state": gym.spaces.Box(np.array([0.0, -1.0]), np.array([1.0, 2.0]),
                                                 (2,), np.float64)}),
        gym.spaces.Discrete(7, start=-3),
        gym.spaces.MultiDiscrete([6, 6, 5]),
    ]
    for space in spaces:
        assert space_from_json(space_to_json(space)) == space
    with pytest.raises(ValueError, match="cannot describe a Text space"):
        space_to_json(gym.spaces.Text(5))


def test_every_checkpoint_carries_the_safe_files_and_they_hold_the_weights(
        checkpoint: str, ray_session: Any) -> None:
    from ray.rllib.core.rl_module.rl_module import RLModule

    root = Path(checkpoint)
    assert (root / WEIGHTS_FILE).is_file() and (root / MODULES_FILE).is_file()
    safe = load_safe_modules(checkpoint)
    assert sorted(safe) == ["critic", "mlmi", "nwrqk", "portfolio", "regime"]
    for mid, module in safe.items():
        reference = RLModule.from_checkpoint(str(root.joinpath(*MODULES_DIR, mid)))
        ours, theirs = _state(module), _state(reference)
        assert ours.keys() == theirs.keys()
        for k in ours:
            # exact, the critic's float64 value statistics too (CentralCritic.set_state
            # undoes RLlib's cast to float32)
            assert torch.equal(ours[k], theirs[k]), (mid, k)
        assert type(module) is type(reference)
        assert module.observation_space == reference.observation_space
        assert module.action_space == reference.action_space


def test_a_planted_payload_stays_inert(checkpoint: str, tmp_path: Path,
                                       ray_session: Any) -> None:
    from ray.rllib.core.rl_module.rl_module import RLModule

    copy, marker = _poisoned(checkpoint, tmp_path)
    actors = load_actors(str(copy))
    assert sorted(actors) == ["mlmi", "nwrqk", "portfolio", "regime"]
    load_safe_modules(str(copy))
    assert not marker.exists()
    # the control: RLlib's own loader runs the payload (then fails or falls back)
    with contextlib.suppress(Exception):
        RLModule.from_checkpoint(str(copy.joinpath(*MODULES_DIR, "mlmi")))
    assert marker.exists()


def test_init_from_reads_only_the_safe_files(checkpoint: str, env_data: DataConfig,
                                             tmp_path: Path, ray_session: Any) -> None:
    copy, marker = _poisoned(checkpoint, tmp_path)
    saved = read_states(checkpoint)
    algo = build_ppo_config(tiny(env_data, tmp_path / "run", seed=9)).build_algo()
    try:
        load_modules(algo, (ModuleSource(str(copy), ("mlmi", "critic")),), log=lambda _: None)
        now = actor_modules(algo)["mlmi"].state_dict()
        for k, v in saved["mlmi"].items():
            assert torch.equal(now[k], v), k
        critic = algo.learner_group._learner.module["critic"].state_dict()
        for k, v in saved["critic"].items():
            assert torch.equal(critic[k], v), k
    finally:
        algo.stop()
    assert not marker.exists()


def test_a_weights_file_that_is_not_plain_tensors_is_refused(checkpoint: str,
                                                             tmp_path: Path) -> None:
    copy = tmp_path / "bad"
    shutil.copytree(checkpoint, copy)
    marker = tmp_path / "payload-ran"
    torch.save({"mlmi": Payload(marker)}, copy / WEIGHTS_FILE)
    with pytest.raises(CheckpointError, match="is not a weights file torch can load safely"):
        load_actors(str(copy))
    assert not marker.exists()


def test_a_checkpoint_without_the_files_says_how_to_add_them(
        checkpoint: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        ray_session: Any) -> None:
    old = tmp_path / "old"
    shutil.copytree(checkpoint, old)
    (old / WEIGHTS_FILE).unlink()
    (old / MODULES_FILE).unlink()
    with pytest.raises(CheckpointError, match=rf"has no {MODULES_FILE}.*"
                       r"python -m algospace\.training\.checkpoint .*only for checkpoints you"):
        load_actors(str(old))
    assert main([str(old)]) == 0
    assert "wrote" in capsys.readouterr().out
    again = load_actors(str(old))
    original = load_actors(checkpoint)
    for mid in original:
        assert _state(again[mid]).keys() == _state(original[mid]).keys()
        for k, v in _state(original[mid]).items():
            assert torch.equal(_state(again[mid])[k], v)
    assert main([str(tmp_path / "nope")]) == 2
    assert main([str(tmp_path)]) == 2  # a folder, but no checkpoint
    broken = tmp_path / "broken"
    shutil.copytree(old, broken)
    for name in (WEIGHTS_FILE, MODULES_FILE):
        (broken / name).unlink()
    for state in broken.joinpath(*MODULES_DIR).rglob("module_state*"):
        state.write_bytes(b"not a pickle")
    assert main([str(broken)]) == 2
    assert "RLlib cannot load module" in capsys.readouterr().err
    assert not (broken / WEIGHTS_FILE).exists() and not (broken / MODULES_FILE).exists()
