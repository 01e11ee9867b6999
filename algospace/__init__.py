"""AlgoSpace: cooperating trading agents trained with MAPPO on Ray RLlib."""

__version__ = "0.1.0"
