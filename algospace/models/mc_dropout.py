"""MC-dropout uncertainty features for the centralized critic.

At sampling time each actor runs ``N`` stochastic forward passes with dropout
active, giving ``N`` action distributions ``p_1 .. p_N`` per row (each over
``A`` actions). With ``pbar = mean_n p_n`` (the predictive distribution) and
``H[q] = -sum_a q[a] ln q[a]`` (nats, ``0 ln 0 = 0``), the per-agent statistics
(:data:`AGENT_STATS`) of one row are:

* ``top_prob = max_a pbar[a]`` -- the probability the predictive distribution
  gives its argmax ``a* = argmax_a pbar[a]``; equivalently ``mean_n p_n[a*]``
  (the argmax's probability averaged over passes). In ``[1/A, 1]``.
* ``predictive_entropy = H[pbar]`` -- total uncertainty, in ``[0, ln A]``.
* ``expected_entropy = mean_n H[p_n]`` -- aleatoric part, in ``[0, ln A]``.
* ``mutual_information = H[pbar] - mean_n H[p_n]`` -- the BALD score, the
  epistemic part. It is ``>= 0`` by concavity of ``H`` (Jensen); tiny negative
  values from rounding are clamped to ``0``. With ``N = 1`` it is ``0``.
* ``agreement`` -- the fraction of passes whose own argmax equals ``a*``
  (ties resolve to the lowest action index), in ``[0, 1]``.
* ``direction = sum_a pbar[a] * votes[a]`` -- the expected directional vote of
  the agent (``votes[a]`` in ``[-1, 1]``, e.g. -1 short / 0 flat / +1 long), in
  ``[-1, 1]``; ``0`` when the agent has no directional votes.

A MultiDiscrete agent averages these statistics over its heads (direction 0).

:func:`joint_features` aggregates the per-agent statistics of the strategic
and tactical layers into the 15 critic features (:data:`MC_FEATURES`): the
per-layer means of the first five statistics, and five cross-agent summaries
(see the function docstring). Every function works row-wise only: a row's
output never depends on any other row of the batch.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from algospace.config import CONSENSUS_THRESHOLD

AGENT_STATS: tuple[str, ...] = (
    "top_prob",
    "predictive_entropy",
    "expected_entropy",
    "mutual_information",
    "agreement",
    "direction",
)
"""Per-agent statistics from N passes, in this order."""

MC_FEATURES: tuple[str, ...] = (
    "strategic_top_prob",
    "strategic_predictive_entropy",
    "strategic_expected_entropy",
    "strategic_mutual_information",
    "strategic_agreement",
    "tactical_top_prob",
    "tactical_predictive_entropy",
    "tactical_expected_entropy",
    "tactical_mutual_information",
    "tactical_agreement",
    "consensus_direction",
    "consensus_strength",
    "confident_share",
    "layer_disagreement",
    "gate_open",
)
"""The 15 MC-dropout features of the critic input, in order."""

N_AGENT_STATS = len(AGENT_STATS)
"""Number of per-agent statistics (6)."""

N_MC_FEATURES = len(MC_FEATURES)
"""Number of joint MC-dropout features (15)."""

_LAYER_STATS = 5  # the first five agent stats are averaged per layer
_TOP, _AGREE, _DIR = 0, 4, 5


def _entropy(p: torch.Tensor) -> torch.Tensor:
    """Shannon entropy in nats over the last axis, with 0 * log 0 = 0."""
    return -torch.special.xlogy(p, p).sum(dim=-1)


def agent_stats(probs: torch.Tensor, votes: torch.Tensor | None = None, *,
                check_votes: bool = True) -> torch.Tensor:
    """Per-agent MC-dropout statistics [B, 6] from pass probabilities [N, B, A].

    Columns follow :data:`AGENT_STATS`: ``top_prob`` is ``max_a pbar[a]`` with
    ``pbar`` the mean over passes (equal to the mean-over-passes probability of
    ``pbar``'s argmax); entropies are in nats; ``mutual_information`` is
    ``predictive - expected`` clamped at 0; ``agreement`` is the share of
    passes whose argmax equals ``argmax pbar``; ``direction`` is
    ``sum_a pbar[a] * votes[a]`` (votes ``[A]`` in ``[-1, 1]``; 0 if None).
    ``check_votes=False`` skips the votes' checks (an actor whose config checked them
    once; they cost a few tensor operations and a sync per call).
    """
    if probs.ndim != 3 or probs.shape[0] < 1 or probs.shape[2] < 1:
        raise ValueError(f"probs must have shape [N>=1, B, A>=1], got {tuple(probs.shape)}")
    mean = probs.mean(dim=0)  # [B, A]
    top_idx = mean.argmax(dim=-1)  # [B]
    top_prob = mean.gather(-1, top_idx.unsqueeze(-1)).squeeze(-1)
    predictive = _entropy(mean)
    expected = _entropy(probs).mean(dim=0)
    mutual = (predictive - expected).clamp_min(0.0)
    agreement = (probs.argmax(dim=-1) == top_idx.unsqueeze(0)).to(probs.dtype).mean(dim=0)
    if votes is None:
        direction = torch.zeros_like(top_prob)
    else:
        votes = torch.as_tensor(votes, dtype=probs.dtype, device=probs.device)
        if check_votes and votes.shape != (probs.shape[2],):
            raise ValueError(f"votes must have shape [{probs.shape[2]}], got {tuple(votes.shape)}")
        if check_votes and bool((votes.abs() > 1.0).any()):
            raise ValueError("votes must lie in [-1, 1]")
        direction = (mean @ votes).clamp(-1.0, 1.0)
    return torch.stack([top_prob, predictive, expected, mutual, agreement, direction], dim=-1)


def agent_stats_multi(probs_list: list[torch.Tensor]) -> torch.Tensor:
    """Stats [B, 6] of a MultiDiscrete agent: mean over heads of each head's stats, direction 0."""
    if not probs_list:
        raise ValueError("probs_list must hold at least one head")
    shapes = {tuple(p.shape[:2]) for p in probs_list}
    if len(shapes) != 1:
        raise ValueError(f"all heads need the same [N, B], got {sorted(shapes)}")
    stats = torch.stack([agent_stats(p) for p in probs_list], dim=0).mean(dim=0)
    stats[:, _DIR] = 0.0
    return stats


def _check_layer(name: str, layer: torch.Tensor | None) -> None:
    """Validate a [B, agents, 6] layer tensor (None allowed)."""
    if layer is None:
        return
    if layer.ndim != 3 or layer.shape[1] < 1 or layer.shape[2] != N_AGENT_STATS:
        raise ValueError(
            f"{name} must have shape [B, agents>=1, {N_AGENT_STATS}], got {tuple(layer.shape)}"
        )


def _present_layers(
    strategic: torch.Tensor | None, tactical: torch.Tensor | None, threshold: float
) -> list[torch.Tensor]:
    """Validate the joint_features inputs and return the present layers."""
    _check_layer("strategic", strategic)
    _check_layer("tactical", tactical)
    present = [layer for layer in (strategic, tactical) if layer is not None]
    if not present:
        raise ValueError("at least one of strategic / tactical must be given")
    if len({layer.shape[0] for layer in present}) != 1:
        raise ValueError("strategic and tactical must have the same batch size")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must lie in [0, 1], got {threshold}")
    return present


def joint_features(
    strategic: torch.Tensor | None,
    tactical: torch.Tensor | None,
    *,
    threshold: float = CONSENSUS_THRESHOLD,
) -> torch.Tensor:
    """The 15 critic features [B, 15] from per-agent stats [B, S, 6] and [B, K, 6].

    Columns follow :data:`MC_FEATURES`. Per layer: the mean over its agents of
    the first five stats (zeros when the layer is None). Over all present
    agents: ``consensus_direction`` = mean direction (in [-1, 1]);
    ``consensus_strength`` = ``|consensus_direction| * mean agreement`` (in [0, 1]);
    ``confident_share`` = share of agents with ``top_prob >= threshold``;
    ``layer_disagreement`` = ``|mean strategic direction - mean tactical
    direction| / 2`` (0 when a layer is absent); ``gate_open`` = 1.0 when the
    mean ``top_prob`` of all present agents is ``>= threshold``, else 0.0.
    """
    present = _present_layers(strategic, tactical, threshold)
    ref = present[0]
    zeros = ref.new_zeros((ref.shape[0], _LAYER_STATS))
    blocks = [
        zeros if layer is None else layer[:, :, :_LAYER_STATS].mean(dim=1)
        for layer in (strategic, tactical)
    ]
    agents = torch.cat(present, dim=1)  # [B, S+K, 6]
    direction = agents[:, :, _DIR].mean(dim=1).clamp(-1.0, 1.0)
    strength = direction.abs() * agents[:, :, _AGREE].mean(dim=1)
    confident = (agents[:, :, _TOP] >= threshold).to(ref.dtype).mean(dim=1)
    if strategic is not None and tactical is not None:
        gap = strategic[:, :, _DIR].mean(dim=1) - tactical[:, :, _DIR].mean(dim=1)
        disagreement = (gap.abs() / 2.0).clamp(0.0, 1.0)
    else:
        disagreement = torch.zeros_like(direction)
    gate = (agents[:, :, _TOP].mean(dim=1) >= threshold).to(ref.dtype)
    summary = torch.stack([direction, strength, confident, disagreement, gate], dim=-1)
    return torch.cat([*blocks, summary], dim=-1)


def joint_features_np(
    strategic: np.ndarray | None,
    tactical: np.ndarray | None,
    *,
    threshold: float = CONSENSUS_THRESHOLD,
) -> np.ndarray:
    """NumPy wrapper of :func:`joint_features`; returns float32 [B, 15]."""
    s = None if strategic is None else torch.as_tensor(np.asarray(strategic, dtype=np.float32))
    t = None if tactical is None else torch.as_tensor(np.asarray(tactical, dtype=np.float32))
    return joint_features(s, t, threshold=threshold).numpy()


def mc_probs(
    logits_fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, n: int
) -> torch.Tensor:
    """Softmax probs [n, B, A] from ONE batched call of ``logits_fn`` on x tiled to [n*B, ...].

    Rows ``i*B .. (i+1)*B - 1`` of the tiled batch form pass ``i``; the caller
    keeps dropout active inside ``logits_fn`` so the passes differ.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if x.ndim < 1:
        raise ValueError("x must have a batch axis")
    batch = x.shape[0]
    tiled = x.repeat(n, *([1] * (x.ndim - 1)))
    logits = logits_fn(tiled)
    if logits.ndim != 2 or logits.shape[0] != n * batch:
        raise ValueError(f"logits_fn must return [n*B={n * batch}, A], got {tuple(logits.shape)}")
    return torch.softmax(logits, dim=-1).reshape(n, batch, logits.shape[1])
