"""How a run is driven: the ``stop``, ``tune``, ``logging`` and ``output`` sections."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from algospace.errors import ConfigError


@dataclass(frozen=True)
class StopSection:
    """When a trial stops (the first limit reached)."""

    iterations: int = 30
    """Training iterations."""
    env_steps: int | None = None
    """Env steps sampled (None: no limit)."""
    minutes: float | None = None
    """Wall-clock minutes of training (None: no limit)."""

    def __post_init__(self) -> None:
        if self.iterations < 1:
            raise ConfigError(f"stop.iterations must be >= 1, got {self.iterations}")
        if self.env_steps is not None and self.env_steps < 1:
            raise ConfigError(f"stop.env_steps must be >= 1 (or null), got {self.env_steps}")
        if self.minutes is not None and self.minutes <= 0:
            raise ConfigError(f"stop.minutes must be > 0 (or null), got {self.minutes}")


@dataclass(frozen=True)
class SchedulerSection:
    """A trial scheduler (sweeps)."""

    type: Literal["fifo", "asha"] = "fifo"
    """``fifo``: run every trial to the end; ``asha``: stop poor trials early."""
    metric: str = "episode_return_mean"
    """Metric ASHA compares (reported every iteration)."""
    mode: Literal["max", "min"] = "max"
    """Whether higher or lower ``metric`` is better."""
    grace_period: int = 5
    """Iterations every trial runs before it can be stopped."""
    reduction_factor: float = 3
    """ASHA's halving rate."""

    def __post_init__(self) -> None:
        if self.grace_period < 1:
            raise ConfigError("tune.scheduler.grace_period must be >= 1")
        if self.reduction_factor <= 1:
            raise ConfigError("tune.scheduler.reduction_factor must be > 1")


@dataclass(frozen=True)
class TuneSection:
    """Trials, sampling and fault tolerance."""

    num_samples: int = 1
    """Samples of the search space (each grid is crossed with every sample)."""
    scheduler: SchedulerSection = field(default_factory=SchedulerSection)
    """Trial scheduler."""
    max_failures: int = 2
    """Restarts of a failed trial from its last checkpoint."""
    restart_failed_env_runners: bool = True
    """Replace a crashed env runner and go on (instead of failing the trial)."""

    def __post_init__(self) -> None:
        if self.num_samples < 1:
            raise ConfigError(f"tune.num_samples must be >= 1, got {self.num_samples}")
        if self.max_failures < 0:
            raise ConfigError(f"tune.max_failures must be >= 0, got {self.max_failures}")


@dataclass(frozen=True)
class WandbSection:
    """Weights & Biases logging (through Ray Tune's W&B callback)."""

    enabled: bool = False
    """Log every trial to W&B (``--wandb`` turns it on too)."""
    project: str = "algospace"
    """W&B project."""
    group: str | None = None
    """W&B group (None: the phase)."""
    tags: tuple[str, ...] = ()
    """Extra tags (the phase and env are always added)."""
    mode: Literal["auto", "offline", "online"] = "auto"
    """``auto``: online when WANDB_API_KEY is set and WANDB_MODE is not ``offline``, else
    offline (the run prints the ``wandb sync`` command)."""


@dataclass(frozen=True)
class DashboardSection:
    """The Ray dashboard of a local Ray instance."""

    enabled: bool = True
    """Start the dashboard (needs ``ray[default]``, which setup installs)."""
    host: str = "127.0.0.1"
    """Interface it binds to; 0.0.0.0 opens it to the network (not recommended)."""
    port: int = 8265
    """Port."""


@dataclass(frozen=True)
class LoggingSection:
    """Progress, W&B and the dashboard."""

    wandb: WandbSection = field(default_factory=WandbSection)
    """Weights & Biases."""
    dashboard: DashboardSection = field(default_factory=DashboardSection)
    """Ray dashboard."""
    progress: bool = True
    """Print a progress row per trial iteration."""


@dataclass(frozen=True)
class OutputSection:
    """Where results go."""

    dir: str = "results"
    """Root of all experiments: ``<dir>/<name>/<timestamp>/`` (summary, reports, and
    Tune's trials and checkpoints unless ``storage`` is set)."""
    storage: str | None = None
    """Where Tune writes trials and checkpoints: a path every node of a cluster sees (a
    shared filesystem) or a URI (``s3://bucket/prefix``, ``gs://…``); null: under ``dir``."""

    @property
    def remote(self) -> bool:
        """Whether ``storage`` is a URI rather than a path."""
        return self.storage is not None and "://" in self.storage
