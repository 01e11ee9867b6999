"""strategic_v0 (the card is the docstring of :mod:`envs.strategic`, copied here)."""

from envs import strategic as _impl
from envs.strategic import StrategicEnv, parallel_env

__doc__ = _impl.__doc__
__all__ = ["StrategicEnv", "parallel_env"]
