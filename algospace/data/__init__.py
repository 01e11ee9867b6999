"""AlgoSpace data package."""
