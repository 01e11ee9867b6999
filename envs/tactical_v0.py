"""tactical_v0 (the card is the docstring of :mod:`envs.tactical`, copied here)."""

from envs import tactical as _impl
from envs.tactical import TacticalEnv, parallel_env

__doc__ = _impl.__doc__
__all__ = ["TacticalEnv", "parallel_env"]
