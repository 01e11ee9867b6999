"""``python -m experiments.run FILE.yaml`` (also ``algospace run``): one phase, or a pipeline.

The run itself is :func:`algospace.tune.driver.run`. Input errors print one ``error: …``
line and exit with status 2; so do operational failures (Ray not starting, a cluster not
answering, a taken port, a full disk), whose traceback goes to a log file the line names
(:mod:`algospace.cli.status`). Ctrl-C stops the trials with their checkpoints intact
(``--resume`` continues) and exits with status 130.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from algospace.cli.status import exit_status
from algospace.tune.plan import RunOptions

DESCRIPTION = ("Run a training phase (or a pipeline of phases) from a YAML file through "
               "Ray Tune. A phase that reads regime latents its data lacks trains the "
               "regime detector (rde.yaml) first.")


def build_parser(prog: str = "python -m experiments.run") -> argparse.ArgumentParser:
    """The command line of ``experiments.run``."""
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments shared by ``experiments.run`` and ``algospace run``."""
    parser.add_argument("file", help="YAML file, or a name in tune_configs/ "
                        "(strategic.yaml, pipeline.yaml, sweeps/strategic_grid.yaml, ...)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 2 iterations on a 20-day market")
    parser.add_argument("--resume", action="store_true",
                        help="continue the latest unfinished run of this experiment")
    parser.add_argument("--address", default=None, metavar="ADDR",
                        help="Ray to attach to: HOST:PORT of a cluster's head, or 'auto' for "
                        "the Ray another run on this machine started (else a `ray start` "
                        "cluster here); default: RAY_ADDRESS, else a Ray of this run's own")
    parser.add_argument("--dashboard-port", type=int, default=None, metavar="PORT",
                        help="the local Ray's dashboard on exactly this port, an error if it "
                        "is taken (default: logging.dashboard.port, 8265, or a free port "
                        "when another Ray holds it)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="override a YAML key, e.g. --set training.lr=1e-4 (repeatable)")
    parser.add_argument("--name", default=None, help="experiment name (default: file stem)")
    parser.add_argument("--wandb", action="store_true", help="log to Weights & Biases")


def add_parser(sub: Any) -> None:
    """Register ``algospace run``."""
    parser = sub.add_parser("run", help="run a training phase or pipeline (Ray Tune)",
                            description=DESCRIPTION)
    add_arguments(parser)
    parser.set_defaults(handler=run)


def options(args: argparse.Namespace) -> RunOptions:
    """RunOptions from parsed arguments."""
    return RunOptions(file=args.file, quick=args.quick, resume=args.resume,
                      address=args.address, sets=tuple(args.sets), name=args.name,
                      wandb=args.wandb, dashboard_port=args.dashboard_port)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m experiments.run``; input errors exit 2, Ctrl-C exits 130."""
    return run_options(options(build_parser().parse_args(argv)))


def run(args: argparse.Namespace) -> int:
    """Run ``algospace run``."""
    return run_options(options(args), prog="algospace run")


def run_options(opts: RunOptions, prog: str = "python -m experiments.run") -> int:
    """Run with the error handling both commands share (``prog``: the command's name, for
    the command to resume that Ctrl-C prints)."""
    from algospace.errors import ConfigError, operational
    from algospace.tune.cluster import address
    from algospace.tune.driver import run as run_experiment
    from algospace.tune.resume import resume_command

    def log(message: str) -> None:
        print(message, flush=True)

    def command() -> None:
        if opts.dashboard_port is not None:
            if address(opts.address):
                raise ConfigError("--dashboard-port applies to a Ray of this run's own; an "
                                  "attached run (--address, RAY_ADDRESS) uses the cluster's "
                                  "dashboard")
            if not 1 <= opts.dashboard_port <= 65535:
                raise ConfigError(f"--dashboard-port {opts.dashboard_port}: expected a port "
                                  "from 1 to 65535")
        with operational(None):  # a full disk outside a run's folder (the data cache)
            run_experiment(opts, log)

    return exit_status(command, interrupted="interrupted: checkpoints are kept; continue with "
                       f"{resume_command(opts, prog)}")
