"""Decentralised actor: one small MLP policy per agent, with MC-dropout statistics.

:class:`ActorModule` is the RLlib (new API stack) module of every agent kind:
strategic agents (``Discrete(7)``), tactical voters (``Discrete(5)``) and the
``risk`` agent (``MultiDiscrete([6, 6, 5])``). It reads only ``obs["local"]``
of the agent's ``Dict(local=..., state=...)`` observation; the global state is
for the central critic.

The encoder is ``Linear -> ReLU -> dropout`` per hidden layer and a linear
head. Dropout is applied with ``torch.nn.functional.dropout(..., training=flag)``,
so it is on exactly when a pass asks for it, independent of ``module.train()`` /
``module.eval()``:

* **Training: consistent dropout** (Hausknecht & Wagener, 2022; see
  :mod:`algospace.models.consistent_dropout`), with ``train_dropout`` on
  (``model.train_dropout``; off by default). Each exploration step draws one dropout mask
  per row (hidden layers only) from this module's own generator, computes the
  logits under it, samples the action from them, and returns the mask as packed
  bits under :data:`DROPOUT_MASK`; RLlib stores it with the step like the other
  extra outputs (``action_logp``, ``action_dist_inputs``, :data:`MC_STATS`), the
  learner's batch carries it back, and ``_forward_train`` recomputes the logits
  under the same mask. The log-probability, entropy and KL of PPO's loss are
  therefore those of the network the action was drawn from, and the importance
  ratio is exactly 1 at the first minibatch of an iteration. With
  ``train_dropout`` off (or ``dropout`` 0) the sampling and training logits are
  the dropout-off network's, as before, and no mask is stored.
* **Greedy evaluation: weight scaling.** Dropout is inverted (kept units are
  scaled by ``1 / (1 - p)`` while training), so the dropout-off network is the
  weight-scaling approximation of the average over masks. It is the policy of
  ``_forward_inference``, the backtest, the decision engine and its NumPy kernel
  and the TorchScript export (tested equal). It is not the MC-averaged
  probabilities; the MC passes below only feed the uncertainty statistics.
* Only during exploration, ``mc_passes`` extra stochastic passes with dropout ON
  run (as ONE batched forward on the batch tiled ``mc_passes`` times, see
  :func:`algospace.models.mc_dropout.mc_probs`, under ``torch.no_grad()``) and
  their per-row statistics (:data:`algospace.models.mc_dropout.AGENT_STATS`) are
  returned under :data:`MC_STATS` as a ``[B, 6]`` float tensor. RLlib's
  env runner stores every column of the module output that is not the action
  itself in the episode's ``extra_model_outputs`` (per agent and timestep), so
  the learner can read them back to build the critic's MC features.

**Reproducible sampling.** The module samples its own actions (and draws the
masks of consistent dropout) from a NumPy generator of its own, and the masks of its MC
passes from a second one (:mod:`algospace.models.sampling_draws`: what one step draws,
from which stream, in which order, and how the draws become masks and actions), seeded
at construction
from torch's global generator — which RLlib seeds from the run's seed and the
env runner's index, and which modules are built from in a fixed order. RLlib
calls the modules of one step in the order of a Python ``set`` of agent ids,
which changes with ``PYTHONHASHSEED`` from process to process; drawing from
the shared global generator made every run with the same seed sample
different actions. With a generator per module, the same seed gives the same
run (tested across processes with different hash seeds).

``model_config`` keys (defaults in :class:`ActorConfig`; other keys, such as the
ones RLlib merges in from its default model config, are ignored): ``hidden``,
``dropout``, ``mc_passes``, ``votes``, ``train_dropout``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.distribution.torch.torch_distribution import (
    TorchCategorical,
    TorchMultiCategorical,
)
from ray.rllib.core.rl_module.rl_module import RLModule
from ray.rllib.core.rl_module.torch.torch_rl_module import TorchRLModule
from ray.rllib.utils.annotations import override
from torch import nn
from torch.nn import functional as F

from algospace.config import ModelSettings
from algospace.models.consistent_dropout import (
    DROPOUT_MASK,
    pack_bits,
    unpack_bits,
)
from algospace.models.mc_dropout import N_AGENT_STATS, agent_stats, agent_stats_multi, mc_probs
from algospace.models.sampling_draws import OwnGenerators, keep_scale

MC_STATS = "mc_stats"
"""Key of the ``[B, 6]`` MC-dropout statistics in the exploration output."""
LOCAL = "local"
"""Key of the agent's local observation inside the Dict observation."""


@dataclass(frozen=True)
class ActorConfig:
    """Hyper-parameters of :class:`ActorModule` (``model_config`` keys) and their defaults."""

    hidden: tuple[int, ...] = ModelSettings.actor_hidden
    """Widths of the hidden layers."""
    dropout: float = ModelSettings.dropout
    """Dropout probability: of the MC passes, and of training when ``train_dropout``."""
    mc_passes: int = ModelSettings.mc_passes
    """Stochastic passes per exploration step; 0 turns the statistics off (zeros)."""
    votes: tuple[float, ...] | None = None
    """Directional vote of each action (Discrete only, in [-1, 1]); None: direction 0."""
    train_dropout: bool = ModelSettings.train_dropout
    """Sample and train with dropout active under stored masks (consistent dropout)."""

    @classmethod
    def from_model_config(cls, model_config: Mapping[str, Any] | None) -> ActorConfig:
        """The config from an RLlib ``model_config`` dict (unknown keys ignored), validated."""
        mc = dict(model_config or {})
        default = cls()
        votes = mc.get("votes", default.votes)
        config = cls(
            hidden=tuple(int(h) for h in mc.get("hidden", default.hidden)),
            dropout=float(mc.get("dropout", default.dropout)),
            mc_passes=int(mc.get("mc_passes", default.mc_passes)),
            votes=None if votes is None else tuple(float(v) for v in votes),
            train_dropout=_flag("train_dropout", mc.get("train_dropout", default.train_dropout)),
        )
        config.validate()
        return config

    def validate(self) -> None:
        """Raise ``ValueError`` on an invalid setting."""
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ValueError(f"hidden must be one or more positive widths, got {self.hidden}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout}")
        if self.mc_passes < 0:
            raise ValueError(f"mc_passes must be >= 0, got {self.mc_passes}")
        if self.votes is not None and any(abs(v) > 1.0 for v in self.votes):
            raise ValueError(f"votes must lie in [-1, 1], got {self.votes}")


class ActorModule(OwnGenerators, TorchRLModule):
    """Dropout-MLP policy over ``obs["local"]`` for Discrete and MultiDiscrete agents."""

    cfg: ActorConfig
    layers: nn.ModuleList
    head: nn.Linear
    input_lens: tuple[int, ...]

    @override(RLModule)
    def setup(self) -> None:
        """Build the encoder and the logits head from the spaces and ``model_config``."""
        self.cfg = ActorConfig.from_model_config(self.model_config)
        # the seed of this module's sampling generator (see the module docstring)
        self._sample_seed = int(torch.randint(0, 2**62, (1,)).item())
        self._sample_rng: np.random.Generator | None = None
        self._mc_rng: np.random.Generator | None = None
        in_dim = _local_dim(self.observation_space)
        space = self.action_space
        if isinstance(space, gym.spaces.Discrete):
            self.input_lens = (int(space.n),)
        elif isinstance(space, gym.spaces.MultiDiscrete):
            if np.asarray(space.nvec).ndim != 1:
                raise ValueError(f"only 1-D MultiDiscrete spaces are supported, got {space}")
            self.input_lens = tuple(int(n) for n in space.nvec)
        else:
            raise ValueError(
                f"ActorModule supports Discrete and MultiDiscrete action spaces, got {space}")
        self._check_votes()
        widths = (in_dim, *self.cfg.hidden)
        # the network algospace.models.network.actor_layers describes (HIDDEN, HEAD)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in pairwise(widths))
        self.head = nn.Linear(widths[-1], sum(self.input_lens))
        votes = self.cfg.votes
        self.register_buffer(
            "votes", None if votes is None else torch.tensor(votes, dtype=torch.float32),
            persistent=False)

    def _check_votes(self) -> None:
        """Votes need a Discrete space with one vote per action."""
        votes = self.cfg.votes
        if votes is None:
            return
        if self.is_multi_discrete:
            raise ValueError("votes are only supported for Discrete action spaces")
        if len(votes) != self.input_lens[0]:
            raise ValueError(
                f"votes has {len(votes)} entries but the action space has "
                f"{self.input_lens[0]} actions")

    @property
    def is_multi_discrete(self) -> bool:
        """True for a MultiDiscrete action space."""
        return isinstance(self.action_space, gym.spaces.MultiDiscrete)

    # ------------------------------------------------------------------ network
    def logits(self, local: torch.Tensor, *, dropout: bool = False,
               keep: torch.Tensor | None = None, first: bool = False) -> torch.Tensor:
        """Action-distribution inputs ``[..., sum(nvec)]``; dropout only if asked.

        ``keep`` (bool ``[..., sum(hidden)]``, the hidden units in forward order): dropout
        under exactly these masks (inverted: kept units scaled by the 16-bit masks'
        :func:`~algospace.models.sampling_draws.keep_scale`, ``1 / (1 - p)`` to 1e-5).
        Otherwise, with ``dropout``, masks from torch's global generator (``F.dropout``).
        ``first``:
        ``local`` is already the first hidden layer's activation, ``relu(layers[0](x))``
        before its dropout (:meth:`first_hidden`; the exploration forward computes it once
        for its logits and its MC passes).
        """
        x = local
        p = self.cfg.dropout
        if keep is not None:
            if keep.shape[-1] != self.mask_bits or keep.shape[:-1] != local.shape[:-1]:
                raise ValueError(f"dropout masks must have shape [*{tuple(local.shape[:-1])}, "
                                 f"{self.mask_bits}], got {tuple(keep.shape)}")
            masks = torch.split(keep, list(self.cfg.hidden), dim=-1)
            scale = keep_scale(p)
        for i, layer in enumerate(self.layers):
            if not (first and i == 0):
                x = F.relu(layer(x))
            x = x * masks[i] * scale if keep is not None else F.dropout(x, p=p, training=dropout)
        return self.head(x)

    def first_hidden(self, local: torch.Tensor) -> torch.Tensor:
        """The first hidden layer's activation before its dropout (see :meth:`logits`)."""
        return F.relu(self.layers[0](local))

    @property
    def mask_bits(self) -> int:
        """Bits of one row's dropout mask: one per hidden unit."""
        return int(sum(self.cfg.hidden))

    @property
    def trains_with_dropout(self) -> bool:
        """Whether sampling and training use stored dropout masks (consistent dropout)."""
        return self.cfg.train_dropout and self.cfg.dropout > 0

    def sample(self, logits: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
        """Actions ``[...]`` or ``[..., heads]`` drawn from the softmax of each head by
        inverse CDF (float64) at ``uniforms [..., heads]``
        (:func:`~algospace.models.sampling_draws.inverse_cdf`)."""
        flat = logits.reshape(-1, logits.shape[-1]).double()
        u = uniforms.reshape(flat.shape[0], -1).double()
        heads = []
        for j, part in enumerate(torch.split(flat, list(self.input_lens), dim=-1)):
            cdf = torch.cumsum(torch.softmax(part, dim=-1), dim=-1)
            heads.append((cdf < u[:, j:j + 1]).sum(dim=-1).clamp_max(part.shape[-1] - 1))
        actions = torch.stack(heads, dim=-1) if self.is_multi_discrete else heads[0]
        return actions.reshape(*logits.shape[:-1], *actions.shape[1:])

    def _local(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """The ``obs["local"]`` tensor of a batch, as float32 on the module's device."""
        obs = batch[Columns.OBS]
        if not isinstance(obs, Mapping) or LOCAL not in obs:
            raise KeyError(
                f"ActorModule expects batch[{Columns.OBS!r}] to be a dict with key {LOCAL!r} "
                f"(Dict observations, no flattening connector); got {type(obs).__name__}")
        return torch.as_tensor(obs[LOCAL], dtype=torch.float32, device=self.head.weight.device)

    def mc_stats(self, local: torch.Tensor, passes: int | None = None) -> torch.Tensor:
        """MC-dropout statistics ``[..., 6]`` from ``passes`` (default ``mc_passes``) passes
        under torch's global generator (the exploration forward draws its own)."""
        n = self.cfg.mc_passes if passes is None else passes
        return actor_mc_stats(self, local, n)

    # ----------------------------------------------------------------- forwards
    @override(TorchRLModule)
    def _forward_inference(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """Greedy/evaluation forward: dropout-off logits (weight scaling, see above)."""
        with torch.no_grad():
            return {Columns.ACTION_DIST_INPUTS: self.logits(self._local(batch))}

    @override(TorchRLModule)
    def _forward_exploration(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """Sampling forward: the logits (under a fresh dropout mask per row, returned packed
        under :data:`DROPOUT_MASK`, when training with dropout; dropout-off otherwise), the
        actions sampled from them (with their log-probabilities) and the ``[B, 6]``
        MC-dropout statistics; every random number from this module's own generators
        (:meth:`draw_exploration`, then :meth:`draw_mc`). The vectorised sampler computes
        the same from the same draws in NumPy (:mod:`algospace.models.actor_np`)."""
        with torch.no_grad():
            local = self._local(batch)
            lead = local.shape[:-1]
            flat = local.reshape(-1, local.shape[-1])
            draws = self.draw_exploration(flat.shape[0])
            out: dict[str, Any] = {}
            first = self.first_hidden(flat)  # shared by the logits and the MC passes
            if draws.train_keep is not None:
                keep = torch.from_numpy(draws.train_keep).to(local.device)
                logits = self.logits(first, keep=keep, first=True)
                out[DROPOUT_MASK] = pack_bits(keep).reshape(*lead, -1)
            else:
                logits = self.logits(first, first=True)
            actions = self.sample(logits, torch.from_numpy(draws.uniforms).to(local.device))
            logp = self.logp(logits, actions)
            stats = self.mc_stats_under(first, self.draw_mc(flat.shape[0]))
            out.update({Columns.ACTION_DIST_INPUTS: logits.reshape(*lead, -1),
                        Columns.ACTIONS: actions.reshape(*lead, *actions.shape[1:]),
                        Columns.ACTION_LOGP: logp.reshape(lead),
                        MC_STATS: stats.reshape(*lead, N_AGENT_STATS)})
            return out

    def mc_stats_under(self, first: torch.Tensor, keep: np.ndarray | None) -> torch.Tensor:
        """MC-dropout statistics ``[B, 6]`` of the passes under ``keep`` (``[passes * B,
        sum(hidden)]``, pass-major; zeros for None) from the first hidden layer ``[B, h]``."""
        rows = first.shape[0]
        if keep is None:
            return first.new_zeros((rows, N_AGENT_STATS))
        passes = keep.shape[0] // max(rows, 1)
        tiled = first.repeat(passes, 1)
        logits = self.logits(tiled, keep=torch.from_numpy(keep).to(first.device), first=True)
        parts = torch.split(logits, list(self.input_lens), dim=-1)
        probs = [torch.softmax(p, dim=-1).reshape(passes, rows, -1) for p in parts]
        if self.is_multi_discrete:
            return agent_stats_multi(probs)
        return agent_stats(probs[0], self.votes, check_votes=False)

    @override(RLModule)
    def _forward_train(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """Training forward, with gradients: the logits under each row's stored dropout mask
        (:data:`DROPOUT_MASK`) when training with dropout; the dropout-off logits otherwise."""
        local = self._local(batch)
        if not self.trains_with_dropout:
            return {Columns.ACTION_DIST_INPUTS: self.logits(local)}
        if DROPOUT_MASK not in batch:
            raise KeyError(
                f"ActorModule trains with dropout (train_dropout=True, dropout="
                f"{self.cfg.dropout}) and needs each row's stored mask in batch"
                f"[{DROPOUT_MASK!r}] (returned by forward_exploration); it is missing. Train "
                f"on sampled episodes, or set model.train_dropout=false")
        keep = unpack_bits(torch.as_tensor(batch[DROPOUT_MASK], device=local.device),
                           self.mask_bits)
        return {Columns.ACTION_DIST_INPUTS: self.logits(local, keep=keep)}

    def logp(self, logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Log-probability of ``actions`` under the distribution of ``logits``: the value
        (bit for bit) of ``self._dist_cls().from_logits(logits).logp(actions)``, the same
        tensor operations without building RLlib's and torch's distribution objects."""
        if not self.is_multi_discrete:
            return _categorical_logp(logits, actions)
        parts = torch.split(logits, list(self.input_lens), dim=-1)
        logps = [_categorical_logp(p, a) for p, a in zip(parts, torch.unbind(actions, dim=-1),
                                                         strict=True)]
        return torch.sum(torch.stack(logps), dim=0)

    # ------------------------------------------------------------ distributions
    def _dist_cls(self) -> Any:
        """TorchCategorical, or TorchMultiCategorical bound to the head sizes."""
        if self.is_multi_discrete:
            return TorchMultiCategorical.get_partial_dist_cls(input_lens=list(self.input_lens))
        return TorchCategorical

    @override(TorchRLModule)
    def get_inference_action_dist_cls(self) -> Any:
        """Distribution class for inference (greedy via ``to_deterministic``)."""
        return self._dist_cls()

    @override(TorchRLModule)
    def get_exploration_action_dist_cls(self) -> Any:
        """Distribution class for sampling."""
        return self._dist_cls()

    @override(TorchRLModule)
    def get_train_action_dist_cls(self) -> Any:
        """Distribution class for the PPO loss."""
        return self._dist_cls()


def _categorical_logp(logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """``torch.distributions.Categorical(logits=logits).log_prob(actions)``'s operations."""
    normalised = logits - logits.logsumexp(dim=-1, keepdim=True)
    return normalised.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)


def _flag(name: str, value: Any) -> bool:
    """A ``model_config`` switch: a bool (not a string such as ``"false"``)."""
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return bool(value)


def _local_dim(space: gym.Space[Any] | None) -> int:
    """Width of the ``local`` Box of a Dict observation space."""
    if not isinstance(space, gym.spaces.Dict) or LOCAL not in space.spaces:
        raise ValueError(f"ActorModule needs a Dict observation space with key {LOCAL!r}, "
                         f"got {space}")
    local = space[LOCAL]
    if not isinstance(local, gym.spaces.Box) or len(local.shape) != 1:
        raise ValueError(f"obs[{LOCAL!r}] must be a 1-D Box, got {local}")
    return int(local.shape[0])


def actor_mc_stats(actor: Any, local: torch.Tensor, passes: int) -> torch.Tensor:
    """MC-dropout statistics ``[..., 6]`` of an actor from ``passes`` stochastic passes.

    ``actor`` has ``logits(x, dropout=...)``, ``input_lens``, ``is_multi_discrete`` and
    ``votes`` (an :class:`ActorModule`, or an exported actor of
    :mod:`algospace.inference.export`). The passes run as ONE batched forward on the rows
    tiled ``passes`` times (:func:`algospace.models.mc_dropout.mc_probs`), the masks from
    torch's global generator (``F.dropout``).
    """
    lead = local.shape[:-1]
    flat = local.reshape(-1, local.shape[-1])
    if passes == 0:
        return flat.new_zeros((*lead, N_AGENT_STATS))
    lens = list(actor.input_lens)

    def dropout_logits(x: torch.Tensor) -> torch.Tensor:
        return actor.logits(x, dropout=True)

    def head_log_probs(x: torch.Tensor) -> torch.Tensor:
        # a softmax over the concatenated per-head log-softmaxes gives each head's
        # probabilities divided by the number of heads; renormalising recovers them
        parts = torch.split(dropout_logits(x), lens, dim=-1)
        return torch.cat([torch.log_softmax(p, dim=-1) for p in parts], dim=-1)

    with torch.no_grad():
        if actor.is_multi_discrete:
            probs = mc_probs(head_log_probs, flat, passes)
            heads = [p / p.sum(dim=-1, keepdim=True) for p in torch.split(probs, lens, dim=-1)]
            stats = agent_stats_multi(heads)
        else:
            # an ActorModule's votes were checked once, by its config
            stats = agent_stats(mc_probs(dropout_logits, flat, passes), actor.votes,
                                check_votes=not isinstance(actor, ActorModule))
    return stats.reshape(*lead, N_AGENT_STATS)
