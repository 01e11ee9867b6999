"""AlgoSpace evaluation package."""
