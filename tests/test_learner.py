"""The MAPPO/IPPO learner's fixes: per-module passes, the clip anchor, bootstrap rows.

Each test counts or compares what the learner did on a real (tiny) training run, or on a
batch built by hand, so that it fails on a learner that had the defect.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch
from ray.rllib.utils.minibatch_utils import MiniBatchCyclicIterator

from algospace.config import DataConfig, EnvConfig, PPOSettings
from algospace.training.builder import TrainConfig, build_ppo_config
from algospace.training.diagnostics import summarise
from algospace.training.mappo import standardised_advantages
from algospace.training.minibatch import ModuleMinibatches, minibatches_per_epoch, shuffle_rows


def _batch(rows: dict[str, int]) -> MultiAgentBatch:
    """A batch whose rows carry their own ids (module, index)."""
    parts = {m: SampleBatch({"id": np.arange(n)}) for m, n in rows.items()}
    return MultiAgentBatch(parts, max(rows.values()))


def _passes(iterator: Any, rows: dict[str, int]) -> tuple[dict[str, Counter[int]], list[Any]]:
    seen: dict[str, Counter[int]] = {m: Counter() for m in rows}
    minibatches = []
    for mb in iterator:
        minibatches.append({m: b["id"].copy() for m, b in mb.policy_batches.items()})
        for m, b in mb.policy_batches.items():
            seen[m].update(b["id"].tolist())
    return seen, minibatches


ROWS = {"fvg": 4000, "mlmi": 667, "risk": 4000}  # a tactical and a strategic agent, joint_v0


def test_every_module_sees_each_row_num_epochs_times() -> None:
    seen, minibatches = _passes(ModuleMinibatches(_batch(ROWS), num_epochs=5,
                                                  minibatch_size=1000, shuffle=True), ROWS)
    for module, n in ROWS.items():
        assert set(seen[module]) == set(range(n)) and set(seen[module].values()) == {5}
    assert len(minibatches) == 5 * 4  # the largest module's 4000 rows in 1000-row minibatches
    for mb in minibatches:
        assert set(mb) == set(ROWS)  # every module in every minibatch: one step for all
        assert all(len(ids) == len(set(ids.tolist())) for ids in mb.values())  # no repeats
        assert len(mb["fvg"]) == 1000 and len(mb["mlmi"]) in (166, 167)


def test_shuffle_rows_is_rllibs_shuffle_to_the_bit() -> None:
    """Torch columns gathered by index_select, numpy ones indexed, nested ones too: the same
    rows as ``SampleBatch.shuffle`` from the same state of numpy's global generator."""
    import torch

    local = np.random.default_rng(3).standard_normal((50, 4))
    ours = SampleBatch({"obs": {"local": torch.from_numpy(local)},
                        "actions": torch.arange(50), "rows": np.arange(50) * 2})
    theirs = SampleBatch({k: tree_copy(v) for k, v in dict(ours).items()})
    state = np.random.get_state()  # both draw their permutation from numpy's global
    shuffle_rows(ours)              # generator (RLlib seeds it from the run's seed): the
    np.random.set_state(state)      # same state must give the same permutation
    theirs.shuffle()
    assert not np.array_equal(ours["rows"], np.arange(50) * 2)  # it did shuffle
    np.testing.assert_array_equal(ours["rows"], theirs["rows"])
    assert torch.equal(ours["actions"], theirs["actions"])
    assert torch.equal(ours["obs"]["local"], theirs["obs"]["local"])
    assert torch.equal(ours["actions"] * 2, torch.from_numpy(ours["rows"]))  # rows stay whole


def tree_copy(value: Any) -> Any:
    """A deep copy of a column (nested dicts of tensors or arrays)."""
    if isinstance(value, dict):
        return {k: tree_copy(v) for k, v in value.items()}
    return value.clone() if hasattr(value, "clone") else value.copy()


def test_rllibs_own_iterator_trains_the_smaller_module_too_often() -> None:
    """The defect this learner works around (RLlib 2.60): equal row counts per module, the
    smaller module cycled until the largest has done its epochs."""
    seen, _ = _passes(MiniBatchCyclicIterator(_batch(ROWS), num_epochs=5, minibatch_size=1000,
                                              shuffle_batch_per_epoch=True), ROWS)
    assert min(seen["mlmi"].values()) >= 25  # about 30 passes instead of 5


def test_minibatch_count_never_leaves_a_module_empty() -> None:
    assert minibatches_per_epoch({"a": 4000, "b": 3}, 1000) == 3
    assert minibatches_per_epoch({"a": 150}, 150) == 1
    assert minibatches_per_epoch({"a": 151}, 150) == 2
    with pytest.raises(ValueError, match="b"):
        minibatches_per_epoch({"a": 10, "b": 0}, 5)
    seen, minibatches = _passes(ModuleMinibatches(_batch({"a": 10, "b": 3}), num_epochs=2,
                                                  minibatch_size=2), {"a": 10, "b": 3})
    assert len(minibatches) == 6 and set(seen["a"].values()) == set(seen["b"].values()) == {2}


def test_several_learners_take_the_set_number_of_minibatches() -> None:
    it = ModuleMinibatches(_batch({"a": 100, "b": 20}), num_epochs=2, minibatch_size=25,
                           num_total_minibatches=6)
    assert len(list(it)) == 6


def test_bootstrap_rows_leave_the_advantage_statistics_alone() -> None:
    rng = np.random.default_rng(0)
    targets, values = rng.normal(size=50), rng.normal(size=50)
    real = np.ones(50, bool)
    real[[9, 29, 49]] = False  # the row appended to each of three episodes
    wild = targets.copy()
    wild[~real] = 1e6  # whatever the bootstrap rows hold
    adv = standardised_advantages(wild, values, real)
    expected = standardised_advantages(targets[real], values[real], np.ones(47, bool))
    np.testing.assert_allclose(adv[real], expected, rtol=1e-6)
    assert abs(adv[real].mean()) < 1e-9 and abs(adv[real].std() - 1.0) < 1e-6
    assert np.all(adv[~real] == 0.0)


def _critic_figure(algo: Any, name: str) -> float:
    """A value-statistics buffer of the learner's critic (through the public learner API)."""
    [figure] = [r.get() for r in algo.learner_group.foreach_learner(
        lambda learner: float(getattr(learner.module["critic"], name)))]
    return float(figure)


def _config(env: str, data: DataConfig, tmp_path: Path, **ppo: Any) -> TrainConfig:
    steps = 24 if env == "strategic_v0" else 72
    settings = {"train_batch_size": 150, "minibatch_size": 75, "num_epochs": 2, **ppo}
    return TrainConfig(env=env, env_config=EnvConfig(data=data, episode_steps=steps),
                       iterations=1, num_env_runners=0, num_envs_per_env_runner=1,
                       ppo=PPOSettings(**settings), out_dir=str(tmp_path))


@pytest.mark.parametrize("algorithm", ["mappo", "ippo"])
def test_joint_modules_each_get_num_epochs_passes(algorithm: str, env_data: DataConfig,
                                                  tmp_path: Path, ray_session: Any) -> None:
    """Strategic agents in joint_v0 have a sixth of the tactical agents' rows; each module
    still trains on each of its rows num_epochs times per iteration."""
    cfg = replace(_config("joint_v0", env_data, tmp_path, num_epochs=3), algorithm=algorithm)
    algo = build_ppo_config(cfg).build_algo()
    try:
        for _ in range(2):
            row = summarise(algo.train())
    finally:
        algo.stop()
    passes = {k: v for k, v in row.items() if k.endswith("/passes")}
    rows = {k: v for k, v in row.items() if k.endswith("/rows")}
    assert len(passes) == 8 and all(v == 3.0 for v in passes.values()), passes
    assert rows["agents/mlmi/rows"] < rows["agents/fvg/rows"] / 3  # unequal timescales
    for key in ("losses/policy", "losses/entropy", "losses/kl", "losses/clip_fraction",
                "losses/critic", "critic/explained_variance",
                "critic/explained_variance_strategic", "critic/explained_variance_tactical",
                "critic/target_std"):
        assert np.isfinite(row[key]), key


def test_value_clip_anchor_is_the_critics_own_output(env_data: DataConfig, tmp_path: Path,
                                                     ray_session: Any) -> None:
    """With a learning rate of ~0 the critic does not move during the update, so its
    prediction equals the clip anchor on every row: no row may fall outside the clip range.
    (The anchor used to be the stored value re-normalised with the statistics updated after
    it was stored: on the first iteration nearly every row fell outside.)"""
    cfg = _config("strategic_v0", env_data, tmp_path, lr=1e-12, value_clip=0.05,
                  num_epochs=1)
    algo = build_ppo_config(cfg).build_algo()
    try:
        row = summarise(algo.train())
        assert _critic_figure(algo, "value_mean") != 0.0  # the statistics did move
    finally:
        algo.stop()
    fractions = [v for k, v in row.items() if k.endswith("/value_clip_fraction")]
    assert len(fractions) == 4 and all(f == 0.0 for f in fractions), row


def test_value_statistics_count_training_rows_only(env_data: DataConfig, tmp_path: Path,
                                                   ray_session: Any) -> None:
    """strategic_v0: each of the 4 agents has one training row per env step; RLlib appends
    one more row per agent episode to bootstrap from, which must not enter the statistics."""
    algo = build_ppo_config(_config("strategic_v0", env_data, tmp_path)).build_algo()
    try:
        result = algo.train()
        count = _critic_figure(algo, "value_count")
    finally:
        algo.stop()
    steps = int(result["env_runners"]["num_env_steps_sampled"])
    episodes = int(result["env_runners"]["num_episodes"])
    assert episodes >= 1
    assert count == 4 * steps, (count, steps, episodes)


def test_training_stops_when_its_env_step_budget_is_spent(env_data: DataConfig, tmp_path: Path,
                                                          ray_session: Any) -> None:
    from algospace.errors import ConfigError
    from algospace.training.train import train

    cfg = replace(_config("strategic_v0", env_data, tmp_path), iterations=50, env_steps=300)
    result = train(cfg, log=lambda _: None)
    assert result.env_steps >= 300 and result.iterations < 50
    assert result.history[-2]["env_steps"] < 300 if result.iterations > 1 else True
    with pytest.raises(ConfigError, match="env_steps"):
        replace(cfg, env_steps=0)
