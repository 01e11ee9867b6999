"""What the vectorised sampler (:mod:`algospace.training.sampler`) cannot honour, refused."""

from __future__ import annotations

from typing import Any

from ray.rllib.callbacks.callbacks import RLlibCallback

from algospace.errors import ConfigError
from algospace.ray_compat import custom_runner_connectors
from envs.registry import ENV_NAMES


def check_vector_config(config: Any) -> None:
    """Raise ``ConfigError`` if the vector sampler cannot honour this ``AlgorithmConfig``."""
    problems = []
    if not isinstance(config.env, str) or config.env not in ENV_NAMES:
        problems.append(f"env {config.env!r} is not one of {', '.join(ENV_NAMES)} (only "
                        "those have a vectorised env)")
    if config.batch_mode != "complete_episodes":
        problems.append(f"env_runners(batch_mode={config.batch_mode!r}) is set; it samples "
                        "complete episodes only")
    custom = custom_runner_connectors(config)
    if custom:
        problems.append(f"custom {' and '.join(custom)} connectors are set (env_runners("
                        + ", ".join(f"{c}_connector / add_default_connectors_to_{c}_pipeline"
                                    for c in custom)
                        + "); it bypasses the env runner's connector pipelines")
    callbacks = config.callbacks_class
    if (callbacks not in (None, RLlibCallback) and callbacks != [RLlibCallback]) or any(
            getattr(config, f"callbacks_on_episode_{w}", None)
            for w in ("created", "start", "step", "end")):
        problems.append("callbacks(...) is set; it makes no per-episode callbacks")
    if problems:
        raise ConfigError("resources.sampler: vector (the default) cannot run this config: "
                          + "; ".join(problems) + ". Set resources.sampler: stock "
                          "(TrainConfig(sampler=\"stock\")) to sample with RLlib's "
                          "MultiAgentEnvRunner")
