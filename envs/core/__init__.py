"""Shared machinery of the AlgoSpace environments: arrays, episodes, layout, the base env
(their settings are :class:`algospace.config.EnvConfig`)."""
