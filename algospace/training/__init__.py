"""AlgoSpace training package."""
