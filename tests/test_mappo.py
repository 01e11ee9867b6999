"""MAPPO on RLlib: joint MC features per row, end-to-end training on every env."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from algospace.config import DataConfig, EnvConfig, PPOSettings
from algospace.errors import ConfigError
from algospace.models.mc_dropout import joint_features
from algospace.schema import to_dict
from algospace.training.builder import TrainConfig, build_ppo_config
from algospace.training.diagnostics import VALUE_DIAGNOSTICS
from algospace.training.mappo import (
    _episode_features,
    _features,
    _rows,
    _steps_to_next,
    value_targets,
)
from algospace.training.ppo_loss import logp_entropy
from algospace.training.sampler_episodes import INFO_COLUMNS
from algospace.training.train import train


def test_joint_features_use_each_agents_latest_decision() -> None:
    strategic_rows = np.array([10, 16])  # decisions at rows 10 and 16
    tactical_rows = np.arange(10, 20)
    rng = np.random.default_rng(0)
    s_stats = rng.uniform(0, 1, (2, 6)).astype(np.float32)
    t_stats = rng.uniform(0, 1, (10, 6)).astype(np.float32)
    timeline = {"mlmi": (strategic_rows, s_stats), "fvg": (tactical_rows, t_stats)}
    rows = np.array([10, 15, 16, 19])
    got = _features(rows, timeline, 0.65)
    strategic = torch.as_tensor(s_stats[[0, 0, 1, 1]])[:, None, :]
    tactical = torch.as_tensor(t_stats[[0, 5, 6, 9]])[:, None, :]
    np.testing.assert_allclose(got, joint_features(strategic, tactical).numpy(), rtol=1e-6)


class _Decisions:
    """An agent episode as _timeline reads it: rows (info columns) and MC statistics."""

    def __init__(self, rows: np.ndarray, stats: np.ndarray) -> None:
        self.custom_data = {INFO_COLUMNS: {"row": rows, "clock": rows}}
        self.stats = stats

    def get_extra_model_outputs(self, key: str) -> np.ndarray:
        return self.stats

    def __len__(self) -> int:
        return len(self.stats)


def test_episode_features_equal_each_agents_own_rows_features() -> None:
    """The learner computes the 15 features once per row of an episode and gathers each
    agent's rows from that table: the same as computing them at the agent's rows."""
    rng = np.random.default_rng(1)
    rows = {"mlmi": np.array([0, 6, 12]), "regime": np.array([0, 12]),
            "fvg": np.arange(0, 15), "risk": np.array([1, 2, 7, 14])}
    episode = type("Ep", (), {"agent_episodes": {
        a: _Decisions(r, rng.uniform(0, 1, (len(r), 6)).astype(np.float32))
        for a, r in rows.items()}})()
    timeline, seen, joined = _episode_features(episode, 0.65)
    np.testing.assert_array_equal(seen, np.arange(0, 15))
    for agent_rows in rows.values():
        np.testing.assert_allclose(joined[np.searchsorted(seen, agent_rows)],
                                   _features(agent_rows, timeline, 0.65), rtol=1e-6)


def small(env: str, data: DataConfig, tmp_path: Path, **kwargs: Any) -> TrainConfig:
    """A tiny sampling-in-the-driver config."""
    steps = 24 if env == "strategic_v0" else 72
    return TrainConfig(env=env, env_config=EnvConfig(data=data, episode_steps=steps),
                       iterations=2, num_env_runners=0, num_envs_per_env_runner=1,
                       ppo=PPOSettings(train_batch_size=150, minibatch_size=75,
                                       num_epochs=2),
                       out_dir=str(tmp_path), **kwargs)


@pytest.mark.parametrize("env", ["strategic_v0", "tactical_v0", "joint_v0"])
def test_mappo_trains_each_env_and_updates_the_critic(env: str, env_data: DataConfig,
                                                      tmp_path: Path, ray_session: Any) -> None:
    algo = build_ppo_config(small(env, env_data, tmp_path)).build_algo()
    try:
        critic = algo.learner_group._learner.module["critic"]
        before = {k: v.clone() for k, v in critic.state_dict().items()}
        for _ in range(2):
            result = algo.train()
        learners = {k: v for k, v in result["learners"].items()
                    if k not in ("__all_modules__", "critic", VALUE_DIAGNOSTICS)}
        assert learners and all(np.isfinite(float(v["critic_loss"])) and
                                np.isfinite(float(v["policy_loss"])) for v in learners.values())
        after = critic.state_dict()
        assert all(not torch.equal(before[k], after[k]) for k in before)
        assert float(critic.value_count) > 0
    finally:
        algo.stop()


def test_ippo_trains_joint(env_data: DataConfig, tmp_path: Path, ray_session: Any) -> None:
    result = train(small("joint_v0", env_data, tmp_path, algorithm="ippo"), log=lambda _: None)
    assert result.iterations == 2 and result.env_steps > 0
    assert all(np.isfinite(row["losses/critic"]) for row in result.history)
    assert Path(result.checkpoint).is_dir()


@pytest.mark.parametrize("space", ["discrete", "multidiscrete"])
def test_policy_figures_use_rllibs_distribution_values(space: str) -> None:
    """The learner's per-minibatch figures (log-probability, entropy) computed from one
    log-softmax per head equal those of RLlib's distributions of the module."""
    import gymnasium as gym
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    from algospace.models.actor import ActorModule

    obs = gym.spaces.Dict(local=gym.spaces.Box(-np.inf, np.inf, (6,), np.float32),
                          state=gym.spaces.Box(-np.inf, np.inf, (4,), np.float32))
    action_space = gym.spaces.Discrete(5) if space == "discrete" \
        else gym.spaces.MultiDiscrete([6, 6, 5])
    module = RLModuleSpec(module_class=ActorModule, observation_space=obs,
                          action_space=action_space, model_config={}).build()
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(300, sum(module.input_lens), generator=g) * 3
    actions = torch.as_tensor(np.stack([action_space.sample() for _ in range(300)]))
    logp, entropy = logp_entropy(module, logits, actions)
    dist = module.get_train_action_dist_cls().from_logits(logits)
    torch.testing.assert_close(logp, dist.logp(actions), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(entropy, dist.entropy(), rtol=1e-5, atol=1e-5)


def test_actor_loss_is_rllibs_ppo_loss(env_data: DataConfig, tmp_path: Path,
                                       ray_session: Any) -> None:
    """Our actors' PPO loss (one log-softmax per head, masked sums by torch.where) equals
    RLlib's PPOTorchLearner loss and gradients on a learner batch of joint_v0, and its
    diagnostics figures equal those computed beside RLlib's loss; our single gradient check
    applies gradients as RLlib does."""
    algo = build_ppo_config(small("joint_v0", env_data, tmp_path)).build_algo()
    try:
        episodes = algo.env_runner.sample()
        # the learner pipeline as the Learner builds it, through the config's public method
        pipeline = algo.config.build_learner_connector(input_observation_space=None,
                                                       input_action_space=None)
        for result in algo.learner_group.foreach_learner(
                lambda learner: _check_loss_and_gradients(learner, pipeline, episodes)):
            result.get()  # a failed check raises here
    finally:
        algo.stop()


def _check_loss_and_gradients(learner: Any, pipeline: Any, episodes: list[Any]) -> None:
    """The checks of test_actor_loss_is_rllibs_ppo_loss on the (local) learner."""
    from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner

    from algospace.training.mappo import RowPPOLearner
    from algospace.training.ppo_loss import fast_path, policy_figures

    batch = pipeline(rl_module=learner.module, batch={}, episodes=episodes,
                     shared_data={}, metrics=None)
    actors = [m for m in batch if m != "critic"]
    assert len(actors) == 8
    for mid in actors:
        module, config = learner.module[mid].unwrapped(), learner.config
        assert fast_path(module, config)
        fwd = module.forward_train(batch[mid])
        kwargs = {"module_id": mid, "config": config, "batch": batch[mid], "fwd_out": fwd}
        learner.iteration_sums = None
        ours = RowPPOLearner.compute_loss_for_module(learner, **kwargs)
        figures = learner.iteration_sums[mid]  # type: ignore[index]
        theirs = PPOTorchLearner.compute_loss_for_module(learner, **kwargs)
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
        params = [p for p in module.parameters() if p.requires_grad]
        for a, b in zip(torch.autograd.grad(ours, params, retain_graph=True),
                        torch.autograd.grad(theirs, params), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
        with torch.no_grad():
            beside = policy_figures(module, config, batch[mid], fwd)
        assert figures.keys() == beside.keys()
        for key, value in beside.items():
            assert float(figures[key]) == pytest.approx(float(value), rel=1e-6, abs=1e-6)
    learner.iteration_sums = None
    _check_shared_critic(learner, batch, actors)
    _check_single_gradient_check(learner)


def _check_shared_critic(learner: Any, batch: Any, actors: list[str]) -> None:
    """Rows of one key have one critic input (several modules' rows share it in joint_v0),
    and the learner's losses with the critic run once per key (its default) are those of
    one critic call per module, and so are the critic's gradients."""
    from algospace.training.critic_rows import ROW_KEY
    from algospace.training.mappo import MAPPOTorchLearner

    critic = learner.module["critic"].unwrapped()
    with torch.no_grad():
        inputs = torch.cat([critic.critic_input(batch[m]) for m in actors])
    keys = torch.cat([torch.as_tensor(batch[m][ROW_KEY]) for m in actors])
    unique, inverse = torch.unique(keys, return_inverse=True)
    assert len(unique) * 3 < len(keys)
    for k in range(len(unique)):
        rows = inputs[inverse == k]
        assert torch.equal(rows, rows[:1].expand_as(rows)), k
    fwd = {m: learner.module[m].unwrapped().forward_train(batch[m]) for m in actors}
    shared = learner.compute_losses(fwd_out=fwd, batch=batch)
    assert learner.shared is None  # computed per call, then dropped
    alone = {m: MAPPOTorchLearner.compute_loss_for_module(
        learner, module_id=m, config=learner.config, batch=batch[m], fwd_out=fwd[m])
        for m in actors}
    learner.iteration_sums = None
    params = [p for p in critic.parameters() if p.requires_grad]
    for total in (sum(shared.values()), sum(alone.values())):
        assert isinstance(total, torch.Tensor)
    torch.testing.assert_close(sum(shared.values()), sum(alone.values()), rtol=1e-5, atol=1e-6)
    for a, b in zip(torch.autograd.grad(sum(shared.values()), params, retain_graph=True),
                    torch.autograd.grad(sum(alone.values()), params), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def _check_single_gradient_check(learner: Any) -> None:
    """FiniteOnce.apply_gradients leaves the parameters and optimizers exactly as RLlib's
    TorchLearner.apply_gradients does, with finite gradients and with a NaN in one tensor
    (which RLlib zeroes)."""
    import copy

    from ray.rllib.core.learner.torch.torch_learner import TorchLearner

    from algospace.training.mappo import RowPPOLearner

    params = {learner.get_param_ref(p): p for mid in sorted(learner.module.keys())
              for p in learner.get_parameters(learner.module[mid])}
    optims = [opt for mid in sorted(learner.module.keys())
              for _, opt in learner.get_optimizers_for_module(mid)]
    start = ({r: p.detach().clone() for r, p in params.items()},
             [copy.deepcopy(o.state_dict()) for o in optims])

    def applied(method: Any, grads: dict[Any, torch.Tensor]) -> list[torch.Tensor]:
        with torch.no_grad():
            for ref, p in params.items():
                p.copy_(start[0][ref])
        for opt, state in zip(optims, start[1], strict=True):
            opt.load_state_dict(copy.deepcopy(state))
        method(learner, {r: g.clone() for r, g in grads.items()})
        return [p.detach().clone() for p in params.values()]

    g = torch.Generator().manual_seed(5)
    grads = {r: torch.randn(p.shape, generator=g) * 0.01 for r, p in params.items()}
    nan = dict(grads)
    first = next(iter(nan))
    nan[first] = nan[first].clone().view(-1).index_fill(0, torch.tensor([0]), float("nan")) \
        .view(nan[first].shape)
    for case in (grads, nan):
        ours, theirs = applied(RowPPOLearner.apply_gradients, case), \
            applied(TorchLearner.apply_gradients, case)
        assert all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))
        assert not all(torch.equal(a, start[0][r]) for a, r in zip(ours, params, strict=True))


def test_minibatch_larger_than_batch_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"ppo\.minibatch_size \(500\) is larger"):
        TrainConfig(ppo=PPOSettings(train_batch_size=100, minibatch_size=500))


def test_value_targets_equal_rllibs_with_a_constant_discount() -> None:
    from ray.rllib.utils.postprocessing.value_predictions import compute_value_targets

    rng = np.random.default_rng(3)
    n = 12
    values = rng.normal(size=n).astype(np.float32)
    rewards = rng.normal(size=n).astype(np.float32)
    term = np.zeros(n, np.float32)
    trunc = np.zeros(n, np.float32)
    term[4] = 1.0  # an episode ending in termination
    trunc[9] = 1.0  # one ending in truncation (the row after is its bootstrap row)
    ours = value_targets(values=values, rewards=rewards, terminateds=term, truncateds=trunc,
                         gammas=np.full(n, 0.9), lambda_=0.8)
    theirs = compute_value_targets(values=values, rewards=rewards, terminateds=term,
                                   truncateds=trunc, gamma=0.9, lambda_=0.8)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def test_value_targets_discount_each_row_by_its_own_gamma() -> None:
    # Two rows then the bootstrap row: V = (1, 2, 10), rewards (1, 1), the first
    # transition spans 6 env steps (gamma ** 6), the second 2; the second is truncated.
    g = 0.9
    values = np.array([1.0, 2.0, 10.0])
    rewards = np.array([1.0, 1.0, 0.0])
    term = np.zeros(3)
    trunc = np.array([0.0, 1.0, 0.0])
    got = value_targets(values=values, rewards=rewards, terminateds=term, truncateds=trunc,
                        gammas=np.array([g ** 6, g ** 2, g]), lambda_=0.5)
    delta1 = 1.0 + g ** 2 * 10.0 - 2.0
    delta0 = 1.0 + g ** 6 * 2.0 - 1.0
    adv0 = delta0 + g ** 6 * 0.5 * delta1
    np.testing.assert_allclose(got[:2], [adv0 + 1.0, delta1 + 2.0], rtol=1e-6)


class _Episode:
    """What _steps_to_next and _rows read of a single-agent episode: the stock runner's info
    dicts, or (``columns``) the vectorised sampler's info columns, which the learner
    pipeline's bootstrap row does not extend."""

    def __init__(self, clocks: list[int], rows: int, columns: bool = False) -> None:
        self.infos = [{"clock": c, "row": 100 + c} for c in clocks]
        self.rows = rows
        self.custom_data = {INFO_COLUMNS: {"clock": np.asarray(clocks),
                                           "row": 100 + np.asarray(clocks)}} if columns else {}

    def get_infos(self) -> list[dict[str, int]]:
        return self.infos

    def __len__(self) -> int:
        return self.rows


def test_steps_to_next_counts_env_steps_between_observations() -> None:
    # A strategic agent of joint_v0 observing at clocks 0, 6, 12 and the final obs at 15.
    np.testing.assert_array_equal(_steps_to_next(_Episode([0, 6, 12, 15], 3)), [6, 6, 3])
    # With the bootstrap row the learner appends (a copy of the final obs and its info).
    np.testing.assert_array_equal(_steps_to_next(_Episode([0, 6, 12, 15, 15], 4)),
                                  [6, 6, 3, 1])
    np.testing.assert_array_equal(_rows(_Episode([0, 6, 12, 15, 15], 4)), [100, 106, 112, 115])
    # the vectorised sampler's columns: the same figures, without the repeated final info
    for rows in (3, 4):
        for read in (_steps_to_next, _rows):
            np.testing.assert_array_equal(
                read(_Episode([0, 6, 12, 15], rows, columns=True)),
                read(_Episode([0, 6, 12, 15, 15][:rows + 1], rows)), err_msg=read.__name__)


def test_rllib_sampling_draws_new_episodes_on_every_call(env_data: DataConfig, tmp_path: Path,
                                                          ray_session: Any) -> None:
    # RLlib re-sends its seed at every sample() call in complete_episodes mode; the
    # adapter must not replay the same episodes (see envs/rllib.py).
    cfg = small("strategic_v0", env_data, tmp_path, seed=5)
    cfg = TrainConfig(**{**cfg.__dict__, "num_envs_per_env_runner": 2})
    algo = build_ppo_config(cfg).build_algo()
    try:
        def starts() -> list[int]:
            episodes = algo.env_runner.sample(num_episodes=2, random_actions=True)
            return [int(e.agent_episodes["mlmi"].get_infos()[0]["clock"]) for e in episodes]

        first, second, third = starts(), starts(), starts()
        assert first[0] != first[1]  # the vector envs differ
        assert first != second and second != third
    finally:
        algo.stop()


def test_layer_sharing_pads_observations_with_an_agent_id(env_data: DataConfig) -> None:
    from envs.rllib import make_env

    env = make_env("joint_v0", {"data": to_dict(env_data), "sharing": "layer"})
    spaces = env.observation_spaces
    assert spaces["mlmi"] == spaces["regime"] and spaces["fvg"] == spaces["momentum"]
    assert spaces["risk"] == env.par_env.observation_space("risk")
    obs, _ = env.reset(seed=0)
    raw = env.par_env
    for i, agent in enumerate(("mlmi", "nwrqk", "portfolio", "regime")):
        local = obs[agent]["local"]
        assert spaces[agent].contains(obs[agent])
        width = raw.observation_space(agent)["local"].shape[0]
        np.testing.assert_array_equal(local[-4:], np.eye(4, dtype=np.float32)[i])
        assert not local[width:-4].any()


def test_mappo_with_layer_sharing_trains_and_backtests(env_data: DataConfig, tmp_path: Path,
                                                       ray_session: Any) -> None:
    from algospace.config import ModelSettings
    from algospace.evaluation.backtest import backtest, greedy_policy
    from algospace.training.checkpoint import load_actors

    cfg = small("joint_v0", env_data, tmp_path, model=ModelSettings(sharing="layer"),
                trainable=("strategic", "risk"))
    result = train(cfg, log=lambda _: None)
    assert all(np.isfinite(row["losses/policy"]) for row in result.history)
    modules = load_actors(result.checkpoint)
    assert set(modules) == {"strategic", "tactical", "risk"}
    bt = backtest("joint_v0", EnvConfig(data=env_data, split="test", episode_steps=72),
                  greedy_policy(modules))
    assert bt.tiles >= 1 and len(bt.equity) == 72 * bt.tiles
    with pytest.raises(ConfigError, match="'mlmi' is not an actor module"):
        build_ppo_config(small("joint_v0", env_data, tmp_path,
                               model=ModelSettings(sharing="layer"), trainable=("mlmi",)))


def test_value_clip_and_huber_reach_the_learner(env_data: DataConfig, tmp_path: Path) -> None:
    from dataclasses import replace

    cfg = replace(small("strategic_v0", env_data, tmp_path),
                  ppo=PPOSettings(train_batch_size=150, minibatch_size=75, value_clip=None,
                                  huber_delta=3.0))
    assert build_ppo_config(cfg).learner_config_dict == {"value_clip": None, "huber_delta": 3.0,
                                                         "shared_critic": True}


REPRODUCE = """
import hashlib, sys
import ray
from algospace.config import DataConfig
from algospace.data.synthetic import SyntheticConfig
from algospace.config import PPOSettings
from algospace.training.builder import TrainConfig, build_ppo_config
from algospace.training.diagnostics import VALUE_DIAGNOSTICS
from algospace.config import EnvConfig
ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False,
         configure_logging=False)
data = DataConfig(synthetic=SyntheticConfig(days=30, seed=7), cache_dir=sys.argv[1])
cfg = TrainConfig(env="joint_v0", env_config=EnvConfig(data=data, episode_steps=48),
                  iterations=2, num_env_runners=0, num_envs_per_env_runner=1,
                  ppo=PPOSettings(train_batch_size=150, minibatch_size=50, num_epochs=2),
                  out_dir=sys.argv[1])
algo = build_ppo_config(cfg).build_algo()
for _ in range(2):
    algo.train()
module = algo.learner_group._learner.module
digest = hashlib.sha256()
for name in sorted(module.keys()):
    for key, value in sorted(module[name].state_dict().items()):
        digest.update(value.detach().cpu().numpy().tobytes())
print("WEIGHTS", sorted(module.keys()), digest.hexdigest(), flush=True)
algo.stop()
"""


@pytest.mark.slow
def test_training_is_reproducible_across_hash_seeds(env_data: DataConfig, tmp_path: Path
                                                    ) -> None:
    """The same seed trains the same weights in two processes whose string hashes differ.

    RLlib visits the agents of a step and fills the learner's batch in the order of a
    Python set of agent ids, which follows PYTHONHASHSEED. Every actor samples from its own
    generator and the learner sorts its batch by module, so that order no longer matters
    (before, two such runs diverged within the first iteration)."""
    assert env_data.cache_dir is not None
    digests = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        env.pop("RAY_ADDRESS", None)
        done = subprocess.run([sys.executable, "-c", REPRODUCE, env_data.cache_dir], env=env,
                              capture_output=True, text=True, timeout=600,
                              cwd=Path(__file__).resolve().parents[1])
        lines = [line for line in done.stdout.splitlines() if line.startswith("WEIGHTS")]
        assert done.returncode == 0 and lines, done.stderr[-3000:]
        digests.append(lines[-1])
    assert "critic" in digests[0] and "risk" in digests[0]
    assert digests[0] == digests[1]
