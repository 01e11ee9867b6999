"""A vectorised sampler inside RLlib: ``resources.sampler: vector`` (the default).

:class:`VectorEnvRunner` is RLlib's ``MultiAgentEnvRunner`` (module building, state,
weights sync and fault tolerance inherited) whose ``sample()`` steps one
:class:`envs.core.vector.VectorEnv` of ``num_envs_per_env_runner`` copies instead of
RLlib's vector of per-copy adapters, and calls each module's ``forward_exploration``
once per vector step, on the rows of the copies where its agents act. It returns what
the stock runner returns with ``batch_mode="complete_episodes"``: one
``MultiAgentEpisode`` per finished episode, in the order they finished (by step, then
copy), until as many episodes as copies have finished; the copies still running then
are dropped, and every ``sample()`` restarts every copy (seeded only the first time,
as :mod:`envs.rllib` seeds its adapters once). Each agent episode carries the
observations (layer sharing's padding included), actions, rewards, terminated /
truncated flags, infos and the extra model outputs (``action_dist_inputs``,
``action_logp``, the MC statistics, ``weights_seq_no``), built in bulk at the end
(:mod:`algospace.training.sampler_episodes`); the MC statistics of the NumPy-computed
forwards are computed at the end too, all of a call's forwards in blocks
(:meth:`~algospace.models.actor_np.NumpyActors.mc_stats_of`, the masks each module's MC
generator would have given the forwards one by one). The multi-timescale rows of ``joint_v0``
are the adapter's: a strategic agent observes at its 30-minute decisions and at the end,
its reward the discounted sum Σ γ^i r_i of the team rewards in between.

Equal to the stock runner, for the same seed, weights and copies (tests/test_sampler.py),
with two known differences in the order of the random draws: a copy whose episode ends
before the others (ruin) restarts at once here, while RLlib's vector env restarts it one
step later; and a module shared by several agents (``model.sharing: layer``) gets its
rows agent by agent (sorted), each agent's copies in order, while RLlib orders them copy
by copy, the agents of a copy in the order of a Python ``set`` (which changes with
PYTHONHASHSEED). The episodes' flags are RLlib's: an episode in which every agent is
done counts as terminated, also when it was truncated.

Our actors' exploration forward is computed in NumPy (:mod:`algospace.models.actor_np`,
:attr:`VectorEnvRunner.numpy_forward`): the same draws from each module's generator as
its torch forward, the same actions, the floats to float32 rounding (tested against the
stock runner both ways). It refuses what it cannot honour
(:func:`~algospace.training.sampler_config.check_vector_config`): an env that is not one of
ours, ``batch_mode="truncate_episodes"``, custom env-runner connectors, callbacks.
Evaluation-style calls (``explore=False``, ``random_actions=True``) and
``num_timesteps`` go to the stock ``sample()``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import numpy as np
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.env.multi_agent_env_runner import MultiAgentEnvRunner
from ray.rllib.env.multi_agent_episode import MultiAgentEpisode
from ray.rllib.env.single_agent_episode import SingleAgentEpisode
from ray.rllib.utils.metrics import (
    EPISODE_AGENT_RETURN_MEAN,
    EPISODE_AGENT_STEPS,
    EPISODE_DURATION_SEC_MEAN,
    EPISODE_LEN_MAX,
    EPISODE_LEN_MEAN,
    EPISODE_LEN_MIN,
    EPISODE_MODULE_RETURN_MEAN,
    EPISODE_RETURN_MAX,
    EPISODE_RETURN_MEAN,
    EPISODE_RETURN_MIN,
    NUM_AGENT_STEPS_SAMPLED,
    NUM_AGENT_STEPS_SAMPLED_LIFETIME,
    NUM_ENV_STEPS_SAMPLED,
    NUM_ENV_STEPS_SAMPLED_LIFETIME,
    NUM_EPISODES,
    NUM_EPISODES_LIFETIME,
    NUM_MODULE_STEPS_SAMPLED,
    NUM_MODULE_STEPS_SAMPLED_LIFETIME,
    SAMPLE_TIMER,
    WEIGHTS_SEQ_NO,
)

from algospace.config import STRATEGIC_AGENTS
from algospace.models.actor import MC_STATS
from algospace.models.actor_np import FIRST_LAYER, NumpyActors, signature
from algospace.ray_compat import filled_episode, runner_fields
from algospace.training.sampler_config import check_vector_config
from algospace.training.sampler_episodes import LATER, Recorder
from algospace.training.sampler_forward import exploring, plain_actor, stack_rows, to_numpy
from envs.core.costs import sampling_cost_weight


class VectorEnvRunner(MultiAgentEnvRunner):
    """RLlib's multi-agent env runner sampling a :class:`VectorEnv` (module docstring)."""

    numpy_forward: bool = True
    """Compute our actors' exploration forward in NumPy, stacked by signature
    (:mod:`algospace.models.actor_np`: the same draws, the torch forward's values to float32
    rounding); False: call each module's torch ``_forward_exploration`` (the stock
    runner's values bit for bit)."""

    def __init__(self, config: Any, **kwargs: Any) -> None:
        check_vector_config(config)
        super().__init__(config=config, **kwargs)
        self.venv: Any = None
        self._venv_seed: int | None = None
        self._done_for_metrics: list[Any] = []
        self._explore: dict[str, Any] = {}
        self._numpy: dict[str, Any] = {}  # module id -> its signature (NumPy forward)
        self._stacks: dict[tuple[str, ...], NumpyActors] = {}
        # module id -> the first hidden layer of each of its forwards (for the MC passes)
        self._mc_rows: dict[str, list[np.ndarray]] = {}
        self._mc_count: dict[str, int] = {}
        self._fields = runner_fields(self)  # seed, device, weights version (each sample())
        if self.env is not None:
            self._make_vector_env()

    def _make_vector_env(self) -> None:
        """The VectorEnv of ``num_envs`` copies, configured as :func:`envs.rllib.make_env`."""
        from algospace.features.shipping import ENV_KEY, Shipped, provide
        from envs.core.vector import VectorEnv
        from envs.rllib import LayerSharing

        config = dict(self.config.env_config or {})
        sharing = str(config.pop("sharing", "agent"))
        self.gamma = float(config.pop("gamma", 1.0))
        shipped = config.pop(ENV_KEY, None)
        if shipped is not None:
            provide(Shipped.from_dict(shipped))
        venv = VectorEnv(self.config.env, self.num_envs, config)
        self.venv = venv
        self.agents: list[str] = list(venv.possible_agents)
        spaces = {a: venv.observation_space(a) for a in self.agents}
        layer = LayerSharing.for_spaces(spaces) if sharing == "layer" else None
        self._pad = {} if layer is None else dict(layer.extra)
        obs_spaces = {a: layer.space(a, sp) if layer else sp for a, sp in spaces.items()}
        self._spaces = (obs_spaces, {a: venv.action_space(a) for a in self.agents})
        env = venv.env
        multi_clock = env.STRATEGIC and not env.STRATEGIC_CLOCK
        self._slow = [a for a in self.agents if multi_clock and a in STRATEGIC_AGENTS]
        mapping = self.config.policy_mapping_fn
        self._module_of = {a: mapping(a, None) for a in self.agents}
        self._modules: dict[str, list[str]] = defaultdict(list)
        for agent in self.agents:
            self._modules[self._module_of[agent]].append(agent)

    def rng_envs(self) -> list[Any]:
        """The copies' random states as envs with ``get_rng_state``/``set_rng_state``
        (:mod:`algospace.training.rng` carries them in a checkpoint); none without env."""
        return [] if self.venv is None else [_CopyRng(self, i) for i in range(self.num_envs)]

    # ------------------------------------------------------------------ sample
    def sample(self, *, num_timesteps: int | None = None, num_episodes: int | None = None,
               explore: bool | None = None, random_actions: bool = False,
               force_reset: bool = False) -> list[Any]:
        """Complete episodes from the vector env (``num_episodes``, default one per copy);
        anything else through the stock runner."""
        if explore is None:
            explore = self.config.explore
        if self.venv is None or num_timesteps is not None or random_actions or not explore:
            return super().sample(num_timesteps=num_timesteps, num_episodes=num_episodes,
                                  explore=explore, random_actions=random_actions,
                                  force_reset=force_reset)
        self._fields = runner_fields(self)
        self.metrics.log_value(key=WEIGHTS_SEQ_NO, value=self._fields[2], window=1)
        with self.metrics.log_time(SAMPLE_TIMER), exploring(self.module, self._modules) \
                as self._explore:
            self._numpy = {m: signature(self.module[m]) for m in self._modules
                           if self.numpy_forward and plain_actor(self.module[m])}
            episodes = self._sample_vector(self.num_envs if num_episodes is None
                                           else int(num_episodes))
            # the weights change before the next call
            self._numpy, self._stacks, self._mc_rows, self._mc_count = {}, {}, {}, {}
        self._done_for_metrics.extend(episodes)
        return episodes

    def _sample_vector(self, wanted: int) -> list[Any]:
        """Step every copy until ``wanted`` episodes have finished."""
        venv, n = self.venv, self.num_envs
        seed = self._fields[0]
        if seed == self._venv_seed:
            seed = None
        if seed is not None:
            self._venv_seed = seed
        venv.set_cost_weight(sampling_cost_weight())  # 1.0 unless a cost ramp runs
        obs, info, acting = venv.reset(seed=seed)
        obs = self._padded(obs)
        rec = Recorder(self.agents, n)
        pending = {a: np.zeros(n) for a in self._slow}
        weight = np.ones(n)
        event = rec.info(info)
        everyone = np.arange(n)
        for agent in self.agents:
            rec.observed(agent, everyone, obs[agent], None, event)
        lifetime = self.num_env_steps_sampled_lifetime // (self.config.num_env_runners or 1)
        eps = vector_steps = 0
        agent_steps = dict.fromkeys(self.agents, 0)
        while eps < wanted:
            t = (lifetime + vector_steps * n) * (self.config.num_env_runners or 1)
            actions = self._act(rec, obs, acting, t)
            step = venv.step(actions)
            vector_steps += 1
            rec.env_t += 1
            done = venv.done
            event = rec.info(step.info)
            new_obs = self._padded(step.obs)
            keep = done | step.info["strategic_decision"] if self._slow else done
            for agent in self.agents:
                rewards = step.rewards[agent]
                if agent in pending:
                    pending[agent] += weight * rewards
                    rewards = pending[agent]
                    idx = np.flatnonzero(keep)
                    rec.observed(agent, idx, _rows(new_obs[agent], idx), rewards[idx], event)
                    pending[agent] = np.where(keep, 0.0, pending[agent])
                else:
                    rec.observed(agent, everyone, new_obs[agent], rewards, event)
                agent_steps[agent] += int(keep.sum()) if agent in pending else n
            if self._slow:
                weight = np.where(keep, 1.0, weight * self.gamma)
            ended = np.flatnonzero(done)
            eps += self._finish(rec, step, ended, wanted - eps)
            if eps >= wanted:
                break
            if ended.size:
                obs, info, acting = venv.reset_done()
                obs = self._padded(obs)
                rec.restart(ended)
                weight[ended] = 1.0
                event = rec.info(info)
                for agent in self.agents:
                    rec.observed(agent, ended, _rows(obs[agent], ended), None, event)
            else:
                obs, acting = new_obs, step.acting
        self._mc_later(rec)
        for agent, count in agent_steps.items():
            self._count_agent_steps(agent, count)
        self.metrics.log_value(NUM_ENV_STEPS_SAMPLED, vector_steps * n, reduce="sum")
        self.metrics.log_value(NUM_ENV_STEPS_SAMPLED_LIFETIME, vector_steps * n,
                               reduce="lifetime_sum", with_throughput=True)
        obs_space, act_space = self._spaces
        return rec.episodes(
            make_episode=lambda: MultiAgentEpisode(
                observation_space=obs_space, action_space=act_space,
                agent_to_module_mapping_fn=self.config.policy_mapping_fn,
                agent_module_ids=dict(self._module_of)),
            single=lambda **kw: SingleAgentEpisode(
                observation_space=obs_space[kw["agent_id"]],
                action_space=act_space[kw["agent_id"]], **kw),
            fill=filled_episode, module_of=self._module_of.__getitem__,
            weights_seq_no=self._fields[2])

    def _act(self, rec: Recorder, obs: dict[str, Any], acting: dict[str, np.ndarray],
             t: int) -> dict[str, np.ndarray]:
        """One exploration forward per module on its acting rows (modules of one
        :func:`signature` with as many rows: one NumPy stack); every agent's (n,) actions
        (zeros where it does not act: the env ignores them)."""
        n = self.num_envs
        out: dict[str, np.ndarray] = {}
        todo = []
        for module_id, agents in self._modules.items():
            idx = {a: _acting_rows(acting[a]) for a in agents}
            rows = [(a, idx[a]) for a in agents if _size(idx[a], n)]
            if rows:
                todo.append((module_id, agents, idx, rows))
            else:
                for a in agents:
                    out[a] = np.zeros((n, *self._spaces[1][a].shape), np.int64)
        for (_, agents, idx, rows), result in zip(todo, self._forward(todo, obs, t),
                                                          strict=True):
            actions = result.pop(Columns.ACTIONS)
            extra = {k: v for k, v in result.items() if isinstance(v, np.ndarray)}
            if len(rows) == 1 and len(agents) == 1 and isinstance(rows[0][1], slice):
                a = agents[0]  # the common case: one agent, every copy acts
                rec.acted(a, np.arange(n), actions, extra)
                out[a] = actions
                continue
            start = 0
            for a in agents:
                full = np.zeros((n, *actions.shape[1:]), actions.dtype)
                sel = idx[a]
                i: np.ndarray = np.arange(n) if isinstance(sel, slice) else sel
                if i.size:
                    part = slice(start, start + i.size)
                    full[i] = actions[part]
                    rec.acted(a, i, actions[part], {k: v[part] for k, v in extra.items()})
                    start += i.size
                out[a] = full
        return out

    def _forward(self, todo: list[Any], obs: dict[str, Any], t: int) -> list[dict[str, Any]]:
        """The exploration outputs (numpy) of each module of ``todo`` on its rows."""
        results: list[dict[str, Any]] = [{} for _ in todo]
        stacks: dict[Any, list[tuple[int, str, np.ndarray]]] = defaultdict(list)
        device = self._fields[1]
        for j, (module_id, _, _, rows) in enumerate(todo):
            if module_id in self._numpy:
                local = stack_rows(obs, rows, "local")
                stacks[self._numpy[module_id], local.shape[0]].append((j, module_id, local))
                continue
            batch = {Columns.OBS: {key: torch.from_numpy(stack_rows(obs, rows, key)).to(device)
                                   for key in ("local", "state")}}
            results[j] = to_numpy(self._explore[module_id](batch, t=t))
        for members in stacks.values():
            ids = tuple(m for _, m, _ in members)
            actors = self._stacks.get(ids)
            if actors is None:
                actors = self._stacks[ids] = NumpyActors([self.module[m] for m in ids])
            for (j, module_id, x), result in zip(
                    members, actors.explore([x for _, _, x in members], mc=False), strict=True):
                done = self._mc_rows.setdefault(module_id, [])
                offset = self._mc_count.get(module_id, 0)
                self._mc_count[module_id] = offset + len(x)
                done.append(result.pop(FIRST_LAYER))
                result[LATER + MC_STATS] = np.arange(offset, offset + len(x))
                results[j] = result
        return results

    def _mc_later(self, rec: Recorder) -> None:
        """The MC statistics of every NumPy-computed forward of this ``sample()``, in bulk
        (:meth:`NumpyActors.mc_stats_of`: the masks each module's MC generator gives the
        forwards in their order, as its torch forward would have drawn them step by step),
        handed to the recorder for the rows that recorded their number. Modules of one
        signature with forwards of the same sizes are computed as one stack."""
        groups: dict[Any, list[str]] = defaultdict(list)
        for module_id, done in self._mc_rows.items():
            sizes = tuple(len(x) for x in done)
            groups[self._numpy[module_id], sizes].append(module_id)
        for ids in groups.values():
            actors = NumpyActors([self.module[m] for m in ids])
            forwards = [list(rows) for rows in zip(*(self._mc_rows[m] for m in ids),
                                                   strict=True)]
            for module_id, table in zip(ids, actors.mc_stats_of(forwards), strict=True):
                for agent in self._modules[module_id]:
                    rec.fill_later(agent, MC_STATS, table)

    def _finish(self, rec: Recorder, step: Any, ended: np.ndarray, room: int) -> int:
        """Record the copies ``ended`` (in copy order, at most ``room`` of them) as finished
        episodes; all of them count as sampled episodes, as in RLlib's runner."""
        if not ended.size:
            return 0
        self.metrics.log_value(NUM_EPISODES, int(ended.size), reduce="sum")
        self.metrics.log_value(NUM_EPISODES_LIFETIME, int(ended.size), reduce="lifetime_sum")
        for copy in ended[:room]:
            c = int(copy)
            term = {a: bool(step.terminated[a][c]) for a in self.agents}
            trunc = {a: bool(step.truncated[a][c]) for a in self.agents}
            rec.finish(c, term, trunc, all_terminated=any(term.values()))
        return int(min(room, ended.size))

    def _padded(self, obs: dict[str, Any]) -> dict[str, Any]:
        """Layer sharing: every shared agent's ``local`` rows padded (zeros + one-hot id)."""
        if not self._pad:
            return obs
        out = dict(obs)
        for agent, tail in self._pad.items():
            local = obs[agent]["local"]
            wide = np.broadcast_to(tail, (local.shape[0], tail.shape[0]))
            out[agent] = {"local": np.concatenate((local, wide), axis=1),
                          "state": obs[agent]["state"]}
        return out

    def _count_agent_steps(self, agent: str, count: int) -> None:
        """The agent's (and its module's) sampled steps, as RLlib's runner logs them."""
        if not count:
            return
        module = self._module_of[agent]
        self.metrics.log_value((NUM_AGENT_STEPS_SAMPLED, agent), count, reduce="sum")
        self.metrics.log_value((NUM_AGENT_STEPS_SAMPLED_LIFETIME, agent), count,
                               reduce="lifetime_sum")
        self.metrics.log_value((NUM_MODULE_STEPS_SAMPLED, module), count, reduce="sum")
        self.metrics.log_value((NUM_MODULE_STEPS_SAMPLED_LIFETIME, module), count,
                               reduce="lifetime_sum")

    # ----------------------------------------------------------------- metrics
    def get_metrics(self) -> Any:
        """Episode metrics of the episodes sampled since the last call (as RLlib's runner
        logs them), plus the stock runner's own, then the reduced metrics."""
        win = max(1, math.ceil(self.config.metrics_num_episodes_for_smoothing
                                   / (self.config.num_env_runners or 1)))
        for eps in self._done_for_metrics:
            agents = {str(a): sa.get_return() for a, sa in eps.agent_episodes.items()}
            modules: dict[str, float] = defaultdict(float)
            for sa in eps.agent_episodes.values():
                modules[sa.module_id] += sa.get_return()
            length, ret = len(eps), eps.get_return()
            self.metrics.log_dict({
                EPISODE_LEN_MEAN: length, EPISODE_RETURN_MEAN: ret,
                EPISODE_DURATION_SEC_MEAN: eps.get_duration_s(),
                EPISODE_AGENT_RETURN_MEAN: agents, EPISODE_MODULE_RETURN_MEAN: dict(modules),
                EPISODE_AGENT_STEPS: {str(a): len(sa) for a, sa in eps.agent_episodes.items()},
            }, window=win)
            self.metrics.log_dict({EPISODE_LEN_MIN: length, EPISODE_RETURN_MIN: ret},
                                  reduce="min", window=win)
            self.metrics.log_dict({EPISODE_LEN_MAX: length, EPISODE_RETURN_MAX: ret},
                                  reduce="max", window=win)
        self._done_for_metrics.clear()
        return super().get_metrics()


class _CopyRng:
    """One copy's random state, in :class:`envs.rllib.RLlibEnv`'s format (+ its tile)."""

    def __init__(self, runner: VectorEnvRunner, i: int) -> None:
        self.runner, self.i = runner, i

    def get_rng_state(self) -> dict[str, Any]:
        last = self.runner._venv_seed
        return {"last_seed": None if last is None else last + self.i,
                **self.runner.venv.rng_state(self.i)}

    def set_rng_state(self, state: dict[str, Any]) -> None:
        last = state["last_seed"]
        self.runner._venv_seed = None if last is None else int(last) - self.i
        self.runner.venv.set_rng_state(self.i, state)


def _acting_rows(mask: np.ndarray) -> np.ndarray | slice:
    """The copies of an acting mask: ``slice(None)`` when all of them act."""
    return slice(None) if mask.all() else np.flatnonzero(mask)


def _size(idx: np.ndarray | slice, n: int) -> int:
    """The number of copies ``idx`` (of ``n``) selects."""
    return n if isinstance(idx, slice) else int(idx.size)


def _rows(obs: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, np.ndarray]:
    """The rows ``idx`` of an agent's ``{local, state}`` arrays."""
    return {key: values[idx] for key, values in obs.items()}
