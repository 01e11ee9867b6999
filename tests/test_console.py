"""Ray's messages that say nothing to the user are filtered from the console, precisely:
the same loggers' other messages still get through."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from algospace.tune.console import FILTER, QUIET, quiet_ray_console


@pytest.fixture
def records() -> Iterator[list[logging.LogRecord]]:
    """What reaches a handler on each filtered logger, with the filter installed."""
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    handler = Keep(level=logging.INFO)
    loggers = [logging.getLogger(name) for name, _ in QUIET]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    quiet_ray_console()
    quiet_ray_console()  # idempotent
    try:
        yield seen
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)


def test_rays_own_calls_are_filtered(records: list[logging.LogRecord]) -> None:
    from ray._common.deprecation import deprecation_warning
    from ray._private.authentication.authentication_token_setup import (
        _warn_token_auth_enabled,
    )

    assert all(len(logging.getLogger(name).filters) == 1 for name, _ in QUIET)
    _warn_token_auth_enabled()
    deprecation_warning(old="RLModule(config=[RLModuleConfig object])",
                        new="RLModule(observation_space=.., action_space=..)", error=False)
    assert records == []
    deprecation_warning(old="something_else()", new="other()", error=False)
    assert [r.getMessage() for r in records] == [
        "DeprecationWarning: `something_else()` has been deprecated. Use `other()` instead. "
        "This will raise an error in the future!"]


def test_only_these_messages_are_filtered(records: list[logging.LogRecord]) -> None:
    api = logging.getLogger("ray.rllib.algorithms.algorithm_config")
    api.warning("You are running PPO on the new API stack! This is the new default "
                "behavior for this algorithm.")
    logging.getLogger("ray.tune.tune").info(
        "Wrote the latest version of all result files and experiment state to '/r' in 0.04s.")
    assert records == []
    api.warning("train_batch_size is not a multiple of the minibatch size")
    logging.getLogger("ray.tune.tune").info("Total run time: 12.3 seconds")
    assert len(records) == 2
    other = logging.LogRecord("ray.rllib.algorithms.ppo", logging.WARNING, __file__, 1,
                              "You are running PPO on the new API stack!", None, None)
    assert FILTER.filter(other)  # the same text from another logger is kept


def test_decide_quiets_the_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """decide loads RLlib modules without a run: it installs the filter first."""
    from algospace.cli.main import build_parser
    from algospace.errors import ConfigError

    for name, _ in QUIET:
        monkeypatch.setattr(logging.getLogger(name), "filters", [])
    args = build_parser().parse_args(["decide", "no-such-checkpoint", "--progress", "-1"])
    with pytest.raises(ConfigError, match="--progress -1"):
        args.handler(args)
    assert all(FILTER in logging.getLogger(name).filters for name, _ in QUIET)
