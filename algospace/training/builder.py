"""The typed training config and the one place it becomes an RLlib ``PPOConfig``.

The settings it is made of (:class:`~algospace.config.PPOSettings`,
:class:`~algospace.config.ModelSettings`, :class:`~algospace.config.EnvConfig`) and
their defaults live in :mod:`algospace.config`; the resource defaults are
:class:`~algospace.config.ResourcesSection`'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from algospace.config import (
    STRATEGIC_AGENTS,
    TACTICAL_AGENTS,
    Algorithm,
    CheckpointSection,
    EnvConfig,
    EnvName,
    ModelSettings,
    OutputSection,
    PPOSettings,
    ResourcesSection,
    StopSection,
    TuneSection,
)
from algospace.config.resources import SAMPLERS
from algospace.errors import ConfigError
from algospace.models.ids import CRITIC_ID
from algospace.schema import to_dict
from envs.core.layout import (
    SINGLE_AGENT,
    SINGLE_TARGET,
    STRATEGIC_VOTE,
    TACTICAL_VOTE,
    TACTICAL_VOTERS,
)


@dataclass(frozen=True)
class ModuleSource:
    """Modules to load from an earlier checkpoint before training starts."""

    checkpoint: str
    """An algorithm checkpoint directory (``TrainResult.checkpoint`` of an earlier run)."""
    modules: tuple[str, ...] | None = None
    """Module ids to load (agent names, or ``critic``); None: every module of this run
    that the checkpoint has."""


@dataclass(frozen=True)
class TrainConfig:
    """One training run: env, algorithm, hyperparameters, resources."""

    env: EnvName = "strategic_v0"
    """Environment to train on."""
    env_config: EnvConfig = field(default_factory=EnvConfig)
    """Environment settings (data, split, episode length, reward)."""
    algorithm: Algorithm = "mappo"
    """``mappo``: shared centralized critic; ``ippo``: per-agent critics on local obs (the
    only choice on single_v0, whose one agent has no team for the critic)."""
    iterations: int = StopSection.iterations
    """Training iterations (the YAMLs' ``stop.iterations`` default)."""
    env_steps: int | None = None
    """Stop once this many env steps are sampled, even before ``iterations`` (None: no limit)."""
    ppo: PPOSettings = field(default_factory=PPOSettings)
    """Hyperparameters."""
    model: ModelSettings = field(default_factory=ModelSettings)
    """Network sizes."""
    trainable: tuple[str, ...] | None = None
    """Actor modules that train (None: all); the others stay frozen. Module ids are the
    agent names, or with ``model.sharing: layer`` strategic / tactical / risk."""
    init_from: tuple[ModuleSource, ...] = ()
    """Module weights to load before training (e.g. the strategic and tactical phases'
    actors for the joint phase); later sources override earlier ones."""
    resume_from: str | None = None
    """A checkpoint of this same run to continue from (weights, optimizer state, counters)."""
    checkpoint_every: int = CheckpointSection.every
    """Save a checkpoint every this many iterations (and always at the end); 0: only at
    the end."""
    seed: int = 0
    """Seed of env sampling and network initialisation."""
    num_env_runners: int = ResourcesSection.num_env_runners
    """Sampling processes (0: sample in the driver)."""
    num_envs_per_env_runner: int = ResourcesSection.num_envs_per_env_runner
    """Env copies per runner."""
    num_cpus_per_env_runner: float = ResourcesSection.num_cpus_per_env_runner
    """CPUs reserved for each runner."""
    sampler: str = ResourcesSection.sampler
    """``vector``: the vectorised sampler
    (:class:`algospace.training.sampler.VectorEnvRunner`); ``stock``: RLlib's
    MultiAgentEnvRunner."""
    custom_resources_per_env_runner: dict[str, float] = field(default_factory=dict)
    """Custom Ray resources each runner needs (places runners on the nodes that have them)."""
    restart_failed_env_runners: bool = TuneSection.restart_failed_env_runners
    """Replace a crashed env runner and go on sampling with the others meanwhile."""
    num_gpus_per_learner: float = ResourcesSection.num_gpus_per_learner
    """GPUs per learner (1 on a GPU box)."""
    num_learners: int = ResourcesSection.num_learners
    """Remote learner processes (0: learn in the algorithm's own process)."""
    out_dir: str = OutputSection.dir
    """Where checkpoints and results go."""

    def __post_init__(self) -> None:
        if self.iterations < 1:
            raise ConfigError(f"iterations must be >= 1, got {self.iterations!r}")
        if self.env_steps is not None and self.env_steps < 1:
            raise ConfigError(f"env_steps must be >= 1 (or None), got {self.env_steps!r}")
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"sampler must be one of {', '.join(SAMPLERS)}, got "
                              f"{self.sampler!r}")
        if self.checkpoint_every < 0:
            raise ConfigError(f"checkpoint_every must be >= 0, got {self.checkpoint_every!r}")
        if self.trainable is not None and not self.trainable:
            raise ConfigError("trainable is empty: name at least one agent, or leave it unset "
                              "to train every agent")
        if self.ppo.minibatch_size > self.ppo.train_batch_size:
            raise ConfigError(
                f"ppo.minibatch_size ({self.ppo.minibatch_size}) is larger than "
                f"ppo.train_batch_size ({self.ppo.train_batch_size}); lower it")
        if self.algorithm == "mappo" and not _has_team(self.env):
            raise ConfigError(
                f"algorithm mappo needs the team's agents: its centralized critic reads the "
                f"joint MC-dropout features of the strategic and tactical agents, and "
                f"{self.env} has none; use algorithm: ippo (one agent, its own value "
                "function)")


def _has_team(env: str) -> bool:
    """Whether any of env ``env``'s agents is one of the team's eight."""
    from envs.registry import agents_of

    return bool(set(agents_of(env)) & {*STRATEGIC_AGENTS, *TACTICAL_AGENTS})


def rllib_env_config(cfg: TrainConfig) -> dict[str, Any]:
    """The env config as a plain mapping, with the data cache as an absolute path (and the
    driver's prepared data, where this process was given it)."""
    from algospace.features.shipping import ENV_KEY, provided

    env = to_dict(cfg.env_config)
    env["data"]["cache_dir"] = str(cfg.env_config.data.cache_path())
    env["sharing"] = cfg.model.sharing
    env["gamma"] = cfg.ppo.gamma  # a strategic row's reward in joint_v0 is discounted inside
    shipped = provided(cfg.env_config.data)
    if shipped is not None:  # env runners get the driver's prepared data, not the CSV
        env[ENV_KEY] = shipped.to_dict()
    return env


def votes_for(agent: str) -> tuple[float, ...] | None:
    """Directional vote of each action of ``agent`` (None for ``risk``; single_v0's trader:
    its target fraction)."""
    if agent == "risk":
        return None
    if agent == SINGLE_AGENT:
        return SINGLE_TARGET
    return TACTICAL_VOTE if agent in TACTICAL_VOTERS else STRATEGIC_VOTE


def build_ppo_config(cfg: TrainConfig) -> Any:
    """The RLlib ``PPOConfig`` for ``cfg`` (registers the envs)."""
    from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec

    from algospace.training.mappo import RowPPOConfig
    from envs.rllib import agent_module, layer_module, make_env, register_envs

    register_envs()
    env_config = rllib_env_config(cfg)
    probe = make_env(cfg.env, env_config)
    actors = actor_ids(cfg, probe.possible_agents)
    for name in cfg.trainable or ():
        if name not in actors:
            raise ConfigError(f"trainable: {name!r} is not an actor module of {cfg.env} with "
                              f"sharing {cfg.model.sharing!r}; its modules are "
                              f"{', '.join(actors)}")
    specs = _module_specs(cfg, probe)
    p = cfg.ppo
    config = (
        RowPPOConfig()
        .environment(cfg.env, env_config=env_config)
        .env_runners(num_env_runners=cfg.num_env_runners,
                     num_envs_per_env_runner=cfg.num_envs_per_env_runner,
                     num_cpus_per_env_runner=cfg.num_cpus_per_env_runner,
                     custom_resources_per_env_runner=dict(cfg.custom_resources_per_env_runner),
                     batch_mode="complete_episodes")
        .fault_tolerance(restart_failed_env_runners=cfg.restart_failed_env_runners)
        .multi_agent(policies=list(specs),
                     policy_mapping_fn=layer_module if cfg.model.sharing == "layer"
                     else agent_module,
                     policies_to_train=list(cfg.trainable or actors)
                     + ([CRITIC_ID] if cfg.algorithm == "mappo" else []))
        .rl_module(rl_module_spec=MultiRLModuleSpec(rl_module_specs=specs))
        .learners(num_learners=cfg.num_learners, num_gpus_per_learner=cfg.num_gpus_per_learner,
                  learner_class=_learner_class(cfg),
                  add_default_connectors_to_learner_pipeline=False,
                  learner_config_dict={"value_clip": p.value_clip,
                                       "huber_delta": p.huber_delta,
                                       "shared_critic": cfg.algorithm == "mappo"})
        .training(lr=p.lr, gamma=p.gamma, lambda_=p.lambda_, clip_param=p.clip_param,
                  entropy_coeff=p.entropy_coeff, vf_loss_coeff=p.vf_loss_coeff,
                  num_epochs=p.num_epochs, train_batch_size_per_learner=p.train_batch_size,
                  minibatch_size=p.minibatch_size, grad_clip=p.grad_clip,
                  grad_clip_by="global_norm", use_kl_loss=False)
        .debugging(seed=cfg.seed)
    )
    if cfg.algorithm == "mappo":
        config = config.training(use_critic=False)
    if cfg.sampler == "vector":
        from algospace.training.sampler import VectorEnvRunner, check_vector_config

        check_vector_config(config)  # here, not first in a remote runner
        config = config.env_runners(env_runner_cls=VectorEnvRunner)
    return config


def _learner_class(cfg: TrainConfig) -> type:
    """MAPPO: shared-critic learner; IPPO: per-agent critics (both discount per row)."""
    from algospace.training.mappo import IPPOTorchLearner, MAPPOTorchLearner

    return MAPPOTorchLearner if cfg.algorithm == "mappo" else IPPOTorchLearner


def actor_ids(cfg: TrainConfig, agents: list[str]) -> list[str]:
    """The actor module ids of a run, in first-use order of the sorted agents."""
    from envs.rllib import module_of

    return list(dict.fromkeys(module_of(a, cfg.model.sharing) for a in agents))


def _module_specs(cfg: TrainConfig, env: Any) -> dict[str, Any]:
    """One actor spec per actor module (first agent's spaces), plus MAPPO's critic."""
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    from algospace.models.actor import ActorModule

    actor_class: type = ActorModule
    if cfg.algorithm == "ippo":
        from algospace.models.ippo_actor import IPPOActorModule

        actor_class = IPPOActorModule
    from envs.rllib import module_of

    m = cfg.model
    first: dict[str, str] = {}
    for agent in env.possible_agents:
        first.setdefault(module_of(agent, m.sharing), agent)
    specs = {
        module_id: RLModuleSpec(
            module_class=actor_class,
            observation_space=env.observation_spaces[agent],
            action_space=env.action_spaces[agent],
            model_config={"hidden": m.actor_hidden, "dropout": m.dropout,
                          "mc_passes": m.mc_passes, "votes": votes_for(agent),
                          "train_dropout": m.train_dropout})
        for module_id, agent in first.items()
    }
    if cfg.algorithm == "mappo":
        from algospace.models.critic import CentralCritic

        probe = env.possible_agents[0]
        specs[CRITIC_ID] = RLModuleSpec(
            module_class=CentralCritic, learner_only=True,
            observation_space=env.observation_spaces[probe],
            action_space=env.action_spaces[probe],
            model_config={"hidden": m.critic_hidden, "value_norm": m.value_norm,
                          "mc_features": m.critic_mc_features})
    return specs
