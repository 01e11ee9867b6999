"""Ray Tune's W&B callback, without writing the API key to Ray's logs.

Ray 2.60's ``WandbLoggerCallback`` starts one logging actor per trial and hands it
``WANDB_API_KEY`` in the actor's ``runtime_env``; Ray's runtime-env agent writes every
runtime_env it sets up, in plain text, to ``runtime_env_agent.log`` in the session's log
folder. :class:`WandbCallback` starts the same actors with a runtime_env holding only the
non-secret ``WANDB_*`` settings of the driver (base URL, entity, timeouts, …) and gives
the key to the actor as a constructor argument, which travels in Ray's task data and is
not logged; the actor puts it in its own environment before ``wandb.init``. Without a
key in the driver's environment (``wandb login`` credentials), nothing is passed.
"""

from __future__ import annotations

import os
from typing import Any

from ray.air.integrations.wandb import (
    WANDB_ENV_VAR,
    WandbLoggerCallback,
    _force_on_current_node,
    _WandbLoggingActor,
)
from ray.util.queue import Queue

from algospace.config import SECRET_NAME


class _KeyedLoggingActor(_WandbLoggingActor):
    """Ray's W&B logging actor, given the API key as an argument."""

    def __init__(self, *args: Any, api_key: str | None = None, **kwargs: Any) -> None:
        if api_key:
            os.environ[WANDB_ENV_VAR] = api_key
        super().__init__(*args, **kwargs)


def wandb_settings() -> dict[str, str]:
    """The driver's ``WANDB_*`` variables that are not secrets (passed to the actors)."""
    return {k: v for k, v in os.environ.items()
            if k.startswith("WANDB_") and not SECRET_NAME.search(k)}


class WandbCallback(WandbLoggerCallback):
    """``WandbLoggerCallback`` that keeps the API key out of runtime_env (see the module)."""

    _logger_actor_cls = _KeyedLoggingActor
    _remote_logger_class: Any

    def _start_logging_actor(self, trial: Any, exclude_results: list[str],
                             **wandb_init_kwargs: Any) -> None:
        """Ray 2.60's method, less the key in runtime_env, plus the key as an argument."""
        if trial in self._trial_logging_futures:  # a restarted trial keeps its actor
            return
        if not self._remote_logger_class:
            import ray

            self._remote_logger_class = ray.remote(
                num_cpus=0, **_force_on_current_node(),
                runtime_env={"env_vars": wandb_settings()},
                max_restarts=-1, max_task_retries=-1)(self._logger_actor_cls)
        self._trial_queues[trial] = Queue(actor_options={
            "num_cpus": 0, **_force_on_current_node(), "max_restarts": -1,
            "max_task_retries": -1})
        self._trial_logging_actors[trial] = self._remote_logger_class.remote(
            logdir=trial.local_path, queue=self._trial_queues[trial],
            exclude=exclude_results, to_config=self.AUTO_CONFIG_KEYS,
            api_key=os.environ.get(WANDB_ENV_VAR), **wandb_init_kwargs)
        future = self._trial_logging_actors[trial].run.remote()
        self._trial_logging_futures[trial] = future
        self._logging_future_to_trial[future] = trial
