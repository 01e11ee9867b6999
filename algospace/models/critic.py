"""Centralised critic of MAPPO: V(global state, MC-dropout features).

:class:`CentralCritic` is a learner-only RLlib module (build it with
``RLModuleSpec(module_class=CentralCritic, learner_only=True,
observation_space=<any agent's Dict obs space>, action_space=<any>,
model_config={...})``). Its input is ``obs["state"]`` (``state_dim`` = 112)
concatenated with ``batch["mc_features"]`` (``mc_dim`` = 15, the joint
MC-dropout features the learner puts into the batch), and an MLP maps every row
to one scalar. Rows never interact (no BatchNorm, no attention over the batch).

Value normalisation (the ValueNorm of the MAPPO paper, PopArt-style without the
output-layer rescaling): the network predicts values in a normalised space,
``v_norm = (v - mean) / std``. The running ``mean`` / ``var`` of all value
targets seen so far are kept in the buffers ``value_mean``, ``value_var`` and
``value_count`` (float64, non-trainable, part of the state dict). They are
updated with the exact count-weighted parallel-variance formula (Chan et al.),
i.e. they are the mean and population variance of every target passed to
:meth:`CentralCritic.update_value_norm` so far -- not an EMA. ``std`` is
``sqrt(max(var, epsilon))``. Before the first update the statistics are mean 0,
var 1 (identity). With ``value_norm: False`` normalising is the identity.

Use :meth:`CentralCritic.compute_values` (de-normalised values) for GAE, and
:meth:`CentralCritic.normalised_values` with :func:`critic_loss` on normalised
targets for the value loss.

``model_config`` keys (defaults in :class:`CriticConfig`; unknown keys ignored):
``hidden``, ``state_dim``, ``mc_dim``, ``mc_features``, ``value_norm``, ``epsilon``.
With ``mc_features: False`` (the ablation of ``model.critic_mc_features``) the input keeps
its ``state_dim + mc_dim`` slots but the MC ones are 0, whatever the batch holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import gymnasium as gym
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.apis.value_function_api import ValueFunctionAPI
from ray.rllib.core.rl_module.rl_module import RLModule
from ray.rllib.core.rl_module.torch.torch_rl_module import TorchRLModule
from ray.rllib.utils.annotations import override
from torch import nn
from torch.nn import functional as F

from algospace.config import STATE_DIM, ModelSettings

MC_FEATURES_KEY = "mc_features"
"""Batch key of the ``[B, mc_dim]`` MC-dropout features."""
STATE = "state"
"""Key of the global state inside the Dict observation."""
VALUES_NORM = "values_norm"
"""Key of the normalised values ``[B]`` in the train forward output."""


@dataclass(frozen=True)
class CriticConfig:
    """Hyper-parameters of :class:`CentralCritic` (``model_config`` keys) and their defaults."""

    hidden: tuple[int, ...] = ModelSettings.critic_hidden
    """Widths of the hidden layers."""
    state_dim: int = STATE_DIM
    """Width of ``obs["state"]``."""
    mc_dim: int = 15
    """Width of ``batch["mc_features"]``."""
    mc_features: bool = ModelSettings.critic_mc_features
    """Read ``batch["mc_features"]``; False: the MC slots of the input are 0."""
    value_norm: bool = ModelSettings.value_norm
    """Normalise value targets with running statistics (ValueNorm)."""
    epsilon: float = 1e-5
    """Floor of the running variance."""

    @classmethod
    def from_model_config(cls, model_config: Mapping[str, Any] | None) -> CriticConfig:
        """The config from an RLlib ``model_config`` dict (unknown keys ignored), validated."""
        mc = dict(model_config or {})
        default = cls()
        config = cls(
            hidden=tuple(int(h) for h in mc.get("hidden", default.hidden)),
            state_dim=int(mc.get("state_dim", default.state_dim)),
            mc_dim=int(mc.get("mc_dim", default.mc_dim)),
            mc_features=bool(mc.get("mc_features", default.mc_features)),
            value_norm=bool(mc.get("value_norm", default.value_norm)),
            epsilon=float(mc.get("epsilon", default.epsilon)),
        )
        if not config.hidden or any(h < 1 for h in config.hidden):
            raise ValueError(f"hidden must be one or more positive widths, got {config.hidden}")
        if config.state_dim < 1 or config.mc_dim < 0:
            raise ValueError(f"state_dim must be >= 1 and mc_dim >= 0, got "
                             f"{config.state_dim} and {config.mc_dim}")
        if config.epsilon <= 0.0:
            raise ValueError(f"epsilon must be > 0, got {config.epsilon}")
        return config


VALUE_NORM_BUFFERS = ("value_mean", "value_var", "value_count")
"""The float64 buffers of the value normalisation (part of the module's state)."""


class CentralCritic(TorchRLModule, ValueFunctionAPI):
    """MLP value function over ``[obs["state"], mc_features]`` with running value normalisation."""

    cfg: CriticConfig
    net: nn.Sequential

    @override(RLModule)
    def setup(self) -> None:
        """Build the MLP and the value-norm buffers."""
        self.cfg = CriticConfig.from_model_config(self.model_config)
        space_dim = _state_dim(self.observation_space)
        if space_dim is not None and space_dim != self.cfg.state_dim:
            raise ValueError(f"observation_space['state'] has {space_dim} dims but "
                             f"state_dim is {self.cfg.state_dim}")
        widths = (self.cfg.state_dim + self.cfg.mc_dim, *self.cfg.hidden)
        layers: list[nn.Module] = []
        for a, b in pairwise(widths):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(widths[-1], 1))
        self.net = nn.Sequential(*layers)
        self.register_buffer("value_mean", torch.zeros((), dtype=torch.float64))
        self.register_buffer("value_var", torch.ones((), dtype=torch.float64))
        self.register_buffer("value_count", torch.zeros((), dtype=torch.float64))

    @override(TorchRLModule)
    def set_state(self, state: Mapping[str, Any]) -> None:
        """RLlib's ``set_state`` casts float64 to float32 on the way in, which rounds the
        value-norm statistics: a run restored from a checkpoint then drifted from the
        uninterrupted run from its first iteration on (in the 9th significant digit). The
        statistics are put back from ``state`` in full precision."""
        super().set_state(state)
        with torch.no_grad():
            for name in VALUE_NORM_BUFFERS:
                if name in state:
                    getattr(self, name).copy_(torch.as_tensor(state[name],
                                                              dtype=torch.float64))

    # ------------------------------------------------------------------ inputs
    def critic_input(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """The ``[B, state_dim + mc_dim]`` input: ``obs["state"]`` then ``mc_features``
        (zeros in their place when the config's ``mc_features`` is False)."""
        obs = batch[Columns.OBS]
        if not isinstance(obs, Mapping) or STATE not in obs:
            raise KeyError(
                f"CentralCritic expects batch[{Columns.OBS!r}] to be a dict with key "
                f"{STATE!r}; got {type(obs).__name__}")
        if MC_FEATURES_KEY not in batch:
            raise KeyError(
                f"CentralCritic needs batch[{MC_FEATURES_KEY!r}] ([B, {self.cfg.mc_dim}] "
                f"MC-dropout features); the learner must add it before calling the critic")
        device = self.value_mean.device
        state = torch.as_tensor(obs[STATE], dtype=torch.float32, device=device)
        mc = torch.as_tensor(batch[MC_FEATURES_KEY], dtype=torch.float32, device=device)
        if state.shape[-1] != self.cfg.state_dim:
            raise ValueError(f"obs[{STATE!r}] has width {state.shape[-1]} but state_dim is "
                             f"{self.cfg.state_dim}")
        if mc.shape[-1] != self.cfg.mc_dim:
            raise ValueError(f"batch[{MC_FEATURES_KEY!r}] has width {mc.shape[-1]} but mc_dim is "
                             f"{self.cfg.mc_dim}")
        if state.shape[:-1] != mc.shape[:-1]:
            raise ValueError(f"obs[{STATE!r}] rows {tuple(state.shape[:-1])} differ from "
                             f"{MC_FEATURES_KEY!r} rows {tuple(mc.shape[:-1])}")
        if not self.cfg.mc_features:
            mc = torch.zeros_like(mc)
        return torch.cat([state, mc], dim=-1)

    # ------------------------------------------------------------------ values
    def normalised_values(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """Raw network output ``[B]`` (normalised value space; use in the loss)."""
        return self.net(self.critic_input(batch)).squeeze(-1)

    @override(ValueFunctionAPI)
    def compute_values(self, batch: dict[str, Any], embeddings: Any = None) -> torch.Tensor:
        """De-normalised values ``[B]`` (use for GAE); ``embeddings`` is unused."""
        return self.denormalise(self.normalised_values(batch))

    @override(RLModule)
    def _forward_train(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """Train forward: the normalised values under :data:`VALUES_NORM`."""
        return {VALUES_NORM: self.normalised_values(batch)}

    # ------------------------------------------------------------ value norm
    def _std(self) -> torch.Tensor:
        """Running standard deviation, ``sqrt(max(var, epsilon))`` (float64 scalar)."""
        return self.value_var.clamp_min(self.cfg.epsilon).sqrt()

    def normalise(self, targets: torch.Tensor) -> torch.Tensor:
        """``(x - mean) / std`` in the dtype of ``targets`` (identity without value norm)."""
        if not self.cfg.value_norm:
            return targets
        mean, std = self.value_mean.to(targets.dtype), self._std().to(targets.dtype)
        return (targets - mean) / std

    def denormalise(self, x: torch.Tensor) -> torch.Tensor:
        """``x * std + mean`` in the dtype of ``x`` (identity without value norm)."""
        if not self.cfg.value_norm:
            return x
        mean, std = self.value_mean.to(x.dtype), self._std().to(x.dtype)
        return x * std + mean

    @torch.no_grad()
    def update_value_norm(self, targets: torch.Tensor) -> None:
        """Fold a batch of value targets into the running mean/var (parallel formula)."""
        if not self.cfg.value_norm:
            return
        t = torch.as_tensor(targets).detach().to(device=self.value_mean.device,
                                                 dtype=torch.float64).reshape(-1)
        if t.numel() == 0:
            return
        if not bool(torch.isfinite(t).all()):
            raise ValueError("update_value_norm got non-finite targets")
        n_b = float(t.numel())
        mean_b = t.mean()
        var_b = t.var(unbiased=False)
        count = self.value_count
        total = count + n_b
        delta = mean_b - self.value_mean
        m2 = self.value_var * count + var_b * n_b + delta.square() * count * n_b / total
        self.value_mean.add_(delta * n_b / total)
        self.value_var.copy_(m2 / total)
        self.value_count.copy_(total)


def critic_loss(pred_norm: torch.Tensor, old_pred_norm: torch.Tensor, target_norm: torch.Tensor,
                clip: float | None = None, huber_delta: float | None = None) -> torch.Tensor:
    """Per-row value loss ``[B]``, optionally clipped PPO-style and/or Huber.

    The unclipped loss is ``(target - pred)^2`` (no 0.5 factor), or with
    ``huber_delta = d`` the Huber loss in torch's convention: ``0.5 e^2`` for
    ``|e| <= d`` and ``d (|e| - d/2)`` beyond. With ``clip = c`` the prediction
    is also clipped to ``old + clamp(pred - old, -c, c)`` and the row loss is the
    max of the clipped and unclipped losses. All inputs are in the normalised space.
    """
    if not pred_norm.shape == old_pred_norm.shape == target_norm.shape:
        raise ValueError(f"shapes differ: pred {tuple(pred_norm.shape)}, old "
                         f"{tuple(old_pred_norm.shape)}, target {tuple(target_norm.shape)}")
    if clip is not None and clip <= 0.0:
        raise ValueError(f"clip must be > 0 or None, got {clip}")
    if huber_delta is not None and huber_delta <= 0.0:
        raise ValueError(f"huber_delta must be > 0 or None, got {huber_delta}")

    def loss(pred: torch.Tensor) -> torch.Tensor:
        if huber_delta is None:
            return (target_norm - pred).square()
        return F.huber_loss(pred, target_norm, reduction="none", delta=huber_delta)

    unclipped = loss(pred_norm)
    if clip is None:
        return unclipped
    clipped = old_pred_norm + (pred_norm - old_pred_norm).clamp(-clip, clip)
    return torch.maximum(unclipped, loss(clipped))


def _state_dim(space: gym.Space[Any] | None) -> int | None:
    """Width of ``space["state"]`` for a Dict space with a 1-D Box state, else None."""
    if isinstance(space, gym.spaces.Dict) and STATE in space.spaces:
        box = space[STATE]
        if isinstance(box, gym.spaces.Box) and len(box.shape) == 1:
            return int(box.shape[0])
    return None
