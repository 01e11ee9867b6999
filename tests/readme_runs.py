"""The README's ``python -m experiments.run`` commands, each run once per session, in-process.

Each fixture takes its command line from the README (so the command the README shows is
the one tested), parses it with ``experiments.run``'s own parser and runs it through the
driver (the code ``python -m experiments.run`` runs) on the session's Ray, with the test
overrides appended: results and data cache into a temp dir, no dashboard, and per fixture
``--quick`` or fewer iterations. ``tests/test_readme.py`` checks the README blocks through
these runs; ``tests/test_runner.py`` and ``tests/test_walkforward_run.py`` assert on them.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
MARK = ".venv/bin/python -m experiments.run "


@dataclass
class ReadmeRun:
    """One README command, run: its argv (README's plus the test's), what it returned."""

    argv: list[str]
    root: Path
    """Holds ``results/`` (``output.dir``) and ``cache/`` (``data.cache_dir``)."""
    summaries: list[dict[str, Any]]
    lines: list[str] = field(default_factory=list)
    """What the run logged."""


def readme_argv(key: str) -> list[str]:
    """The arguments of the README's ``python -m experiments.run`` line whose arguments
    are exactly ``key`` (comments dropped); it must be there."""
    found = [argv for line in README.read_text(encoding="utf-8").splitlines() if MARK in line
             for argv in [shlex.split(line.split(MARK, 1)[1].rstrip(" \\"), comments=True)]
             if argv == key.split()]
    assert found, f"README.md: no line runs `python -m experiments.run {key}`"
    return found[0]


def run_readme(key: str, root: Path, *extra: str) -> ReadmeRun:
    """Run the README's command line holding ``key`` in-process, ``extra`` appended."""
    from algospace.cli.run import build_parser, options
    from algospace.tune.driver import run

    argv = [*readme_argv(key), *extra, "--set", f"output.dir={root / 'results'}",
            "--set", f"data.cache_dir={root / 'cache'}",
            "--set", "logging.dashboard.enabled=false"]
    lines: list[str] = []
    summaries = run(options(build_parser().parse_args(argv)), log=lines.append)
    return ReadmeRun(argv, root, summaries, lines)


KEYS = {
    "readme_quick_start": "strategic.yaml",
    "readme_pipeline": "pipeline.yaml --quick",
    "readme_grid_sweep": "sweeps/strategic_grid.yaml",
    "readme_asha_sweep": "sweeps/strategic_asha.yaml",
    "readme_walkforward": "walkforward.yaml --quick",
}
"""Each fixture's README line, by its arguments (``strategic.yaml``: the quick start's)."""


def _tmp(factory: pytest.TempPathFactory, name: str) -> Path:
    return factory.mktemp(name)


@pytest.fixture(scope="session")
def readme_quick_start(ray_session: Any, tmp_path_factory: pytest.TempPathFactory) -> ReadmeRun:
    """The quick start's ``strategic.yaml``, as ``--quick``, 1 iteration, fresh data (it
    trains the regime detector first)."""
    return run_readme(KEYS["readme_quick_start"], _tmp(tmp_path_factory, "quick-start"),
                      "--quick", "--set", "stop.iterations=1")


@pytest.fixture(scope="session")
def readme_pipeline(ray_session: Any, tmp_path_factory: pytest.TempPathFactory) -> ReadmeRun:
    """``pipeline.yaml --quick``: all five phases, each handing off."""
    return run_readme(KEYS["readme_pipeline"], _tmp(tmp_path_factory, "pipeline"))


@pytest.fixture(scope="session")
def readme_grid_sweep(ray_session: Any, tmp_path_factory: pytest.TempPathFactory) -> ReadmeRun:
    """The grid sweep, ``--quick``, without regime latents."""
    return run_readme(KEYS["readme_grid_sweep"], _tmp(tmp_path_factory, "grid"), "--quick",
                      "--set", "env.regime_latent=false")


@pytest.fixture(scope="session")
def readme_asha_sweep(ray_session: Any, tmp_path_factory: pytest.TempPathFactory) -> ReadmeRun:
    """The random search with ASHA, ``--quick``, without regime latents."""
    return run_readme(KEYS["readme_asha_sweep"], _tmp(tmp_path_factory, "asha"), "--quick",
                      "--set", "env.regime_latent=false")


@pytest.fixture(scope="session")
def readme_walkforward(ray_session: Any, tmp_path_factory: pytest.TempPathFactory) -> ReadmeRun:
    """``walkforward.yaml --quick``, 1 iteration, 1 CPU a trial (two folds side by side)."""
    return run_readme(KEYS["readme_walkforward"], _tmp(tmp_path_factory, "walkforward"),
                      "--set", "stop.iterations=1", "--set", "resources.num_env_runners=0")
