"""Agents, actions and the named layouts of every observation vector.

One place for the names: the agents and their action meanings, the columns
each agent sees in its local window, the 12-d context every agent gets, and
the 112-d global state of DESIGN §6 — every dimension named. Agents are always
ordered ``sorted(...)`` where vectors are concatenated.
"""

from __future__ import annotations

from algospace.config.env import STRATEGIC_AGENTS
from algospace.features.build import STRATEGIC_FEATURES, SYNERGY_FEATURES, TACTICAL_FEATURES

TACTICAL_VOTERS: tuple[str, ...] = ("entry", "fvg", "momentum")
"""Tactical agents whose Discrete(5) action is a directional vote, sorted."""

STRATEGIC_ACTIONS: tuple[str, ...] = (
    "HOLD", "BUY_CONSERVATIVE", "BUY_AGGRESSIVE", "SELL_CONSERVATIVE", "SELL_AGGRESSIVE",
    "REDUCE_RISK", "INCREASE_RISK",
)
"""Meanings of the strategic Discrete(7) actions."""
STRATEGIC_VOTE: tuple[float, ...] = (0.0, 0.5, 1.0, -0.5, -1.0, 0.0, 0.0)
"""Directional vote of each strategic action."""
RISK_STEP: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0, -0.25, 0.25)
"""Change of the risk budget for each action of the ``portfolio`` agent."""

TACTICAL_ACTIONS: tuple[str, ...] = ("HOLD", "BUY_SMALL", "BUY_LARGE", "SELL_SMALL", "SELL_LARGE")
"""Meanings of the tactical Discrete(5) actions."""
TACTICAL_VOTE: tuple[float, ...] = (0.0, 0.5, 1.0, -0.5, -1.0)
"""Directional vote of each tactical action."""

RISK_CONTRACTS: tuple[int, ...] = (0, 1, 2, 3, 4, 5)
"""``risk`` action[0]: contracts."""
RISK_STOP_ATR: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0)
"""``risk`` action[1]: stop distance in multiples of the 14-bar ATR."""
RISK_REWARD: tuple[float, ...] = (1.0, 2.0, 3.0, 4.0, 5.0)
"""``risk`` action[2]: target distance as a multiple of the stop distance."""

SINGLE_AGENT = "trader"
"""single_v0's one agent: it chooses the account's target position on its own."""
SINGLE_ACTIONS: tuple[str, ...] = ("SHORT_FULL", "SHORT_HALF", "FLAT", "LONG_HALF", "LONG_FULL")
"""Meanings of the trader's Discrete(5) actions."""
SINGLE_TARGET: tuple[float, ...] = (-1.0, -0.5, 0.0, 0.5, 1.0)
"""Target position of each trader action, as a fraction of the position limit."""

RETURN_30 = "return_30"
"""Standardised log return of the 30-minute bar (a column of every strategic window)."""
RETURN_5 = "return_5"
"""Standardised log return of the 5-minute bar (a column of every tactical window)."""

_TIME = ("hour_sin", "hour_cos")
AGENT_COLUMNS: dict[str, tuple[str, ...]] = {
    "mlmi": ("mlmi_value", "mlmi_signal", *_TIME, RETURN_30),
    "nwrqk": ("nwrqk_value", "nwrqk_slope", "lvn_distance", "lvn_strength", *_TIME, RETURN_30),
    "regime": ("mmd_1", "mmd_2", "mmd_3", "volatility_30", "volume_skew", *_TIME, RETURN_30),
    "portfolio": (*STRATEGIC_FEATURES, RETURN_30),
    "fvg": ("fvg_bullish_active", "fvg_bearish_active", "fvg_nearest_level", "fvg_age",
            "fvg_mitigation", RETURN_5),
    "momentum": ("momentum_5", "volume_ratio", RETURN_5),
    "entry": (*TACTICAL_FEATURES, RETURN_5),
    "risk": (*TACTICAL_FEATURES, RETURN_5),
}
"""Columns of each agent's local window (30-minute rows for strategic agents, 5-minute for
tactical ones); ``regime`` also gets the regime latent μ after its window."""

ACCOUNT: tuple[str, ...] = (
    "position_frac", "unrealised_pct", "realised_pct", "drawdown_pct", "equity_ratio",
    "bars_in_trade_frac", "stop_distance_atr", "target_distance_atr",
)
"""Account block: position / max position; unrealised, realised (net of costs) and drawdown
in % of initial equity; equity / initial; bars in the trade / 100; distance from the close to
the stop and to the target in ATRs (0 when none)."""
SIGNALS: tuple[str, ...] = ("strategic_bias", "tactical_signal", "risk_budget")
"""Layer signals: mean strategic vote b, mean tactical vote s, risk budget ρ (see the cards)."""
CONTEXT: tuple[str, ...] = (*ACCOUNT, *SIGNALS, "strategic_decision")
"""The context appended to every local observation: account, signals, and 1.0 when the
strategic layer decides at this step."""

LATENT_DIM = 8
"""Dimensions of the regime latent μ."""
SHORT_MEAN_BARS = 12
"""5-minute bars in the short-mean block of the state."""


def state_blocks(strategic_window: int = 48) -> list[tuple[str, tuple[str, ...]]]:
    """The global state as named blocks, in order (DESIGN §6)."""
    last_strategic = tuple(f"{a}_{m.lower()}" for a in STRATEGIC_AGENTS for m in STRATEGIC_ACTIONS)
    last_tactical = tuple(f"{a}_{m.lower()}" for a in TACTICAL_VOTERS for m in TACTICAL_ACTIONS)
    return [
        ("strategic_now", tuple(f"{n}_last" for n in STRATEGIC_FEATURES)),
        ("strategic_mean", tuple(f"{n}_mean{strategic_window}" for n in STRATEGIC_FEATURES)),
        ("tactical_now", tuple(f"{n}_now" for n in TACTICAL_FEATURES)),
        ("tactical_mean", tuple(f"{n}_mean{SHORT_MEAN_BARS}" for n in TACTICAL_FEATURES)),
        ("regime_latent", tuple(f"regime_mu_{i}" for i in range(LATENT_DIM))),
        ("synergy", SYNERGY_FEATURES),
        ("account", ACCOUNT),
        ("signals", SIGNALS),
        ("last_strategic_actions", last_strategic),
        ("last_tactical_actions",
         (*last_tactical, "risk_contracts_frac", "risk_stop_atr_frac", "risk_reward_frac")),
    ]


MARKET_BLOCKS = ("strategic_now", "strategic_mean", "tactical_now", "tactical_mean",
                 "regime_latent", "synergy")
"""State blocks that depend on the market only (precomputed per 5-minute step)."""


def state_names(strategic_window: int = 48) -> tuple[str, ...]:
    """Every dimension of the global state, in order."""
    return tuple(name for _, names in state_blocks(strategic_window) for name in names)


def market_state_dim() -> int:
    """Dimensions of the market part of the state."""
    return sum(len(names) for block, names in state_blocks() if block in MARKET_BLOCKS)
