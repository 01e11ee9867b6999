"""single_v0 (the card is the docstring of :mod:`envs.single`, copied here)."""

from envs import single as _impl
from envs.single import SingleEnv, parallel_env

__doc__ = _impl.__doc__
__all__ = ["SingleEnv", "parallel_env"]
