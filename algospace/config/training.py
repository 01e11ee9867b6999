"""The ``training`` section: the algorithm and its PPO / MAPPO hyperparameters.

Defaults follow the MAPPO paper (Yu et al., 2022, "The Surprising
Effectiveness of PPO in Cooperative Multi-Agent Games"): clip 0.2, a few
epochs over large batches, entropy 0.01, value normalisation, Huber value
loss (δ 10), gradient-norm clip 10, learning rate 5e-4 — except γ 0.9 and
GAE λ 0.5 (the paper's 0.99 and 0.95 learned far less of the built-in
market's planted component at the same budget: README, "Does the team
learn?").
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from algospace.errors import ConfigError

Algorithm = Literal["mappo", "ippo"]
"""``mappo``: shared centralized critic; ``ippo``: a critic per agent on local obs."""


@dataclass(frozen=True)
class PPOSettings:
    """PPO / MAPPO hyperparameters (MAPPO-paper defaults except γ and λ)."""

    lr: float = 5e-4
    """Adam learning rate of every module."""
    gamma: float = 0.9
    """Discount per env row (0.99 in the MAPPO paper; a trade's reward here arrives within a
    bar or two, and the longer horizon only adds the noise of later bars to each advantage)."""
    lambda_: float = 0.5
    """GAE λ (0.95 in the MAPPO paper; 0.5 measured better, README "Does the team learn?")."""
    clip_param: float = 0.2
    """PPO ratio clip."""
    entropy_coeff: float = 0.01
    """Entropy bonus."""
    vf_loss_coeff: float = 1.0
    """Weight of the critic's loss added to each actor's rows."""
    value_clip: float | None = 0.2
    """Clip of the value change (normalised units); None: off."""
    huber_delta: float | None = 10.0
    """Huber δ of the value loss; None: squared error."""
    num_epochs: int = 5
    """Passes over each train batch."""
    train_batch_size: int = 4000
    """Env rows per training iteration (per learner)."""
    minibatch_size: int = 1000
    """Rows per SGD minibatch."""
    grad_clip: float = 10.0
    """Global gradient-norm clip."""
    cost_ramp_iterations: int = 0
    """Iterations over which the training envs' share of commission and slippage rises
    linearly from 0 to 1 (``min(1, iteration / n)``), full costs after; 0: full costs from
    the first iteration. Backtests and reports always charge the full costs
    (:mod:`envs.core.costs`)."""

    def __post_init__(self) -> None:
        if isinstance(self.cost_ramp_iterations, bool) or not isinstance(
                self.cost_ramp_iterations, int) or self.cost_ramp_iterations < 0:
            raise ConfigError("training.cost_ramp_iterations must be an integer >= 0 "
                              f"(0: full costs throughout), got {self.cost_ramp_iterations!r}")


@dataclass(frozen=True)
class TrainingSection(PPOSettings):
    """MAPPO hyperparameters (PPOSettings) and the algorithm."""

    algorithm: Algorithm = "mappo"
    """``mappo``: shared centralized critic; ``ippo``: a critic per agent on local obs."""

    def ppo(self) -> PPOSettings:
        """The PPO hyperparameters alone."""
        names = [f.name for f in dataclasses.fields(PPOSettings)]
        return PPOSettings(**{n: getattr(self, n) for n in names})
