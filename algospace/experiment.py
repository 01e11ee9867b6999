"""The experiment schema: one YAML file (``tune_configs/*.yaml``) as typed sections.

:func:`load_experiment` reads a file, applies ``--set`` overrides, pulls out Tune search
spaces, and builds :class:`ExperimentConfig` — unknown keys rejected with a did-you-mean,
wrong types naming the YAML path, contradictions explained — all before Ray starts.

The sections (every key has a default; see ``tune_configs/README.md``)::

    phase:       rde | strategic | tactical | coordination | joint
    name:        experiment name (default: the file's stem)
    seed:        seed of sampling and initialisation
    data:        DataConfig                (algospace.config)
    env:         EnvConfig less data/split (envs.core.config)
    model:       ModelSettings             (algospace.training.builder)
    training:    algorithm + PPOSettings   (algospace.training.builder)
    rde:         RDEConfig                 (phase rde only)
    resources:   env runners, envs per runner, GPUs, CPUs
    handoff:     weights loaded from earlier phases, which modules train
    stop:        iterations / env steps / minutes
    checkpoint:  frequency, keep-N, the metric choosing the best
    evaluation:  validation metrics during training, the final report
    tune:        samples, search, scheduler, failures
    logging:     progress, W&B, Ray dashboard
    output:      results directory, Tune storage

Search spaces are accepted in ``training``, ``model``, ``env.reward``, ``rde`` and
``seed``: a one-key mapping ``{grid_search: [...]}``, ``{choice: [...]}``,
``{uniform: [lo, hi]}``, ``{loguniform: [lo, hi]}`` or ``{randint: [lo, hi]}``.
"""

from __future__ import annotations

import copy
import dataclasses
import ipaddress
import itertools
import json
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from algospace.config import DataConfig, YamlLoader, read_yaml
from algospace.errors import ConfigError
from algospace.regime.train import RDEConfig
from algospace.schema import build, convert, did_you_mean, to_dict
from algospace.training.builder import EnvName, ModelSettings, PPOSettings
from envs.core.config import EnvConfig

Phase = Literal["rde", "strategic", "tactical", "coordination", "joint"]
PHASES: tuple[str, ...] = typing.get_args(Phase)
PHASE_ENV: dict[str, EnvName] = {"strategic": "strategic_v0", "tactical": "tactical_v0",
                                 "coordination": "joint_v0", "joint": "joint_v0"}
"""The environment each RL phase trains on."""
TUNE_CONFIGS = Path(__file__).resolve().parent.parent / "tune_configs"
"""Where a bare file name given to ``experiments.run`` is looked up."""

SPACE_KINDS = ("grid_search", "choice", "uniform", "loguniform", "randint")
SEARCHABLE = ("training", "model", "env.reward", "rde", "seed")
"""Key prefixes whose values may be Tune search spaces."""


@dataclass(frozen=True)
class TrainingSection(PPOSettings):
    """MAPPO hyperparameters (PPOSettings) and the algorithm."""

    algorithm: Literal["mappo", "ippo"] = "mappo"
    """``mappo``: shared centralized critic; ``ippo``: a critic per agent on local obs."""

    def ppo(self) -> PPOSettings:
        """The PPO hyperparameters alone."""
        names = [f.name for f in dataclasses.fields(PPOSettings)]
        return PPOSettings(**{n: getattr(self, n) for n in names})


LOOPBACK = ("127.0.0.1", "localhost")
"""``resources.ray_host`` values that keep a local Ray on this machine."""
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)
"""Environment variable names never passed through Ray's runtime_env (Ray logs it)."""


def check_worker_env(name: str) -> None:
    """A ``resources.worker_env`` entry: a variable name that does not look like a secret."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ConfigError(f"resources.worker_env: {name!r} is not an environment variable name")
    if SECRET_NAME.search(name):
        raise ConfigError(
            f"resources.worker_env: {name} looks like a secret, and Ray writes a runtime_env "
            "in plain text to its logs; export it on every node before `ray start` instead "
            "(workers inherit the environment of the node they run on)")


def check_host(host: str) -> None:
    """``resources.ray_host``: 127.0.0.1, localhost, auto or an IP address."""
    if host in (*LOOPBACK, "auto"):
        return
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(f"resources.ray_host: expected 127.0.0.1, auto or an IP address of "
                          f"this machine, got {host!r}") from None


@dataclass(frozen=True)
class ResourcesSection:
    """Processes, CPUs and GPUs of each trial."""

    num_env_runners: int = 1
    """Sampling processes per trial (0: sample in the trial's own process)."""
    num_envs_per_env_runner: int = 4
    """Env copies stepped together in each runner."""
    num_cpus_per_env_runner: float = 1
    """CPUs reserved for each runner."""
    num_gpus_per_learner: float = 0
    """GPUs for the learner (1 on a GPU box); 0: learn on the CPU."""
    num_learners: int = 0
    """0: learn in the trial's own process; 1: in a learner process of its own (with
    ``num_gpus_per_learner`` GPUs, or 1 CPU), which Ray may place on another node."""
    max_concurrent_trials: int | None = None
    """Trials run side by side (None: as many as the CPUs and GPUs allow)."""
    env_runner_resources: dict[str, float] = field(default_factory=dict)
    """Custom Ray resources each env runner needs, e.g. ``{worker_node: 1}`` to place the
    runners on nodes started with ``ray start --resources='{"worker_node": 4}'``."""
    worker_env: tuple[str, ...] = ()
    """Environment variables passed from the driver to every Ray worker when attached to a
    cluster (Ray's runtime_env; Ray logs it, so names that look like secrets are refused)."""
    ray_host: str = "127.0.0.1"
    """Address a local Ray instance (no ``--address``) listens on: 127.0.0.1 keeps every
    port on the loopback interface; ``auto`` or an IP opens it to the network."""

    def __post_init__(self) -> None:
        if self.num_env_runners < 0:
            raise ConfigError(f"resources.num_env_runners must be >= 0, got "
                              f"{self.num_env_runners}")
        if self.num_envs_per_env_runner < 1:
            raise ConfigError(f"resources.num_envs_per_env_runner must be >= 1, got "
                              f"{self.num_envs_per_env_runner}")
        if self.num_cpus_per_env_runner <= 0:
            raise ConfigError(f"resources.num_cpus_per_env_runner must be > 0, got "
                              f"{self.num_cpus_per_env_runner}")
        if self.num_gpus_per_learner < 0:
            raise ConfigError(f"resources.num_gpus_per_learner must be >= 0, got "
                              f"{self.num_gpus_per_learner}")
        if self.num_learners not in (0, 1):
            raise ConfigError(
                f"resources.num_learners must be 0 or 1, got {self.num_learners}: several "
                "data-parallel learners (torch DDP) would bypass the gradient averaging for "
                "MAPPO's shared critic, which the learner calls outside DDP's wrapper")
        if self.max_concurrent_trials is not None and self.max_concurrent_trials < 1:
            raise ConfigError("resources.max_concurrent_trials must be >= 1 (or null)")
        for name, amount in self.env_runner_resources.items():
            if name in ("CPU", "GPU", "memory", "object_store_memory") or amount <= 0:
                raise ConfigError(
                    f"resources.env_runner_resources.{name}: give custom resources (a name "
                    f"a node was started with) and an amount > 0, got {amount!r}; CPUs and "
                    "GPUs are set by num_cpus_per_env_runner")
        for name in self.worker_env:
            check_worker_env(name)
        check_host(self.ray_host)

    @property
    def loopback(self) -> bool:
        """Whether a local Ray instance stays on the loopback interface."""
        return self.ray_host in LOOPBACK

    def cpus_per_trial(self) -> float:
        """CPUs one trial reserves: its own process, its learners on CPUs, its runners."""
        learners = self.num_learners if self.num_gpus_per_learner == 0 else 0
        return 1 + learners + self.num_env_runners * self.num_cpus_per_env_runner

    def cpus_described(self) -> str:
        """What :meth:`cpus_per_trial` counts, in words."""
        runners = f"{self.num_env_runners} env runner(s) × {self.num_cpus_per_env_runner:g}"
        if self.num_learners == 0 or self.num_gpus_per_learner > 0:
            return f"1 for the learner + {runners}"
        return f"1 for the trial + {self.num_learners} learner(s) + {runners}"



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
class CheckpointSection:
    """How often checkpoints are written, how many are kept, which is best."""

    every: int = 5
    """Checkpoint (and validation backtest) every this many iterations; always at the end."""
    keep: int | None = 3
    """Checkpoints kept per trial when the run ends: the best by ``score``, plus the latest
    (None: all). All are kept while it runs, so an interrupted run can always resume."""
    score: str = "val_sharpe"
    """Metric ranking checkpoints and trials: ``val_sharpe`` (validation backtest), or any
    reported metric such as ``episode_return_mean``."""
    mode: Literal["max", "min"] = "max"
    """Whether a higher or lower ``score`` is better."""

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ConfigError(f"checkpoint.every must be >= 1, got {self.every}")
        if self.keep is not None and self.keep < 1:
            raise ConfigError(f"checkpoint.keep must be >= 1 (or null for all), got {self.keep}")


@dataclass(frozen=True)
class EvaluationSection:
    """Validation metrics during training and the report at the end."""

    validation: bool = True
    """Backtest on the validation split at every checkpoint (reports ``val_*`` metrics)."""
    final: bool = True
    """Evaluate the best checkpoint on ``split`` at the end and write the report."""
    split: Literal["val", "test"] = "test"
    """Split of the final evaluation."""
    random_seeds: int = 5
    """Seeds of the random baseline."""
    bootstrap: int = 2000
    """Resamples of the Sharpe-difference confidence interval."""
    gates: bool = True
    """Also run the agents through the two gates of the live decision and report it."""
    gate_threshold: float = 0.65
    """Gate 2's MC-consensus threshold in that run."""
    mc_passes: int = 50
    """MC-dropout passes per decision in that run."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.gate_threshold <= 1.0:
            raise ConfigError(f"evaluation.gate_threshold must lie in [0, 1], got "
                              f"{self.gate_threshold!r}")
        if self.mc_passes < 1:
            raise ConfigError(f"evaluation.mc_passes must be >= 1, got {self.mc_passes!r}")


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
    """``auto``: online when WANDB_API_KEY is set, else offline (``wandb sync`` later)."""


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
            if self.handoff.load or self.handoff.trainable is not None:
                raise ConfigError("handoff: the rde phase trains the regime detector alone; "
                                  "remove the handoff section")
        elif self.rde != RDEConfig():
            raise ConfigError(f"rde: settings of the regime detector belong in rde.yaml, not "
                              f"in the {self.phase} phase (remove the rde section)")
        if self.checkpoint.score.startswith("val_") and not self.evaluation.validation \
                and self.phase != "rde":
            raise ConfigError(f"checkpoint.score is {self.checkpoint.score!r} but "
                              "evaluation.validation is false, so no validation metrics are "
                              "reported; turn it on or score by episode_return_mean")
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


@dataclass(frozen=True)
class Experiment:
    """A validated experiment: its config, search spaces and where it came from."""

    config: ExperimentConfig
    """The config, with each search space replaced by one of its values (for checks)."""
    raw: dict[str, Any]
    """The YAML mapping after overrides, search spaces still in place."""
    spaces: dict[str, dict[str, Any]]
    """Search spaces by dotted key, e.g. ``{"training.lr": {"loguniform": [1e-4, 1e-3]}}``."""
    source: str
    """The file it was read from."""

    @property
    def name(self) -> str:
        """Experiment name."""
        return self.config.name or Path(self.source).stem

    def resolved(self, values: dict[str, Any]) -> ExperimentConfig:
        """The config with the search spaces set to ``values`` (one Tune trial's)."""
        raw = copy.deepcopy(self.raw)
        for key, value in values.items():
            set_key(raw, key, value)
        return build_experiment(raw, self.source)


def resolve_path(name: str) -> Path:
    """A YAML path: as given if it exists, else looked up in ``tune_configs/``."""
    path = Path(name).expanduser()
    if path.is_file():
        return path
    for candidate in (TUNE_CONFIGS / name, TUNE_CONFIGS / f"{name}.yaml"):
        if not path.is_absolute() and candidate.is_file():
            return candidate
    known = sorted(p.relative_to(TUNE_CONFIGS).as_posix()
                   for p in TUNE_CONFIGS.rglob("*.yaml")) if TUNE_CONFIGS.is_dir() else []
    raise ConfigError(f"{name}: config file not found (looked in the working directory and in "
                      f"{TUNE_CONFIGS}).{did_you_mean(name, known)} Known files: "
                      f"{', '.join(known) or 'none'}")


def parse_set(items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``--set key.path=value`` items (values parsed as YAML) as a mapping."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set training.lr=1e-4")
        try:
            out[key.strip()] = yaml.load(text, Loader=YamlLoader)  # 1e-4 is a float
        except yaml.YAMLError:
            raise ConfigError(f"--set {item!r}: the value is not valid YAML") from None
    return out


def set_key(raw: dict[str, Any], key: str, value: Any) -> None:
    """Set dotted ``key`` in the nested mapping ``raw``."""
    parts = key.split(".")
    node = raw
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"{'.'.join(parts[:i + 1])}: is {child!r}, not a section, so "
                              f"{key} cannot be set")
        node = child
    node[parts[-1]] = value


def load_experiment(path: str | Path, overrides: dict[str, Any] | None = None) -> Experiment:
    """Read, override, check and build an experiment file."""
    file = resolve_path(str(path))
    raw = read_yaml(file)
    for key, value in (overrides or {}).items():
        set_key(raw, key, value)
    try:
        return _experiment(raw, str(file))
    except ConfigError as err:
        raise ConfigError(f"{file}: {err}") from None


def experiment_from_raw(raw: dict[str, Any], source: str) -> Experiment:
    """An experiment from a YAML mapping (overrides applied), e.g. one saved with a run."""
    return _experiment(copy.deepcopy(raw), source)


def _experiment(raw: dict[str, Any], source: str) -> Experiment:
    spaces: dict[str, dict[str, Any]] = {}
    sample = _extract_spaces(copy.deepcopy(raw), "", spaces)
    config = build_experiment(sample, source)
    return Experiment(config, raw, spaces, source)


def build_experiment(raw: dict[str, Any], source: str = "<config>") -> ExperimentConfig:
    """An :class:`ExperimentConfig` from a mapping without search spaces."""
    raw = dict(raw)
    env = raw.get("env")
    if isinstance(env, dict):
        for key, why in (("data", "the data is set in the top-level data section"),
                         ("split", "training uses the train split; evaluation.split picks "
                                   "the final evaluation's")):
            if key in env:
                raise ConfigError(f"env.{key}: not set here — {why}")
        if "random_start" in env and env["random_start"] is False:
            raise ConfigError("env.random_start: false would replay the same episodes; "
                              "training draws random episode starts")
    config = build(ExperimentConfig, raw, "")
    return dataclasses.replace(config, env=dataclasses.replace(config.env, data=config.data))


def _extract_spaces(node: Any, path: str, spaces: dict[str, dict[str, Any]]) -> Any:
    """``node`` with each search space replaced by its first value (the space recorded,
    and every value it can take checked against the field's type)."""
    if not isinstance(node, dict):
        return node
    tp = field_type(path) if path else ExperimentConfig
    if dataclasses.is_dataclass(tp) or typing.get_origin(tp) is dict:
        return {k: _extract_spaces(v, f"{path}.{k}" if path else str(k), spaces)
                for k, v in node.items()}
    kind = next(iter(node)) if len(node) == 1 else None
    if kind not in SPACE_KINDS:
        hint = did_you_mean(str(kind), SPACE_KINDS) if kind is not None else ""
        raise ConfigError(f"{path}: expected a value or a search space (a mapping with one "
                          f"key of {', '.join(SPACE_KINDS)}), got {node!r}.{hint}")
    if not any(path == p or path.startswith(p + ".") for p in SEARCHABLE):
        raise ConfigError(f"{path}: search spaces ({kind}) are allowed only under "
                          f"{', '.join(SEARCHABLE)}")
    values = _space_values(path, str(kind), node[kind])
    if kind in ("uniform", "loguniform"):
        try:
            convert(tp, 0.5, path)
        except ConfigError:
            raise ConfigError(f"{path}.{kind}: {kind} draws floats but {path} is not a float; "
                              "use randint: [low, high] for an integer, or choice: "
                              "[...]") from None
    for i, value in enumerate(values):
        convert(tp, value, f"{path}.{kind}[{i}]")
    spaces[path] = dict(node)
    return values[0]


def _space_values(path: str, kind: str, args: Any) -> list[Any]:
    """Check a search space's arguments; return the values to type-check."""
    if kind in ("grid_search", "choice"):
        if not isinstance(args, list) or not args:
            raise ConfigError(f"{path}.{kind}: expected a non-empty list of values")
        return list(args)
    if not (isinstance(args, list) and len(args) == 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in args)):
        raise ConfigError(f"{path}.{kind}: expected [low, high] numbers, got {args!r}")
    low, high = args
    if not low < high:
        raise ConfigError(f"{path}.{kind}: low ({low}) must be below high ({high})")
    if kind == "loguniform" and low <= 0:
        raise ConfigError(f"{path}.loguniform: bounds must be > 0, got {args!r}")
    if kind == "randint":
        if not all(isinstance(v, int) for v in args):
            raise ConfigError(f"{path}.randint: bounds must be integers, got {args!r}")
        return [low, high]
    return [float(low), float(high)]


def field_type(path: str) -> Any:
    """The annotation of dotted ``path`` in :class:`ExperimentConfig`."""
    tp: Any = ExperimentConfig
    parts = path.split(".")
    for i, part in enumerate(parts):
        if typing.get_origin(tp) is dict:
            tp = typing.get_args(tp)[1]
            continue
        if not dataclasses.is_dataclass(tp):
            raise ConfigError(f"{path}: {part!r} is not a key of a section")
        hints = typing.get_type_hints(tp)
        if part not in hints:
            names = [f.name for f in dataclasses.fields(tp)]
            raise ConfigError(f"{'.'.join(parts[:i + 1])}: unknown key.{did_you_mean(part, names)} "
                              f"Known keys here: {', '.join(names)}")
        tp = hints[part]
    return tp


def tune_space(spec: dict[str, Any]) -> Any:
    """The Ray Tune search-space object of a YAML search-space mapping."""
    from ray import tune

    kind, args = next(iter(spec.items()))
    if kind == "grid_search":
        return tune.grid_search(list(args))
    if kind == "choice":
        return tune.choice(list(args))
    if kind == "uniform":
        return tune.uniform(*args)
    if kind == "loguniform":
        return tune.loguniform(*args)
    return tune.randint(args[0], args[1] + 1)  # YAML bounds are inclusive


def resolved_dict(config: ExperimentConfig) -> dict[str, Any]:
    """The config as plain values (for summary.json), the data cache made absolute."""
    out = to_dict(config)
    out["data"]["cache_dir"] = str(Path(config.data.cache_dir).resolve())
    del out["env"]["data"]
    return out


# ------------------------------------------------------------------ reference
def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of dataclass ``cls`` (and its bases)."""
    import ast
    import inspect
    import textwrap

    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        body = tree.body[0].body  # type: ignore[attr-defined]
        for node, nxt in itertools.pairwise(body):
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) \
                    and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
                docs[node.target.id] = " ".join(str(nxt.value.value).split())
    return docs


def schema_reference() -> str:
    """Every key of an experiment YAML with its default and meaning (Markdown)."""
    lines = ["| key | default | meaning |", "|---|---|---|"]

    def walk(cls: Any, prefix: str) -> None:
        docs = field_docs(cls)
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            key = f"{prefix}{f.name}"
            if key in ("env.data", "env.split"):
                continue  # the data is top-level; training uses the train split
            tp = hints[f.name]
            if dataclasses.is_dataclass(tp):
                walk(tp, f"{key}.")
                continue
            value = f.default if f.default is not dataclasses.MISSING \
                else f.default_factory()  # type: ignore[operator]
            shown = json.dumps(to_dict(value), default=str)
            lines.append(f"| `{key}` | `{shown}` | {docs.get(f.name, '')} |")
            item = typing.get_args(tp)[0] if typing.get_origin(tp) is tuple else None
            if item is not None and dataclasses.is_dataclass(item):
                walk(item, f"{key}[].")

    walk(ExperimentConfig, "")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # python -m algospace.experiment: the key reference
    print(schema_reference(), end="")
