"""strategic_v0 — the four 30-minute agents trade one futures account.

Agents (sorted): ``mlmi``, ``nwrqk``, ``portfolio``, ``regime``; one step per
30-minute bar; every agent acts at every step.

Actions: ``Discrete(7)`` — HOLD, BUY_CONSERVATIVE, BUY_AGGRESSIVE,
SELL_CONSERVATIVE, SELL_AGGRESSIVE, REDUCE_RISK, INCREASE_RISK.

Joint action → target position (contracts)::

    vote(a)  = 0, +0.5, +1, -0.5, -1, 0, 0            (in the order above)
    b        = mean of the four agents' votes          strategic bias, in [-1, 1]
    rho      = clip(rho + 0.25 * step(portfolio), 0, 1) risk budget, 0.5 at reset;
               step = -1 for REDUCE_RISK, +1 for INCREASE_RISK, else 0
    target   = sign(b) * floor(|b| * rho * max_position + 0.5)

Execution (:class:`algospace.market.Account`): the order fills at the next
30-minute bar's open plus ``slippage_ticks`` against the trade, commission
per contract per side; no stop or target (this env has no ``risk`` agent).

Reward, the same for every agent (team reward)::

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

``scale`` defaults to point value × max_position (one point at full size =
1.0). There is no reward for acting; optional per-agent shaping weights
(``reward.shaping``) add a voter's own vote × the bar's price change.

Observation of each agent: ``{"local", "state"}``. ``local`` is the agent's
48-bar window of its own columns (``envs.core.layout.AGENT_COLUMNS``;
``regime`` also gets the 8-d regime latent μ) followed by the 12-d context
(account, b, tactical signal = 0 here, rho, decision flag). ``state`` is the
112-d global state (``envs.core.layout.state_names``). An observation at a
bar uses only bars closed by then.

Info (the same dict for every agent): ``equity``, ``position``, ``row`` (the
5-minute row of the current position), ``clock`` (the position on this env's
clock), ``strategic_decision``, ``exit_cost`` (dollars, see Reward).

Episodes: ``episode_steps`` bars (default 92, two sessions) from the chosen
split; random starts on train, consecutive tiles on val/test; all agents
truncated at the end with a final observation and reward; terminated if
equity falls below ``(1 - ruin_fraction)`` × initial.

Arguments: any field of :class:`algospace.config.EnvConfig` as a keyword
(``data``, ``split``, ``episode_steps``, ``max_position``, ``reward``, …), or
one mapping. With none it runs on the built-in synthetic market.

Versions: v0 — first version.
"""

from __future__ import annotations

from typing import Any, ClassVar

from envs.core.base import TradingEnv


class StrategicEnv(TradingEnv):
    """The four strategic agents on 30-minute steps."""

    metadata: ClassVar[dict[str, Any]] = {"name": "strategic_v0", "render_modes": [],
                                          "is_parallelizable": True}
    STRATEGIC = True
    TACTICAL = False
    STRATEGIC_CLOCK = True
    DEFAULT_EPISODE_STEPS = 92


def parallel_env(config: Any = None, **kwargs: Any) -> StrategicEnv:
    """A strategic_v0 ParallelEnv (keywords: fields of ``EnvConfig``)."""
    return StrategicEnv(config, **kwargs)
