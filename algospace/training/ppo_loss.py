"""The actors' PPO loss and its per-minibatch figures from one log-softmax per head.

RLlib's ``PPOTorchLearner.compute_loss_for_module`` builds two action distributions per
module and minibatch (the current one and, unused without a KL loss, the sampling one),
and the learner's diagnostics then computed the log-probabilities and entropies a second
time. For our actors (``input_lens``: one categorical head per action component) with no
KL loss and no value head of their own (MAPPO: the shared critic's loss is added by the
learner), :func:`actor_loss` computes them once and gives the same loss as RLlib's to
float rounding (tested), the same logged metrics, and the figures of
:mod:`algospace.training.diagnostics` from the same tensors. Masked sums select with
``torch.where`` instead of indexing with the mask (no host synchronisation on a GPU).
"""

from __future__ import annotations

from typing import Any

import torch
from ray.rllib.algorithms.ppo.ppo import (
    LEARNER_RESULTS_KL_KEY,
    LEARNER_RESULTS_VF_EXPLAINED_VAR_KEY,
    LEARNER_RESULTS_VF_LOSS_UNCLIPPED_KEY,
)
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.learner import ENTROPY_KEY, POLICY_LOSS_KEY, VF_LOSS_KEY
from ray.rllib.evaluation.postprocessing import Postprocessing
from ray.rllib.utils.torch_utils import explained_variance

from algospace.training.diagnostics import ROWS_TRAINED


def fast_path(module: Any, config: Any) -> bool:
    """Whether :func:`actor_loss` computes this module's loss (else RLlib's own does)."""
    return getattr(module, "input_lens", None) is not None and not config.use_kl_loss \
        and not config.use_critic


def row_mask(batch: dict[str, Any], like: torch.Tensor) -> torch.Tensor:
    """The loss mask as booleans (all true where the batch has none)."""
    mask = batch.get(Columns.LOSS_MASK)
    return torch.ones_like(like, dtype=torch.bool) if mask is None else mask.bool()


def masked_sum(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The sum of ``values`` where ``mask`` holds (the rows outside count as zero, even
    where they are not finite)."""
    return torch.where(mask, values, torch.zeros_like(values)).sum()


def actor_loss(module: Any, config: Any, batch: dict[str, Any], fwd_out: dict[str, Any],
               entropy_coeff: float) -> tuple[torch.Tensor, dict[str, Any], dict[str, Any]]:
    """``(loss, RLlib's logged metrics, diagnostics figures)`` of one actor's minibatch."""
    mask, log_ratio, ratio, surrogate, entropy = _terms(module, config, batch, fwd_out)
    valid = mask.sum()
    loss = masked_sum(-surrogate - entropy_coeff * entropy, mask) / valid
    zero = torch.zeros((), device=ratio.device)
    with torch.no_grad():
        policy_loss = -masked_sum(surrogate, mask)
        entropy_sum = masked_sum(entropy, mask)
        logged = {POLICY_LOSS_KEY: policy_loss / valid, VF_LOSS_KEY: zero,
                  LEARNER_RESULTS_VF_LOSS_UNCLIPPED_KEY: zero,
                  LEARNER_RESULTS_VF_EXPLAINED_VAR_KEY: explained_variance(
                      batch[Postprocessing.VALUE_TARGETS], zero),
                  ENTROPY_KEY: entropy_sum / valid, LEARNER_RESULTS_KL_KEY: zero}
        figures = figure_sums(mask, ratio, log_ratio, config.clip_param,
                              policy_loss, entropy_sum)
    return loss, logged, figures


def policy_figures(module: Any, config: Any, batch: dict[str, Any],
                   fwd_out: dict[str, Any]) -> dict[str, Any]:
    """The diagnostics figures of a minibatch whose loss RLlib computed."""
    mask, log_ratio, ratio, surrogate, entropy = _terms(module, config, batch, fwd_out)
    return figure_sums(mask, ratio, log_ratio, config.clip_param,
                       -masked_sum(surrogate, mask), masked_sum(entropy, mask))


def _terms(module: Any, config: Any, batch: dict[str, Any],
           fwd_out: dict[str, Any]) -> tuple[torch.Tensor, ...]:
    """``(mask, log ratio, ratio, clipped surrogate, entropy)`` per row of a minibatch."""
    logp, entropy = logp_entropy(module, fwd_out[Columns.ACTION_DIST_INPUTS],
                                 batch[Columns.ACTIONS])
    log_ratio = logp - batch[Columns.ACTION_LOGP]
    ratio = log_ratio.exp()
    adv = batch[Postprocessing.ADVANTAGES]
    surrogate = torch.min(adv * ratio,
                          adv * ratio.clamp(1 - config.clip_param, 1 + config.clip_param))
    return row_mask(batch, ratio), log_ratio, ratio, surrogate, entropy


def figure_sums(mask: torch.Tensor, ratio: torch.Tensor, log_ratio: torch.Tensor,
                clip: float, policy_loss_sum: torch.Tensor,
                entropy_sum: torch.Tensor) -> dict[str, Any]:
    """Masked sums (tensors, read once per iteration) and the row counts of a minibatch:
    policy loss, entropy, approximate KL ``E[(r - 1) - log r]``, clip fraction."""
    return {"valid": mask.sum(), ROWS_TRAINED: float(len(ratio)),
            "mean_policy_loss": policy_loss_sum, "mean_entropy": entropy_sum,
            "approx_kl": masked_sum((ratio - 1) - log_ratio, mask),
            "clip_fraction": masked_sum(((ratio - 1).abs() > clip).to(ratio.dtype), mask)}


def logp_entropy(module: Any, logits: torch.Tensor,
                 actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probability of ``actions`` and entropy per row under ``logits``: for our actors
    (``input_lens``) from one log-softmax per head, the values of RLlib's categorical
    distributions to float rounding (tested) without building them; else the module's
    train distribution."""
    lens = getattr(module, "input_lens", None)
    if lens is None:
        dist = module.get_train_action_dist_cls().from_logits(logits)
        return dist.logp(actions), dist.entropy()
    heads = [torch.log_softmax(part, dim=-1) for part in torch.split(logits, list(lens), -1)]
    columns = torch.unbind(actions, dim=-1) if module.is_multi_discrete else (actions,)
    logp = torch.zeros_like(logits[..., 0])
    entropy = torch.zeros_like(logp)
    for log_probs, column in zip(heads, columns, strict=True):
        logp = logp + log_probs.gather(-1, column.long().unsqueeze(-1)).squeeze(-1)
        entropy = entropy - (log_probs.exp() * log_probs).sum(dim=-1)
    return logp, entropy
