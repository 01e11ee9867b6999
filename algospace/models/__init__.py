"""AlgoSpace models package."""
