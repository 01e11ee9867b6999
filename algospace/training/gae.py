"""GAE with a discount per row, and the advantages' standardisation, for
:class:`algospace.training.mappo.RowGAE`."""

from __future__ import annotations

import numpy as np


def standardised_advantages(targets: np.ndarray, values: np.ndarray,
                            real: np.ndarray) -> np.ndarray:
    """``targets - values`` standardised with the mean and std of the ``real`` rows only
    (the bootstrap rows, ``real`` False, get 0; they are masked from the loss anyway)."""
    adv = np.asarray(targets, np.float64) - np.asarray(values, np.float64)
    adv = (adv - adv[real].mean()) / max(1e-4, float(adv[real].std()))
    adv[~real] = 0.0
    return adv


def value_targets(*, values: np.ndarray, rewards: np.ndarray, terminateds: np.ndarray,
                  truncateds: np.ndarray, gammas: np.ndarray, lambda_: float) -> np.ndarray:
    """GAE(λ) value targets with a discount per row (RLlib's convention otherwise).

    ``gammas[t]`` discounts the transition from row t to row t+1 (``gamma ** k`` when k
    env steps lie between them); with every entry equal to γ this is exactly RLlib's
    ``compute_value_targets``. A terminated row does not bootstrap; a terminated or
    truncated row stops the recursion (the next row belongs to another episode or is the
    appended bootstrap row).
    """
    values = np.asarray(values, dtype=np.float64)
    non_terminal = 1.0 - np.asarray(terminateds, dtype=np.float64)
    propagate = non_terminal * (1.0 - np.asarray(truncateds, dtype=np.float64))
    nxt = np.append(values[1:], 0.0)
    g = np.asarray(gammas, dtype=np.float64)
    delta = np.asarray(rewards, dtype=np.float64) + g * non_terminal * nxt - values
    carry = g * lambda_ * propagate
    adv = np.zeros_like(values)
    running = 0.0
    for t in range(len(values) - 1, -1, -1):
        running = delta[t] + carry[t] * running
        adv[t] = running
    return (adv + values).astype(np.float32)
