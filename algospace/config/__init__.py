"""The typed configuration of AlgoSpace: one frozen dataclass per YAML section, below every
package it configures (only :mod:`algospace.errors`, :mod:`algospace.schema`,
:mod:`algospace.files` and :mod:`algospace.data` are imported here).

One module per section — :mod:`~algospace.config.data`, :mod:`~algospace.config.env`,
:mod:`~algospace.config.model`, :mod:`~algospace.config.training`,
:mod:`~algospace.config.regime`, :mod:`~algospace.config.resources`,
:mod:`~algospace.config.evaluation`, :mod:`~algospace.config.run` — the whole experiment in
:mod:`~algospace.config.experiment`, the YAML reading in :mod:`~algospace.config.loader` and
the key reference in :mod:`~algospace.config.reference` (``python -m algospace.config``).
Every default is defined once, on its field.
"""

from algospace.config.data import DEFAULT_CACHE_DIR, SYNTHETIC_SYMBOL, DataConfig, load_data_config
from algospace.config.env import (
    LEVERAGE_CAP,
    STATE_DIM,
    STRATEGIC_AGENTS,
    TACTICAL_AGENTS,
    EnvConfig,
    EnvName,
    RewardConfig,
    make_config,
)
from algospace.config.evaluation import CheckpointSection, EvaluationSection, WalkForwardSection
from algospace.config.experiment import (
    PHASE_ENV,
    PHASES,
    ExperimentConfig,
    HandoffSection,
    LoadSource,
    Phase,
    resolved_dict,
)
from algospace.config.loader import (
    SEARCHABLE,
    SPACE_KINDS,
    TUNE_CONFIGS,
    Experiment,
    YamlLoader,
    blame_key,
    build_experiment,
    experiment_from_raw,
    field_type,
    load_experiment,
    parse_set,
    read_yaml,
    resolve_path,
    set_key,
    tune_space,
)
from algospace.config.model import CONSENSUS_THRESHOLD, ModelSettings
from algospace.config.reference import field_docs, schema_reference
from algospace.config.regime import RDEConfig
from algospace.config.resources import (
    LOOPBACK,
    SECRET_NAME,
    ResourcesSection,
    check_host,
    check_worker_env,
)
from algospace.config.run import (
    DashboardSection,
    LoggingSection,
    OutputSection,
    SchedulerSection,
    StopSection,
    TuneSection,
    WandbSection,
)
from algospace.config.training import Algorithm, PPOSettings, TrainingSection

__all__ = [
    "CONSENSUS_THRESHOLD",
    "DEFAULT_CACHE_DIR",
    "LEVERAGE_CAP",
    "LOOPBACK",
    "PHASES",
    "PHASE_ENV",
    "SEARCHABLE",
    "SECRET_NAME",
    "SPACE_KINDS",
    "STATE_DIM",
    "STRATEGIC_AGENTS",
    "SYNTHETIC_SYMBOL",
    "TACTICAL_AGENTS",
    "TUNE_CONFIGS",
    "Algorithm",
    "CheckpointSection",
    "DashboardSection",
    "DataConfig",
    "EnvConfig",
    "EnvName",
    "EvaluationSection",
    "Experiment",
    "ExperimentConfig",
    "HandoffSection",
    "LoadSource",
    "LoggingSection",
    "ModelSettings",
    "OutputSection",
    "PPOSettings",
    "Phase",
    "RDEConfig",
    "ResourcesSection",
    "RewardConfig",
    "SchedulerSection",
    "StopSection",
    "TrainingSection",
    "TuneSection",
    "WalkForwardSection",
    "WandbSection",
    "YamlLoader",
    "blame_key",
    "build_experiment",
    "check_host",
    "check_worker_env",
    "experiment_from_raw",
    "field_docs",
    "field_type",
    "load_data_config",
    "load_experiment",
    "make_config",
    "parse_set",
    "read_yaml",
    "resolve_path",
    "resolved_dict",
    "schema_reference",
    "set_key",
    "tune_space",
]
