"""What the vectorised sampler records while it steps, and the episodes it builds from it.

:class:`Recorder` keeps, per agent, the rows every copy produced as chunks of arrays over
the copies (one chunk per vector step, no per-copy Python work while stepping): the
observations with the reward delivered with them, the env step they arrived at and a
reference to the copy's info; and the actions with the module's extra outputs. Each row
carries the serial number of the copy's episode. :meth:`Recorder.episodes` sorts the rows
by episode (stable, so in time order) and builds each finished episode's
``SingleAgentEpisode``\\ s in one go from array slices (``len_lookback_buffer=0``, already
numpy, as RLlib's runner returns them after ``to_numpy()``), then the
``MultiAgentEpisode`` around them (:func:`algospace.ray_compat.filled_episode`). The env's
infos travel as columns (:data:`INFO_COLUMNS`), not as one dict per observation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np

Batch = dict[str, np.ndarray]
OUTPUTS = ("action_dist_inputs", "action_logp")
"""Extra model outputs every module returns with its actions (RLlib's column names)."""
INFO_COLUMNS = "algospace_infos"
"""Key, in each agent episode's ``custom_data``, of the env's infos at its observations as
columns: ``{key: array}``, one entry per observation (the stock runner's episodes hold the
same values as the list of dicts ``get_infos()``; these hold no such list)."""
LATER = "later:"
"""Prefix of an extra output computed after the steps: ``extra[LATER + name]`` holds each
row's number in the table :meth:`Recorder.fill_later` gives for ``name``, and the episodes
carry that table's rows under ``name``."""


@dataclass
class Finished:
    """A copy's episode that has ended."""

    serial: int
    copy: int
    env_t: int
    terminated: Mapping[str, bool]
    truncated: Mapping[str, bool]
    all_terminated: bool
    """The env's ``__all__`` terminated flag (ruin); False: the episode was truncated."""
    start_time: float
    end_time: float


class Recorder:
    """Rows of every copy's episodes during one ``sample()`` call (see the module doc)."""

    def __init__(self, agents: list[str], n: int) -> None:
        self.agents, self.n = agents, n
        self.serial = np.arange(n, dtype=np.int64)  # each copy's current episode
        self._next = n
        self.env_t = np.zeros(n, np.int64)  # env steps of each copy's current episode
        self.started = np.full(n, time.perf_counter())
        self._obs: dict[str, list[tuple[np.ndarray, ...]]] = {a: [] for a in agents}
        self._act: dict[str, list[tuple[np.ndarray, np.ndarray, Batch]]] = {
            a: [] for a in agents}
        self._infos: list[Batch] = []
        self._later: dict[tuple[str, str], np.ndarray] = {}
        self.finished: list[Finished] = []

    def info(self, info: Batch) -> int:
        """Keep one event's per-copy info; its index for :meth:`observed`."""
        self._infos.append(info)
        return len(self._infos) - 1

    def restart(self, idx: np.ndarray) -> None:
        """Copies ``idx`` start new episodes."""
        self.serial[idx] = np.arange(self._next, self._next + len(idx))
        self._next += len(idx)
        self.env_t[idx] = 0
        self.started[idx] = time.perf_counter()

    def observed(self, agent: str, idx: np.ndarray, obs: Batch, rewards: np.ndarray | None,
                 event: int) -> None:
        """Agent ``agent`` observed ``obs`` (rows of the copies ``idx``) with ``rewards``
        (None: the first observation of an episode)."""
        if not len(idx):
            return
        rew = np.zeros(len(idx)) if rewards is None else np.asarray(rewards, np.float64)
        self._obs[agent].append((self.serial[idx], self.env_t[idx], event * self.n + idx,
                                 rew, obs["local"], obs["state"]))

    def acted(self, agent: str, idx: np.ndarray, actions: np.ndarray, extra: Batch) -> None:
        """Agent ``agent`` took ``actions`` in the copies ``idx`` (with the module's extra
        outputs, rows aligned)."""
        if len(idx):
            self._act[agent].append((self.serial[idx], actions, extra))

    def fill_later(self, agent: str, name: str, table: np.ndarray) -> None:
        """The rows of the extra output ``name`` of ``agent``'s actions recorded under
        ``LATER + name`` (row numbers into ``table``)."""
        self._later[agent, name] = table

    def finish(self, copy: int, terminated: Mapping[str, bool], truncated: Mapping[str, bool],
               all_terminated: bool) -> None:
        """Copy ``copy``'s episode ended at this step (call in the order to return them)."""
        self.finished.append(Finished(
            int(self.serial[copy]), copy, int(self.env_t[copy]), dict(terminated),
            dict(truncated), all_terminated, float(self.started[copy]), time.perf_counter()))

    # ------------------------------------------------------------------ episodes
    def episodes(self, *, make_episode: Callable[[], Any], single: Callable[..., Any],
                 fill: Callable[..., Any], module_of: Callable[[str], str],
                 weights_seq_no: int) -> list[Any]:
        """The finished episodes, in :meth:`finish` order, as ``MultiAgentEpisode``\\ s.

        ``make_episode()``: a new empty ``MultiAgentEpisode``; ``single(**kwargs)``: a
        ``SingleAgentEpisode``; ``fill``: :func:`algospace.ray_compat.filled_episode`.
        """
        if not self.finished:
            return []
        wanted = np.asarray([f.serial for f in self.finished], np.int64)
        infos = self._info_table()
        stacked: dict[tuple[int, ...], np.ndarray] = {}
        per_agent = {a: (self._grouped_obs(a, wanted, stacked), self._grouped_act(a, wanted))
                     for a in self.agents}
        out = []
        for k, fin in enumerate(self.finished):
            episode = make_episode()
            agent_eps, steps = {}, {}
            # RLlib's MultiAgentEpisode declares an episode terminated also when every agent
            # is done (terminated or truncated), and gives that flag to each agent episode
            terminated = fin.all_terminated or all(
                fin.terminated[a] or fin.truncated[a] for a in self.agents)
            truncated = not fin.all_terminated
            for agent, (obs, act) in per_agent.items():
                o_lo, o_hi = obs["bounds"][k], obs["bounds"][k + 1]
                if o_hi - o_lo < 2:  # never acted (RLlib prunes such agent episodes)
                    continue
                a_lo, a_hi = act["bounds"][k], act["bounds"][k + 1]
                if a_hi - a_lo != o_hi - o_lo - 1:
                    raise RuntimeError(
                        f"sampler: agent {agent!r} has {o_hi - o_lo} observations but "
                        f"{a_hi - a_lo} actions in one episode; expected one action less")
                extra = {key: values[a_lo:a_hi] for key, values in act["extra"].items()}
                extra["weights_seq_no"] = np.full(a_hi - a_lo, weights_seq_no, np.int64)
                agent_eps[agent] = single(
                    observations={"local": obs["local"][k], "state": obs["state"][k]},
                    infos=[{} for _ in range(o_hi - o_lo)],  # the infos: in custom_data
                    actions=act["actions"][a_lo:a_hi],
                    rewards=obs["rewards"][k][1:],
                    terminated=bool(fin.terminated[agent] or terminated),
                    truncated=bool(fin.truncated[agent] or truncated),
                    extra_model_outputs=extra, len_lookback_buffer=0, agent_id=agent,
                    module_id=module_of(agent), multi_agent_episode_id=episode.id_)
                refs = obs["ref"][k]
                agent_eps[agent].custom_data[INFO_COLUMNS] = {
                    key: column[refs] for key, column in infos.items()}
                steps[agent] = obs["env_t"][k]
            out.append(fill(episode, agent_eps, env_t=fin.env_t, agent_env_steps=steps,
                            terminated=terminated, truncated=truncated,
                            start_time=fin.start_time, end_time=fin.end_time))
        return out

    def _info_table(self) -> dict[str, np.ndarray]:
        """Each info key's values of every event and copy, indexed by ref."""
        return {k: np.concatenate([ev[k] for ev in self._infos]) for k in self._infos[0]}

    def _grouped_obs(self, agent: str, wanted: np.ndarray,
                     stacked: dict[tuple[int, ...], np.ndarray]) -> dict[str, Any]:
        """The agent's observation rows of the ``wanted`` episodes: per column, one array
        per episode (in ``wanted``'s order), and the group boundaries.

        When every step recorded all copies and no copy restarted (the usual sample: every
        copy runs one episode to its end) the rows of copy ``c`` are every ``n``-th row,
        and each episode's arrays are strided views of the stacked steps (one copy of the
        observations instead of two). Agents that observed the very same arrays (the
        global state; ``entry`` and ``risk``'s equal locals) share one stack (``stacked``,
        by the arrays' identities: all of them alive while the recorder holds them)."""
        chunks = self._obs[agent]
        serial = np.stack([c[0] for c in chunks]) \
            if all(len(c[0]) == self.n for c in chunks) else None
        names = ("env_t", "ref", "rewards", "local", "state")
        if serial is not None and (serial == serial[0]).all() \
                and np.array_equal(serial[0], wanted):
            steps = len(chunks)
            cols = [_stack_once([c[j] for c in chunks], stacked) for j in range(1, 6)]
            out: dict[str, Any] = {name: [col[:, k] for k in range(len(wanted))]
                                   for name, col in zip(names, cols, strict=True)}
            out["bounds"] = np.arange(len(wanted) + 1) * steps
            return out
        keep, bounds = _grouping(np.concatenate([c[0] for c in chunks]), wanted)
        out = {"bounds": bounds}
        for name, j in zip(names, range(1, 6), strict=True):
            col = np.concatenate([c[j] for c in chunks])[keep]
            out[name] = [col[lo:hi] for lo, hi in pairwise(bounds)]
        return out

    def _grouped_act(self, agent: str, wanted: np.ndarray) -> dict[str, Any]:
        """The agent's action rows of the ``wanted`` episodes, grouped by episode."""
        chunks = self._act[agent]
        if not chunks:
            return {"bounds": np.zeros(len(wanted) + 1, np.int64), "actions": None,
                    "extra": {}}
        serial = np.concatenate([c[0] for c in chunks])
        keep, bounds = _grouping(serial, wanted)
        actions = np.concatenate([c[1] for c in chunks])[keep]
        extra = {key: np.concatenate([c[2][key] for c in chunks])[keep]
                 for key in chunks[0][2]}
        for key in [k for k in extra if k.startswith(LATER)]:
            name = key[len(LATER):]
            extra[name] = self._later[agent, name][extra.pop(key)]
        return {"bounds": bounds, "actions": actions, "extra": extra}


def _stack_once(arrays: list[np.ndarray], stacked: dict[tuple[int, ...], np.ndarray]
                ) -> np.ndarray:
    """``np.stack(arrays)``, or the stack of the same array objects made before."""
    key = tuple(map(id, arrays))
    out = stacked.get(key)
    if out is None:
        out = stacked[key] = np.stack(arrays)
    return out


def _grouping(serial: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the ``wanted`` episodes, grouped in ``wanted``'s order (time order
    kept within each), and the group boundaries (len(wanted) + 1)."""
    position = np.full(int(max(serial.max(initial=0), wanted.max()) + 1), -1, np.int64)
    position[wanted] = np.arange(len(wanted))
    pos = position[serial]
    rows = np.flatnonzero(pos >= 0)
    order = rows[np.argsort(pos[rows], kind="stable")]
    counts = np.bincount(pos[rows], minlength=len(wanted))
    return order, np.concatenate(([0], np.cumsum(counts)))
