"""Shared machinery of the AlgoSpace environments: config, arrays, layout, the base env."""
