"""The ``env`` section: one frozen dataclass, built from keywords or a dict, and the names
it is checked against (the envs, their agents, the global-state size).

``EnvConfig`` is what every env takes. ``make_config`` accepts keyword
arguments (Python) or one mapping (an RLlib ``env_config`` or a YAML
section) and rejects unknown keys with a did-you-mean hint. The envs
themselves (:mod:`envs.registry`, :mod:`envs.core.layout`) are checked against
the names defined here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from algospace.config.data import DataConfig
from algospace.config.evaluation import WalkForwardSection
from algospace.errors import ConfigError
from algospace.schema import build

EnvName = Literal["strategic_v0", "tactical_v0", "joint_v0", "single_v0"]
"""The registered environments (:data:`envs.registry.ENVS` has exactly these keys)."""

STRATEGIC_AGENTS: tuple[str, ...] = ("mlmi", "nwrqk", "portfolio", "regime")
"""The 30-minute agents, sorted."""
TACTICAL_AGENTS: tuple[str, ...] = ("entry", "fvg", "momentum", "risk")
"""The 5-minute agents, sorted."""
STATE_DIM = 112
"""Size of the global state (DESIGN §6); :mod:`envs.core.layout` names exactly this many."""
LEVERAGE_CAP = 2.0
"""Default cap on notional exposure over capital (gross: |position| × price × point value);
:mod:`algospace.market.sizing` sizes positions with it."""


@dataclass(frozen=True)
class RewardConfig:
    """How the team reward is computed from the account (see the env cards)."""

    scale: float | None = None
    """Dollars per unit of reward; ``None``: point value × the position limit (one point at full
    size is 1.0)."""
    drawdown_penalty: float = 0.0
    """Extra cost per dollar by which the drawdown from the equity peak grows in a step (0: the
    reward is the net dollar P&L the report measures; 0.1 made strategic_v0 learn nothing at
    6x the calibrated signal, README "Does the team learn?")."""
    shaping: dict[str, float] = field(default_factory=dict)
    """Optional per-agent shaping weights (agent name → weight, default 0): a voter gets its
    own vote × the step's price change at full size; ``portfolio`` and ``risk`` get minus the
    drawdown growth. Added to that agent's reward only."""

    def __post_init__(self) -> None:
        if self.scale is not None and not self.scale > 0:
            raise ConfigError(f"reward.scale must be > 0 dollars, got {self.scale!r}")
        if self.drawdown_penalty < 0:
            raise ConfigError("reward.drawdown_penalty must be >= 0, got "
                              f"{self.drawdown_penalty!r}; use 0 to switch it off")
        known = (*STRATEGIC_AGENTS, *TACTICAL_AGENTS)
        for name in self.shaping:
            if name not in known:
                raise ConfigError(f"reward.shaping: unknown agent {name!r}; agents are "
                                  f"{', '.join(known)}")


@dataclass(frozen=True)
class EnvConfig:
    """Everything an environment takes; every field has a default."""

    data: DataConfig = field(default_factory=DataConfig)
    """Market data (default: the built-in synthetic market)."""
    split: Literal["train", "val", "test"] = "train"
    """Chronological split the episodes are drawn from."""
    episode_steps: int | None = None
    """Env steps per episode; ``None``: 92 for strategic_v0 (two sessions of 30-minute bars),
    276 for tactical_v0, joint_v0 and single_v0 (one session of 5-minute bars)."""
    random_start: bool | None = None
    """Random episode starts; ``None``: random on train, deterministic tiling otherwise."""
    max_position: int | None = None
    """Position cap in contracts (long or short); ``None``: the most contracts whose notional
    at the training split's highest close stays within ``leverage_cap`` × ``initial_equity``
    (:func:`algospace.market.sizing.position_limit`)."""
    leverage_cap: float = LEVERAGE_CAP
    """Cap on gross notional over initial equity that sets the default ``max_position``."""
    initial_equity: float = 100_000.0
    """Account equity at the start of each episode, in dollars."""
    ruin_fraction: float = 0.5
    """The episode terminates when equity falls below (1 - ruin_fraction) × initial."""
    atr_bars: int = 14
    """Bars in the average true range that scales the ``risk`` agent's stop."""
    regime_latent: bool = False
    """Read the regime detector's latent μ (written into the prepared data by rde.yaml or
    ``algospace regime train``; a phase picks the detector with ``handoff.regime``); False:
    the 8 latent dimensions are 0."""
    regime_detector: str | None = None
    """Id of the regime detector whose latents are read (table ``regime_latent-<id>`` of the
    prepared data); None: the only detector the data holds. The runner sets it from
    ``handoff.regime``; it is not a key of a phase file."""
    state_dim: int = STATE_DIM
    """Size of the global state; must equal the layout's total (envs/core/layout.py)."""
    reward: RewardConfig = field(default_factory=RewardConfig)
    """Reward settings."""
    fold: int | None = None
    """Walk-forward fold whose train (its ranges, embargo holes left out), val and test blocks
    the splits are, normalised on its training bars only; None: ``data.split``. The runner
    sets it per trial; it is not a key of a phase file."""
    walk_forward: WalkForwardSection | None = None
    """The walk-forward layout ``fold`` is read from (``evaluation.walk_forward``, copied here
    by the runner); not a key of a phase file."""

    def __post_init__(self) -> None:
        if self.episode_steps is not None and self.episode_steps < 1:
            raise ConfigError(f"episode_steps must be >= 1, got {self.episode_steps!r}")
        if self.max_position is not None and self.max_position < 1:
            raise ConfigError(f"max_position must be >= 1 contract, got {self.max_position!r}")
        if not 0 < self.leverage_cap <= 50:
            raise ConfigError(f"leverage_cap must be in (0, 50] (notional / equity), got "
                              f"{self.leverage_cap!r}; the default is {LEVERAGE_CAP}")
        if not self.initial_equity > 0:
            raise ConfigError(f"initial_equity must be > 0, got {self.initial_equity!r}")
        if not 0 < self.ruin_fraction <= 1:
            raise ConfigError(f"ruin_fraction must be in (0, 1], got {self.ruin_fraction!r}")
        if self.regime_detector is not None \
                and not re.fullmatch(r"[0-9a-f]{12}", self.regime_detector):
            raise ConfigError(f"regime_detector must be a detector id (12 hex digits), got "
                              f"{self.regime_detector!r}")
        self._check_fold()
        if self.atr_bars < 1:
            raise ConfigError(f"atr_bars must be >= 1, got {self.atr_bars!r}")
        if self.state_dim != STATE_DIM:
            raise ConfigError(
                f"state_dim is {self.state_dim} but the global-state layout has {STATE_DIM} "
                f"named dimensions (envs/core/layout.py); set state_dim: {STATE_DIM} or change "
                "the layout")

    def _check_fold(self) -> None:
        """A fold needs a layout that has it, and with regime latents the id of the
        detector fitted on that fold (never "the only one the data holds")."""
        if self.fold is None:
            return
        if self.walk_forward is None:
            raise ConfigError(f"fold {self.fold} given but no walk-forward layout; set "
                              "evaluation.walk_forward (folds, mode, ...)")
        if not 0 <= self.fold < self.walk_forward.folds:
            raise ConfigError(f"fold {self.fold} does not exist: evaluation.walk_forward has "
                              f"{self.walk_forward.folds} folds (0 to "
                              f"{self.walk_forward.folds - 1})")
        if self.regime_latent and self.regime_detector is None:
            raise ConfigError(
                f"fold {self.fold} reads regime latents (regime_latent: true) but names no "
                "detector: it must read the detector fitted on its own training bars "
                "(regime_detector; the runner fits one per fold)")


def make_config(config: EnvConfig | Mapping[str, Any] | None = None, **kwargs: Any) -> EnvConfig:
    """An :class:`EnvConfig` from a config, a mapping and/or keyword arguments."""
    if isinstance(config, EnvConfig):
        if kwargs:
            raise ConfigError("give either an EnvConfig or keyword arguments, not both")
        return config
    merged: dict[str, Any] = dict(config or {})
    merged.update(kwargs)
    return build(EnvConfig, merged, "env")
