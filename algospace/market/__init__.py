"""AlgoSpace market package."""
