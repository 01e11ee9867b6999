"""Ray's console messages that tell the user of a run nothing, filtered precisely.

Each is a Python logging record of one named Ray logger, matched by its text; every other
record of those loggers still reaches the console. They are:

- the token-authentication notice of every local Ray start (the local instance listens on
  127.0.0.1; a run that opens it to the network says so itself, :mod:`~algospace.tune.cluster`);
- RLlib's "You are running PPO on the new API stack!" (AlgoSpace is written for it);
- RLlib's deprecation of ``RLModule(config=...)``, raised inside RLlib's own module
  constructor (the config is built by RLlib, not by AlgoSpace);
- Tune's "Wrote the latest version of all result files and experiment state to …" after
  each run (the run prints its results folder);
- Tune's "Experiment has been interrupted … Resume experiment with: Tuner.restore(…)"
  after Ctrl-C (the run prints its own command to resume, :func:`algospace.tune.resume.
  resume_command`).
"""

from __future__ import annotations

import logging
import re

from algospace.ray_compat import DEPRECATION_LOGGER, TOKEN_AUTH_LOGGER

QUIET: tuple[tuple[str, re.Pattern[str]], ...] = (
    (TOKEN_AUTH_LOGGER,
     re.compile(r"^Token authentication is enabled for this Ray cluster\.")),
    ("ray.rllib.algorithms.algorithm_config",
     re.compile(r"^You are running \w+ on the new API stack!")),
    (DEPRECATION_LOGGER,
     re.compile(r"^DeprecationWarning: `RLModule\(config=\[RLModuleConfig object\]\)` has "
                r"been deprecated")),
    ("ray.tune.tune",
     re.compile(r"^Wrote the latest version of all result files and experiment state to ")),
    ("ray.tune.tune",
     re.compile(r"^Experiment has been interrupted, but the most recent state was saved\.\n"
                r"Resume experiment with: Tuner\.restore\(")),
)
"""(logger name, message pattern) of each filtered message."""


class QuietFilter(logging.Filter):
    """Drops the records of :data:`QUIET`."""

    def filter(self, record: logging.LogRecord) -> bool:
        """False for a record to drop."""
        message = record.getMessage()
        return not any(record.name == name and pattern.search(message)
                       for name, pattern in QUIET)


FILTER = QuietFilter()


def quiet_ray_console() -> None:
    """Filter :data:`QUIET`'s messages from the console (idempotent; before Ray starts).

    The filter sits on each emitting logger, so it holds whatever handlers Ray adds later.
    """
    for name, _ in QUIET:
        logger = logging.getLogger(name)
        if FILTER not in logger.filters:
            logger.addFilter(FILTER)
