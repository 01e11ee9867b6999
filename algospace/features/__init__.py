"""AlgoSpace features package."""
