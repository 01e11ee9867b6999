"""The whole experiment: :class:`ExperimentConfig`, one YAML file (``tune_configs/*.yaml``)
as typed sections, each defined in its own module of :mod:`algospace.config`.

The sections (every key has a default; see ``tune_configs/README.md``)::

    phase:       rde | strategic | tactical | coordination | joint
    name:        experiment name (default: the file's stem)
    seed:        seed of sampling and initialisation
    data:        DataConfig                (algospace.config.data)
    env:         EnvConfig less data/split (algospace.config.env)
    model:       ModelSettings             (algospace.config.model)
    training:    algorithm + PPOSettings   (algospace.config.training)
    rde:         RDEConfig                 (algospace.config.regime; phase rde only)
    resources:   env runners, envs per runner, GPUs, CPUs (algospace.config.resources)
    handoff:     weights loaded from earlier phases, which modules train, which regime
                 detector's latents the agents read
    stop:        iterations / env steps / minutes (algospace.config.run)
    checkpoint:  frequency, keep-N, the metric choosing the best (algospace.config.evaluation)
    evaluation:  validation metrics during training, the final report
    tune:        samples, search, scheduler, failures (algospace.config.run)
    logging:     progress, W&B, Ray dashboard
    output:      results directory, Tune storage

:mod:`algospace.config.loader` reads a file into it (overrides, search spaces, checks).
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from algospace.config.data import DataConfig
from algospace.config.env import EnvConfig, EnvName
from algospace.config.evaluation import CheckpointSection, EvaluationSection
from algospace.config.model import ModelSettings
from algospace.config.regime import RDEConfig
from algospace.config.resources import ResourcesSection
from algospace.config.run import LoggingSection, OutputSection, StopSection, TuneSection
from algospace.config.training import TrainingSection
from algospace.errors import ConfigError
from algospace.schema import to_dict

Phase = Literal["rde", "strategic", "tactical", "coordination", "joint"]
PHASES: tuple[str, ...] = typing.get_args(Phase)
PHASE_ENV: dict[str, EnvName] = {"strategic": "strategic_v0", "tactical": "tactical_v0",
                                 "coordination": "joint_v0", "joint": "joint_v0"}
"""The environment each RL phase trains on."""


@dataclass(frozen=True)
class LoadSource:
    """Module weights to load before training: from a phase's latest run or a path."""

    phase: Phase | None = None
    """Load from the latest finished run of this phase (in ``output.dir``)."""
    checkpoint: str | None = None
    """...or from this checkpoint directory."""
    modules: tuple[str, ...] | None = None
    """Module ids to load (agent names, ``critic``); None: every module both have."""

    def __post_init__(self) -> None:
        if (self.phase is None) == (self.checkpoint is None):
            raise ConfigError("handoff.load: give each entry either phase: NAME (the latest "
                              "finished run of that phase) or checkpoint: PATH, not both")
        if self.phase == "rde":
            raise ConfigError("handoff.load: the rde phase has no agent weights; the regime "
                              "detector reaches the agents through env.regime_latent: true")


@dataclass(frozen=True)
class HandoffSection:
    """What an RL phase takes from earlier phases, and what it trains."""

    load: tuple[LoadSource, ...] = ()
    """Weights loaded before the first iteration; later entries override earlier ones."""
    trainable: tuple[str, ...] | None = None
    """Actor modules that train (None: all); every other actor is frozen."""
    regime: str = "latest"
    """The regime detector whose latents the agents read (with ``env.regime_latent: true``):
    ``latest``, the newest finished rde run on the same data (and ``--quick``), trained
    first if there is none; or the path of an rde run directory or of a detector
    checkpoint (holding ``rde.pt``); or a detector id the prepared data holds."""


@dataclass(frozen=True)
class ExperimentConfig:
    """One experiment: a phase, its data, env, model, training and how it is run."""

    phase: Phase = "strategic"
    """Training phase (see DESIGN §7)."""
    name: str | None = None
    """Experiment name (default: the YAML file's stem)."""
    seed: int = 0
    """Seed of env sampling and network initialisation."""
    data: DataConfig = field(default_factory=DataConfig)
    """Market data."""
    env: EnvConfig = field(default_factory=EnvConfig)
    """Environment settings (the data comes from ``data``; training uses the train split)."""
    model: ModelSettings = field(default_factory=ModelSettings)
    """Network sizes and parameter sharing."""
    training: TrainingSection = field(default_factory=TrainingSection)
    """Algorithm and hyperparameters."""
    rde: RDEConfig = field(default_factory=RDEConfig)
    """Regime detector settings (phase rde)."""
    resources: ResourcesSection = field(default_factory=ResourcesSection)
    """Processes, CPUs, GPUs."""
    handoff: HandoffSection = field(default_factory=HandoffSection)
    """Weights from earlier phases; trainable modules."""
    stop: StopSection = field(default_factory=StopSection)
    """Stopping."""
    checkpoint: CheckpointSection = field(default_factory=CheckpointSection)
    """Checkpointing."""
    evaluation: EvaluationSection = field(default_factory=EvaluationSection)
    """Evaluation."""
    tune: TuneSection = field(default_factory=TuneSection)
    """Tune settings."""
    logging: LoggingSection = field(default_factory=LoggingSection)
    """Monitoring."""
    output: OutputSection = field(default_factory=OutputSection)
    """Outputs."""

    def __post_init__(self) -> None:
        if self.phase == "rde":
            if self.handoff != HandoffSection():
                raise ConfigError("handoff: the rde phase trains the regime detector alone; "
                                  "remove the handoff section")
        elif self.handoff.regime != "latest" and not self.env.regime_latent:
            raise ConfigError(f"handoff.regime is {self.handoff.regime!r} but "
                              "env.regime_latent is false, so no regime latents are read; "
                              "set env.regime_latent: true or remove handoff.regime")
        elif self.rde != RDEConfig():
            raise ConfigError(f"rde: settings of the regime detector belong in rde.yaml, not "
                              f"in the {self.phase} phase (remove the rde section)")
        if self.checkpoint.score.startswith("val_") and not self.evaluation.validation \
                and self.phase != "rde":
            raise ConfigError(f"checkpoint.score is {self.checkpoint.score!r} but "
                              "evaluation.validation is false, so no validation metrics are "
                              "reported; turn it on or score by episode_return_mean")
        if self.evaluation.walk_forward is not None and self.env.regime_latent \
                and self.handoff.regime != "latest":
            raise ConfigError(
                f"handoff.regime is {self.handoff.regime!r} but a walk-forward phase fits its "
                "own regime detector per fold, on that fold's training bars (one detector "
                "trained on data.split's train split would have seen later folds' test "
                "blocks); remove handoff.regime")
        if self.training.minibatch_size > self.training.train_batch_size:
            raise ConfigError(
                f"training.minibatch_size ({self.training.minibatch_size}) is larger than "
                f"training.train_batch_size ({self.training.train_batch_size}); lower it")

    @property
    def env_name(self) -> EnvName:
        """The environment of an RL phase."""
        if self.phase == "rde":
            raise ConfigError("the rde phase has no environment")
        return PHASE_ENV[self.phase]


def resolved_dict(config: ExperimentConfig) -> dict[str, Any]:
    """The config as plain values (for summary.json), the data cache made absolute."""
    out = to_dict(config)
    out["data"]["cache_dir"] = str(config.data.cache_path())
    del out["env"]["data"]
    return out
