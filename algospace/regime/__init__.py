"""Regime detector (RDE): an unsupervised transformer VAE over 30-minute regime features.

* :mod:`algospace.regime.features` — :func:`regime_features`, the causal per-bar inputs.
* :mod:`algospace.regime.model` — :class:`RegimeDetector` (encoder, VAE head, window decoder).
* :mod:`algospace.regime.train` — :func:`train_rde`, :func:`load_rde` (the training loop and
  checkpoints; settings in :class:`algospace.config.RDEConfig`).
* :mod:`algospace.regime.latents` — windows, the trivial baselines, and :func:`encode_all`
  (latent ``mu`` of every bar for the feature store).

Nothing is imported here so that ``algospace.regime.features`` stays usable without torch.
"""
