"""The vectorised sampler's module calls (:mod:`algospace.training.sampler`): the modules
in exploration mode for one ``sample()``, their rows stacked, their outputs as NumPy."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from ray.rllib.utils.numpy import convert_to_numpy
from threadpoolctl import threadpool_limits

from algospace.models.actor import ActorModule


@contextlib.contextmanager
def exploring(modules: Any, ids: Any) -> Iterator[dict[str, Any]]:
    """Each module's exploration forward for one ``sample()`` call, without grad.

    RLlib's ``TorchRLModule.forward_exploration`` switches the module to eval mode and
    back around every call (a walk over its submodules each time); here the modules are
    put in eval mode once and our :class:`ActorModule`'s own ``_forward_exploration``
    called directly, which is what that wrapper calls. Any other module keeps RLlib's
    public ``forward_exploration``.

    Torch and NumPy's BLAS run on one thread meanwhile (restored after): the forwards are
    small (a few dozen rows), too small to split, and a second thread only adds waits (in
    the driver, with ``num_env_runners`` 0, both otherwise use every core; RLlib's remote
    runners get one thread per CPU they reserve). The MC statistics' blocks of a few hundred
    rows (:meth:`~algospace.models.actor_np.NumpyActors.mc_stats_of`) run no faster on two
    BLAS threads here, only busier.
    """
    training = {m: modules[m].training for m in ids if isinstance(modules[m], ActorModule)}
    threads = torch.get_num_threads()
    for m in training:
        modules[m].eval()
    try:
        torch.set_num_threads(1)
        with torch.no_grad(), threadpool_limits(limits=1, user_api="blas"):
            yield {m: modules[m]._forward_exploration if m in training
                   else modules[m].forward_exploration for m in ids}
    finally:
        torch.set_num_threads(threads)
        for m, was in training.items():
            if was:
                modules[m].train()


def stack_rows(obs: dict[str, Any], rows: list[tuple[str, Any]], key: str) -> np.ndarray:
    """The ``key`` observations of the ``rows`` (agent, copies), stacked."""
    parts = [obs[a][key][i] for a, i in rows]
    return np.ascontiguousarray(parts[0] if len(parts) == 1 else np.concatenate(parts))


def plain_actor(module: Any) -> bool:
    """An :class:`ActorModule` whose exploration forward is ActorModule's own (the one
    :class:`NumpyActors` computes)."""
    return isinstance(module, ActorModule) and \
        type(module)._forward_exploration is ActorModule._forward_exploration


def to_numpy(result: dict[str, Any]) -> dict[str, Any]:
    """A module output (flat dict of tensors) as numpy, as RLlib's module-to-env pipeline
    makes it (``convert_to_numpy``: floats to float32, int64 to int32), without its tree
    walk."""
    out: dict[str, Any] = {}
    for key, item in result.items():
        if isinstance(item, torch.Tensor):
            item = item.detach().cpu().numpy() if item.dim() else item.cpu().item()
        elif isinstance(item, dict):
            item = convert_to_numpy(item)
        if isinstance(item, np.ndarray):
            if np.issubdtype(item.dtype, np.floating):
                item = item.astype(np.float32)
            elif np.issubdtype(item.dtype, int):
                item = item.astype(np.int32)
        out[key] = item
    return out
