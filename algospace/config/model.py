"""The ``model`` section: actor and critic sizes, and the MC-consensus threshold.

These are the one set of defaults: :class:`algospace.models.actor.ActorConfig` and
:class:`algospace.models.critic.CriticConfig` take theirs from :class:`ModelSettings`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

CONSENSUS_THRESHOLD = 0.65
"""MC-dropout consensus threshold: an agent is confident, and gate 2 opens, when the mean
top-action probability over the MC passes reaches it (the joint features, the gates, and
``evaluation.gate_threshold`` default to it)."""


@dataclass(frozen=True)
class ModelSettings:
    """Actor and critic sizes."""

    actor_hidden: tuple[int, ...] = (64, 64)
    """Hidden layers of each actor's MLP."""
    critic_hidden: tuple[int, ...] = (128, 128)
    """Hidden layers of the centralized critic."""
    critic_mc_features: bool = True
    """The centralized critic reads the 15 joint MC-dropout features beside the 112-d state.
    false (an ablation): its input keeps the same 127 slots with the 15 MC ones set to 0, so
    the network, its initialisation and the actors' MC passes stay as they are."""
    dropout: float = 0.1
    """Dropout rate of the actors' MC passes, and of their training when ``train_dropout``."""
    train_dropout: bool = False
    """Train the actors with dropout active, exactly: each sampled action keeps the dropout
    mask it was drawn under (packed bits stored with the step) and PPO recomputes its
    log-probability, entropy and KL under that mask (consistent dropout, Hausknecht & Wagener
    2022). Greedy evaluation, the decision engine and the export use the dropout-off network
    (weight scaling). false: sampling and training use the dropout-off network too."""
    mc_passes: int = 8
    """Stochastic passes per sampled action (MC-dropout features)."""
    value_norm: bool = True
    """Running mean/std normalisation of the critic's targets."""
    sharing: Literal["agent", "layer"] = "agent"
    """Parameter sharing: ``agent`` — one actor module per agent; ``layer`` — one per
    layer and action space (``strategic``, ``tactical`` for the three voters, ``risk``),
    the agents told apart by a one-hot id appended to their padded local observation
    (see :mod:`envs.rllib`)."""
