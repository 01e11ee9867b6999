"""Module ids the models and the code that wires them agree on (no torch or Ray import).

Kept apart from :mod:`algospace.models.critic` so that settings and checkpoint code can
name the critic without importing RLlib.
"""

from __future__ import annotations

CRITIC_ID = "critic"
"""Module id of MAPPO's shared critic: the one module of a run that is not an actor."""
