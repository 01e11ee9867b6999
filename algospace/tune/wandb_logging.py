"""W&B logging of a run: Ray Tune's W&B callback, without writing the API key to Ray's logs.

Offline unless a key is set (or ``logging.wandb.mode`` says otherwise). The callback
itself (:func:`algospace.ray_compat.keyed_wandb_callback`) starts Ray's logging
actors with a runtime_env holding only the non-secret ``WANDB_*`` settings of the driver
(base URL, entity, timeouts, …) and gives them the key as an argument. Without a key in
the driver's environment (``wandb login`` credentials), nothing is passed.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any

from algospace.config import SECRET_NAME
from algospace.errors import ConfigError
from algospace.tune.plan import Log, Plan


def wandb_settings() -> dict[str, str]:
    """The driver's ``WANDB_*`` variables that are not secrets (passed to the actors)."""
    return {k: v for k, v in os.environ.items()
            if k.startswith("WANDB_") and not SECRET_NAME.search(k)}


def wandb_callback(plan: Plan, exp_dir: Path, log: Log | None = None) -> Any:
    """The W&B logger callback of a run (``log``: where to say where the W&B runs go).

    W&B writes its run directories to ``<exp_dir>/wandb/`` (``wandb sync`` them from there):
    by default they would land in Ray's driver staging directory under /tmp/ray, which Tune
    copies to the results before W&B has finished writing them.
    """
    try:
        import wandb  # noqa: F401
    except ImportError:
        raise ConfigError("logging.wandb.enabled is true but wandb is not installed; run "
                          ".venv/bin/pip install -e \".[wandb]\" or turn W&B off") from None
    from algospace.ray_compat import keyed_wandb_callback

    cfg = plan.config
    w = cfg.logging.wandb
    mode = wandb_mode(w.mode)
    if mode == "online" and not os.environ.get("WANDB_API_KEY"):
        raise ConfigError("logging.wandb.mode is online but WANDB_API_KEY is not set; set it, "
                          "or use mode: offline and `wandb sync` later")
    if mode == "offline":
        os.environ["WANDB_MODE"] = "offline"
        os.environ.pop("WANDB_API_KEY", None)  # not needed offline
    if log is not None:
        log(wandb_note(exp_dir, mode, w.project))
    tags = [cfg.phase, cfg.env_name if cfg.phase != "rde" else "rde", *w.tags]
    if plan.quick:
        tags.append("quick")
    return keyed_wandb_callback(wandb_settings(), project=w.project, group=w.group or cfg.phase,
                                tags=tags, mode=mode, log_config=True, dir=str(exp_dir))


def wandb_mode(configured: str) -> str:
    """The mode a run logs in: ``logging.wandb.mode``, where ``auto`` is offline when
    WANDB_MODE=offline or no WANDB_API_KEY is set, else online."""
    if configured != "auto":
        return configured
    offline = os.environ.get("WANDB_MODE") == "offline" or not os.environ.get("WANDB_API_KEY")
    return "offline" if offline else "online"


def wandb_note(exp_dir: Path, mode: str, project: str) -> str:
    """One line: where the run's W&B runs are written and, offline, how to upload them."""
    where = Path(exp_dir) / "wandb"
    if mode == "offline":
        return (f"[wandb] offline (WANDB_MODE=offline or no WANDB_API_KEY): W&B runs written "
                f"to {where}; upload them to project {project} with: wandb sync "
                f"{shlex.quote(str(where))}/offline-run-*")
    return f"[wandb] {mode}: logging to project {project}; local copies in {where}"


def summary_note(summary: dict[str, Any]) -> str | None:
    """:func:`wandb_note` of a finished phase's summary (None when W&B was off)."""
    w = summary.get("config", {}).get("logging", {}).get("wandb", {})
    if not w.get("enabled"):
        return None
    return wandb_note(Path(summary["experiment_dir"]), wandb_mode(w.get("mode", "auto")),
                      w.get("project", "?"))
