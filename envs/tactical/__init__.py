"""tactical_v0 — the four 5-minute agents trade one futures account.

Agents (sorted): ``entry``, ``fvg``, ``momentum``, ``risk``; one step per
5-minute bar; every agent acts at every step.

Actions: ``entry``, ``fvg``, ``momentum``: ``Discrete(5)`` — HOLD, BUY_SMALL,
BUY_LARGE, SELL_SMALL, SELL_LARGE. ``risk``: ``MultiDiscrete([6, 6, 5])`` —
contracts 0–5, stop 0.5–3.0 × ATR in steps of 0.5, reward:risk 1–5.

Joint action → target position (contracts)::

    vote(a)  = 0, +0.5, +1, -0.5, -1                   (in the order above)
    s        = mean of the three voters' votes          tactical signal, in [-1, 1]
    n        = risk contracts
    target   = sign(s) * floor(|s| * n + 0.5)

Bracket: when a position is opened or reversed, stop = fill ∓ m × ATR and
target = fill ± rr × m × ATR (m, rr from ``risk``; ATR = mean true range of
the last 14 five-minute bars, known at the decision). After a stop or target
exit the env stays flat while the signal still points the same way; a zero
or opposite signal re-arms it.

Execution (:class:`algospace.market.Account`): orders fill at the next bar's
open plus ``slippage_ticks`` against the trade, commission per contract per
side; stop and target are checked against that bar's high/low, stop first
when both are touched; a gap through the stop fills at the open.

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

``scale`` defaults to point value × max_position. No reward for acting;
optional shaping weights (``reward.shaping``): a voter's own vote × the bar's
price change, ``risk`` minus the drawdown growth.

Observation of each agent: ``{"local", "state"}``; ``local`` is its 60-bar
window of its own columns (``envs.core.layout.AGENT_COLUMNS``) followed by the
12-d context (account, strategic bias = 0, s, risk budget = 1, decision flag
= 0); ``state`` is the 112-d global state. Only bars closed by the current
step are used.

Info (the same dict for every agent): ``equity``, ``position``, ``row`` (the
5-minute row of the current position), ``clock`` (the position on this env's
clock), ``strategic_decision``, ``exit_cost`` (dollars, see Reward).

Episodes: ``episode_steps`` bars (default 276, one session) from the chosen
split; random starts on train, consecutive tiles on val/test; truncation at
the end with final observation and reward for every agent; termination on
ruin.

Arguments: fields of :class:`algospace.config.EnvConfig` as keywords or one
mapping; none → built-in synthetic market.

Versions: v0 — first version.
"""

from __future__ import annotations

from typing import Any, ClassVar

from envs.core.base import TradingEnv


class TacticalEnv(TradingEnv):
    """The four tactical agents on 5-minute steps."""

    metadata: ClassVar[dict[str, Any]] = {"name": "tactical_v0", "render_modes": [],
                                          "is_parallelizable": True}
    STRATEGIC = False
    TACTICAL = True
    STRATEGIC_CLOCK = False
    DEFAULT_EPISODE_STEPS = 276


def parallel_env(config: Any = None, **kwargs: Any) -> TacticalEnv:
    """A tactical_v0 ParallelEnv (keywords: fields of ``EnvConfig``)."""
    return TacticalEnv(config, **kwargs)
