"""The ``algospace`` command and the thin front ends of ``experiments.run`` and
``experiments.evaluate``: argument parsing and error reporting only; the work is done by
the library (:mod:`algospace.tune`, :mod:`algospace.evaluation`, :mod:`algospace.inference`,
:mod:`algospace.regime`, :mod:`algospace.data`).

Modules: :mod:`~algospace.cli.main` (the ``algospace`` command, dispatching to the
subcommands), :mod:`~algospace.cli.data`, :mod:`~algospace.cli.regime`,
:mod:`~algospace.cli.run`, :mod:`~algospace.cli.evaluate`, :mod:`~algospace.cli.decide`.
"""

from algospace.cli.main import main

__all__ = ["main"]
