"""Gymnasium spaces as JSON and back: how a checkpoint records a module's spaces.

Dict, Box, Discrete and MultiDiscrete spaces only (the ones AlgoSpace's envs use);
a Box bound is one number when every entry is equal, else the nested list.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np

__all__ = ["space_from_json", "space_to_json"]


def space_to_json(space: gym.Space[Any]) -> dict[str, Any]:
    """A JSON description of a Dict / Box / Discrete / MultiDiscrete space."""
    if isinstance(space, gym.spaces.Dict):
        return {"type": "Dict",
                "spaces": {k: space_to_json(v) for k, v in space.spaces.items()}}
    if isinstance(space, gym.spaces.Box):
        return {"type": "Box", "shape": list(space.shape), "dtype": str(space.dtype),
                "low": _bound(space.low), "high": _bound(space.high)}
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, gym.spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": np.asarray(space.nvec).tolist()}
    raise ValueError(f"cannot describe a {type(space).__name__} space")


def _bound(values: np.ndarray) -> Any:
    """One number when every entry is equal, else the nested list."""
    flat = np.asarray(values, dtype=np.float64).ravel()
    if flat.size and np.all(flat == flat[0]):
        return float(flat[0])
    return np.asarray(values, dtype=np.float64).tolist()


def space_from_json(data: Mapping[str, Any]) -> gym.Space[Any]:
    """The space :func:`space_to_json` described."""
    kind = data["type"]
    if kind == "Dict":
        return gym.spaces.Dict({k: space_from_json(v) for k, v in data["spaces"].items()})
    if kind == "Box":
        shape = tuple(int(n) for n in data["shape"])
        dtype = np.dtype(data["dtype"])
        low = np.broadcast_to(np.asarray(data["low"], dtype=np.float64), shape).astype(dtype)
        high = np.broadcast_to(np.asarray(data["high"], dtype=np.float64), shape).astype(dtype)
        return gym.spaces.Box(low, high, shape, dtype)
    if kind == "Discrete":
        return gym.spaces.Discrete(int(data["n"]), start=int(data.get("start", 0)))
    if kind == "MultiDiscrete":
        return gym.spaces.MultiDiscrete(np.asarray(data["nvec"], dtype=np.int64))
    raise ValueError(f"unknown space type {kind!r}")
