"""AlgoSpace regime package."""
