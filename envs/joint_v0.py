"""joint_v0 (the card is the docstring of :mod:`envs.joint`, copied here)."""

from envs import joint as _impl
from envs.joint import JointEnv, parallel_env

__doc__ = _impl.__doc__
__all__ = ["JointEnv", "parallel_env"]
