"""The ``resources`` section: processes, CPUs and GPUs of each trial, and where Ray listens.

These are the one set of resource defaults: the training run's
:class:`algospace.training.builder.TrainConfig` takes its defaults from
:class:`ResourcesSection`.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from algospace.errors import ConfigError

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


SAMPLERS = ("stock", "vector")
"""``resources.sampler`` values."""


@dataclass(frozen=True)
class ResourcesSection:
    """Processes, CPUs and GPUs of each trial."""

    num_env_runners: int = 1
    """Sampling processes per trial (0: sample in the trial's own process)."""
    num_envs_per_env_runner: int = 4
    """Env copies stepped together in each runner."""
    num_cpus_per_env_runner: float = 1
    """CPUs reserved for each runner."""
    sampler: str = "vector"
    """``vector``: the vectorised sampler steps all copies as one batch
    (algospace.training.sampler); ``stock``: RLlib's MultiAgentEnvRunner steps one adapter
    per env copy (for RLlib callbacks, custom connectors or ``truncate_episodes``, which
    the vectorised sampler refuses)."""
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
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"resources.sampler must be one of {', '.join(SAMPLERS)}, "
                              f"got {self.sampler!r}")
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
