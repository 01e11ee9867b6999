"""joint_v0 — all eight agents trade one futures account on two clocks.

Agents (sorted): ``entry``, ``fvg``, ``mlmi``, ``momentum``, ``nwrqk``,
``portfolio``, ``regime``, ``risk``. One step per 5-minute bar. Episodes start
at a step where a 30-minute bar has just closed. The strategic agents decide
only at such steps (``env.decision`` and the context's decision flag are 1);
their decision holds until the next 30-minute close, and their actions at
other steps are ignored (they may be left out). Tactical agents act every
step. For RLlib, :mod:`envs.rllib` turns this into one strategic row per
decision carrying the sum of team rewards since the previous one.

Actions: strategic ``Discrete(7)`` (HOLD, BUY_CONSERVATIVE, BUY_AGGRESSIVE,
SELL_CONSERVATIVE, SELL_AGGRESSIVE, REDUCE_RISK, INCREASE_RISK); ``entry``,
``fvg``, ``momentum`` ``Discrete(5)`` (HOLD, BUY_SMALL, BUY_LARGE,
SELL_SMALL, SELL_LARGE); ``risk`` ``MultiDiscrete([6, 6, 5])`` (contracts
0–5, stop 0.5–3.0 × ATR, reward:risk 1–5).

Joint action → target position (contracts)::

    b        = mean strategic vote (0, +0.5, +1, -0.5, -1, 0, 0), latched at closes
    rho      = clip(rho + 0.25 * step(portfolio), 0, 1), 0.5 at reset, latched at closes
    s        = mean tactical vote (0, +0.5, +1, -0.5, -1) of entry, fvg, momentum
    k        = risk contracts (0-5)
    c        = clip(b * rho + s * k / 5, -1, 1)
    target   = sign(c) * floor(|c| * max_position + 0.5)

The two layers' positions add, as the planted drifts they estimate add: the
strategic part b * rho * max_position is strategic_v0's target for the same
strategic actions, the tactical part s * k / 5 * max_position tactical_v0's
for the same tactical actions. So either layer alone trades as it does in its
own env, agreement adds up to the position limit and disagreement nets out.

Bracket (the ``risk`` agent guards the tactical layer's trades): on opening or
reversing while the strategic part is 0 contracts (core = floor(|b * rho| *
max_position + 0.5) = 0), stop = fill ∓ m × ATR, target = fill ± rr × m × ATR
(m, rr from ``risk``; 14-bar ATR of 5-minute bars at the decision); a
position opened while the strategic layer holds a part of its own carries no
bracket (the strategic layer leaves by changing its vote). After a stop or
target exit the env stays flat while c points the same way and the core is
0.

Execution (:class:`algospace.market.Account`): fills at the next bar's open
plus slippage against the trade, commission per contract per side; stop and
target checked against that bar's high/low, stop first; gaps fill at the open.

Reward, the same for every agent::

    r = (equity change over the bar, net of commission and slippage
         - exit cost, on the episode's last step only
         - drawdown_penalty * growth of the drawdown from the equity peak) / scale

    exit cost = |position| * (commission + slippage_ticks * tick value)

A position still open when the episode ends (truncated or terminated) is
charged the exit's commission and slippage (``ContractSpec.cost_per_side``
per contract), as the backtest charges it at the tile's end; the account is
not flattened. ``info["exit_cost"]`` gives the dollars charged (0.0 on every
other step). With ``drawdown_penalty`` 0 and no shaping, an episode's rewards
× ``scale`` add up to the backtest's P&L of the same tile (short of ruin,
where the backtest's ruin stop sells earlier).

No reward for acting; optional per-agent shaping weights (``reward.shaping``).

Observation: ``{"local", "state"}``; strategic agents' ``local`` is their
48-bar window of 30-minute rows (``regime`` + latent μ), tactical agents'
their 60-bar window of 5-minute rows, each followed by the 12-d context
(account, b, s, rho, decision flag); ``state`` is the 112-d global state.
Only bars closed by the current step are used; a 30-minute bar is visible
from the 5-minute step at which it closes.

Info (the same dict for every agent): ``equity``, ``position``, ``row`` (the
5-minute row of the current position), ``clock`` (the position on this env's
clock), ``strategic_decision``, ``exit_cost`` (dollars, see Reward).

Episodes: ``episode_steps`` 5-minute steps (default 276, one session);
random starts on train, consecutive tiles on val/test; truncation with final
observation and reward for all; termination on ruin.

Arguments: fields of :class:`algospace.config.EnvConfig`; none → built-in
synthetic market.

Versions: v0 — first version. Before release its target rule changed once:
the layers' votes were averaged (c = (b + s) / 2, n = rho * risk contracts,
rho 0.5 at reset) and every position carried the bracket, so either layer
alone traded at most a quarter of its own env's size and a bracket exit cut
the strategic layer's holding; policies trained on that rule act differently
under this one.
"""

from __future__ import annotations

from typing import Any, ClassVar

from envs.core.base import TradingEnv


class JointEnv(TradingEnv):
    """All eight agents; strategic ones decide at 30-minute closes."""

    metadata: ClassVar[dict[str, Any]] = {"name": "joint_v0", "render_modes": [],
                                          "is_parallelizable": True}
    STRATEGIC = True
    TACTICAL = True
    STRATEGIC_CLOCK = False
    DEFAULT_EPISODE_STEPS = 276


def parallel_env(config: Any = None, **kwargs: Any) -> JointEnv:
    """A joint_v0 ParallelEnv (keywords: fields of ``EnvConfig``)."""
    return JointEnv(config, **kwargs)
