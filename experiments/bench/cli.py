"""Benchmarks: python -m experiments.bench NAME [options] [--json FILE]

Each benchmark prints the machine it runs on and a table of figures (units in
the names); with --json it also writes the same figures as one flat JSON
object. Measurements that need a clean process (peak memory, one pinned core)
run in a fresh Python subprocess. Bad settings end in one "error:" line and
exit status 2.

Benchmarks (the module that runs each, from the repository root):

  data     experiments/bench/data.py: five years of 5-minute bars (about
           350,000 rows) to CSV, then load + validate + resample + align, all
           features and both matrices, RDE inference, a cold and a cached
           prepare (times and peak memory). Targets: load < 15 s and < 1.5 GB,
           features < 60 s and < 3 GB, RDE < 30 s, cached prepare < 1 s.
  env      experiments/bench/env.py: env steps/s of strategic_v0, tactical_v0
           and joint_v0 with random actions on one pinned core, and the memory
           of an extra env. Targets: joint_v0 >= 20,000 env steps/s, the others
           >= 30,000; an extra env < 10 MB.
  learn    experiments/learn.py: MAPPO on strategic_v0, three seeds, scored on a
           fresh long market against the strategic oracle. Targets: expected
           capture >= 0.25, more net P&L than every baseline, training within
           10 minutes per seed.
  train    experiments/bench/train.py: training throughput on joint_v0, our
           vectorised sampler + learner against RLlib's MultiAgentEnvRunner with our
           modules at the best point of env runners {0, 1} x envs per runner
           {1, 4, 8, 16}, and the env alone: sampling alone and whole iterations.
           Targets: sampling x10 and whole iterations x3 env steps/s.
  team     experiments/team.py: does the team earn more together? Per seed, the
           curriculum (pipeline.yaml), the strategic-only and tactical-only teams
           and a single-agent PPO with the curriculum's env-step budget, and the
           supervised probes, all scored once on a fresh long market: expected
           capture of the joint oracle, P&L, Sharpe, intervals of the daily P&L
           differences; ablations of the joint phase (same start, seed and budget):
           the critic's 15 MC features zeroed, and IPPO (independent critics).
           Target: the joint team beats every other team in every seed and
           reaches half the joint probe's capture.
  probes   experiments/probes.py: how strong must a planted signal be before
           anything can learn it? Per --signals strength and seed, per layer, on
           the markets bench team uses: the truth probe (fitted with the oracle's
           positions as labels) and the price probe (fitted on the bars' realised
           moves, chosen by realised validation P&L), expected capture of the
           joint oracle on a fresh --eval-days market (default 300).
  market   experiments/bench/market.py: the synthetic market's three causal
           oracles (strategic, tactical, joint) per split and over the whole
           market: expected and realised net daily dollar Sharpe and net P&L.
  latency  experiments/latency.py: per-bar decision latency on one CPU thread,
           p50/p99 of the tactical and strategic steps without and with the
           50-pass MC consensus and the gates, and the stream's feature update
           after each --history-days length (default 30 days and 5 years).
           Targets: p99 tactical < 1 ms, strategic < 5 ms.
  uncertainty  experiments/uncertainty.py: trains strategic_v0 (--iterations,
           default 25; or takes --checkpoint), then on a fresh long market: the
           MC consensus's calibration (hit rate of the consensus direction per
           consensus decile, its standard error, ECE), gate 2's threshold chosen
           on the validation split, and the gated team beside the ungated one on
           the test split (trades, P&L per trade, Sharpe).

--quick makes a smoke run: it only checks that a benchmark runs; its figures
are not results. What it shrinks, per benchmark:

  data, market  a 20-day market (--days still wins)
  env           2,000 actions, 0.5 s of timed stepping per env
  latency       20 timed steps (5 warm-up) per variant, 7 bars of the stream
                after 30 and 35 days of history
  probes        one L2 strength per probe (the grid's strongest)
  team          every training run is experiments.run --quick (2 iterations,
                a 20-day market), evaluated on at most 60 days
  uncertainty   2 training iterations on a 20-day market (unless --checkpoint),
                a 60-day evaluation market, 8 MC passes
  train         a 20-day market, 12-step episodes, a 24-step train batch, 2
                copies, the grid 0 runners x {1, 2} envs, 1 timed iteration
  learn         no smoke run (an error): use --iterations

Examples (quick ones):

  python -m experiments.bench market --quick --json market.json
  python -m experiments.bench latency --quick
  python -m experiments.bench env --quick
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from algospace.errors import AlgoSpaceError, ConfigError
from experiments.bench import data, env
from experiments.bench.common import Figures, machine, print_table

CHILDREN: dict[str, Callable[..., Figures]] = {**data.CHILDREN, **env.CHILDREN}
"""Every measurement run in a fresh process (python -m experiments.bench _child TASK ...)."""


def _seeds(args: argparse.Namespace, default: str) -> tuple[int, ...]:
    """``--seeds`` as a tuple of ints (``default`` when not given)."""
    text = args.seeds or default
    try:
        return tuple(int(s) for s in text.split(","))
    except ValueError:
        raise ConfigError(f"--seeds {text!r}: give comma-separated integers, e.g. "
                          "0,1,2") from None


def _signal(text: str) -> float:
    """``--signal`` as a non-negative float."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number >= 0, e.g. 1.0 (the "
                                         "calibrated market) or 6")
    return value


QUICK_DAYS = 20
"""``--quick``: days of the market of the data and market benchmarks."""
QUICK_ENV = {"steps": 2000, "seconds": 0.5}
"""``--quick``: the env benchmark's random actions and timed seconds per env."""
NO_QUICK = {"learn": "--iterations 2 --seeds 0"}
"""Benchmarks without a smoke run, and the options that make a short one."""


def _given(value: float | None, default: float, quick: float, args: argparse.Namespace
           ) -> float:
    """An option's value: as given, else the ``--quick`` size, else the default."""
    if value is not None:
        return value
    return quick if args.quick else default


def _data(args: argparse.Namespace) -> Figures:
    """The data benchmark (experiments/bench/data.py)."""
    return data.run(days=int(_given(args.days, data.DEFAULT_DAYS, QUICK_DAYS, args)))


def _env(args: argparse.Namespace) -> Figures:
    """The env benchmark (experiments/bench/env.py)."""
    return env.run(steps=int(_given(args.steps, env.DEFAULT_STEPS, QUICK_ENV["steps"], args)),
                   seconds=_given(args.seconds, env.DEFAULT_SECONDS, QUICK_ENV["seconds"],
                                  args))


def _learn(args: argparse.Namespace) -> Figures:
    """The learning benchmark (experiments/learn.py)."""
    from experiments import learn

    return learn.run_seeds(iterations=_iterations(args, 60), eval_every=args.eval_every,
                           seeds=_seeds(args, "0,1,2"), eval_days=_eval_days(args),
                           signal=args.signal)


def _train(args: argparse.Namespace) -> Figures:
    """The training-throughput benchmark (experiments/bench/train.py)."""
    from experiments.bench import train

    return train.run(iterations=args.timed_iterations, gpu=args.gpu, copies=args.copies,
                     quick=args.quick)


def _team(args: argparse.Namespace) -> Figures:
    """The team benchmark (experiments/team.py)."""
    from experiments import team

    days = args.days if args.days is not None else (team.QUICK_DAYS if args.quick
                                                      else team.LEARN_DAYS)
    eval_days = min(_eval_days(args), team.QUICK_EVAL_DAYS) if args.quick else _eval_days(args)
    return team.run_seeds(seeds=_seeds(args, "0,1,2"), quick=args.quick, eval_days=eval_days,
                          days=days, signal=args.signal, train_dropout=args.train_dropout)


def _probes(args: argparse.Namespace) -> Figures:
    """Truth and price probes by signal strength (experiments/probes.py)."""
    from experiments import probes

    try:
        signals = tuple(_signal(s) for s in (args.signals or "1,3,6,12").split(","))
    except argparse.ArgumentTypeError as err:
        raise ConfigError(f"--signals: {err}") from None
    days = int(_given(args.days, 250, QUICK_DAYS * 2, args))
    eval_days = args.eval_days if args.eval_days is not None else (
        60 if args.quick else probes.EVAL_DAYS)
    return probes.run(signals=signals, seeds=_seeds(args, "0"), days=days,
                      eval_days=eval_days, quick=args.quick)


def _eval_days(args: argparse.Namespace) -> int:
    """``--eval-days`` (1,000 when not given: learn, team, uncertainty)."""
    return 1000 if args.eval_days is None else int(args.eval_days)


def _market(args: argparse.Namespace) -> Figures:
    """The synthetic market's oracles (experiments/bench/market.py)."""
    from experiments.bench import market

    return market.run(days=int(_given(args.days, 250, QUICK_DAYS, args)), seed=args.seed)


def _latency(args: argparse.Namespace) -> Figures:
    """The decision-latency benchmark (experiments/latency.py)."""
    from experiments import latency

    days = tuple(int(d) for d in args.history_days.split(",")) if args.history_days else None
    return latency.run(checkpoint=args.checkpoint, repeats=args.repeats, quick=args.quick,
                       history_days=days)


def _uncertainty(args: argparse.Namespace) -> Figures:
    """Calibration of the MC consensus and the gates (experiments/uncertainty.py)."""
    from experiments import uncertainty

    return uncertainty.run(checkpoint=args.checkpoint,
                           iterations=_iterations(args, uncertainty.ITERATIONS),
                           eval_days=_eval_days(args), seed=_seeds(args, "0")[0],
                           signal=args.signal, quick=args.quick,
                           train_dropout=args.train_dropout)


def _iterations(args: argparse.Namespace, default: int) -> int:
    """``--iterations`` (``default`` when not given), at least 1."""
    value = default if args.iterations is None else args.iterations
    if value < 1:
        raise ConfigError(f"--iterations must be >= 1, got {value}")
    return int(value)


BENCHMARKS: dict[str, Callable[[argparse.Namespace], Figures]] = {
    "data": _data, "env": _env, "learn": _learn, "train": _train, "team": _team,
    "latency": _latency, "market": _market, "uncertainty": _uncertainty, "probes": _probes}
"""Each benchmark's name and how it runs from the parsed command line."""


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m experiments.bench``."""
    parser = argparse.ArgumentParser(prog="python -m experiments.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=sorted(BENCHMARKS), help="benchmark to run")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument("--days", type=int, default=None,
                        help="data: trading days of 5-minute bars (default 1260 = 5 years); "
                             "market, team, probes: days of the market (default 250)")
    parser.add_argument("--steps", type=int, default=None,
                        help="env: random actions drawn before timing, cycled (default "
                             f"{env.DEFAULT_STEPS})")
    parser.add_argument("--seconds", type=float, default=None,
                        help="env: minimum timed stepping per env in seconds (default "
                             f"{env.DEFAULT_SECONDS:g})")
    parser.add_argument("--iterations", type=int, default=None,
                        help="learn: training iterations (default 60); uncertainty: "
                             "(default 25)")
    parser.add_argument("--eval-every", type=int, default=10,
                        help="learn: backtest the validation split every N iterations "
                             "(default 10)")
    parser.add_argument("--eval-days", type=int, default=None,
                        help="learn, team, uncertainty: trading days of the fresh market "
                             "the final policy is evaluated on (default 1000); probes: "
                             "(default 300)")
    parser.add_argument("--seed", type=int, default=0, help="market: the market's seed")
    parser.add_argument("--signals", default=None,
                        help="probes: comma-separated signal strengths (default 1,3,6,12)")
    parser.add_argument("--signal", type=_signal, default=1.0,
                        help="learn, team, uncertainty: strength of the planted components "
                             "in multiples of the calibrated market's (default 1.0; the "
                             "training and the fresh evaluation market both)")
    parser.add_argument("--seeds", default=None,
                        help="learn, team (default 0,1,2), probes (default 0): "
                             "comma-separated "
                             "training seeds; the market seed varies with each; "
                             "uncertainty: its first (default 0)")
    parser.add_argument("--timed-iterations", type=int, default=3,
                        help="train: iterations timed after one warm-up (default 3)")
    parser.add_argument("--copies", type=int, default=16,
                        help="train: env copies of our vectorised sampler (default 16: one "
                             "sample() call returns the train batch rounded up to whole "
                             "episodes)")
    parser.add_argument("--gpu", action="store_true",
                        help="train: our learner on one GPU (an error where there is none)")
    parser.add_argument("--checkpoint",
                        help="latency: time this checkpoint's actors (default: fresh ones); "
                             "uncertainty: study this checkpoint's actors instead of "
                             "training")
    parser.add_argument("--repeats", type=int,
                        help="latency: timed decision steps per variant (default 5000)")
    parser.add_argument("--history-days", default=None,
                        help="latency: comma-separated trading days of history before the "
                             "stream's timed bars (default 30,1260 = 30 days and 5 years)")
    parser.add_argument("--train-dropout", action="store_true",
                        help="uncertainty, team: train the actors with dropout active "
                             "(consistent dropout, model.train_dropout) instead of the "
                             "default dropout-off training (team: every RL run, into "
                             "results/bench/team-train-dropout/)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: checks that the benchmark runs, its figures are not "
                             "results (what it shrinks per benchmark: see above; learn has "
                             "none)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the named benchmark (or, with ``_child TASK ARGS``, one measurement of it)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_child"]:
        print(json.dumps(CHILDREN[argv[1]](*argv[2:])))
        return 0
    args = build_parser().parse_args(argv)
    if args.quick and args.name in NO_QUICK:
        print(f"error: --quick: the {args.name} benchmark has no smoke run; for a short one "
              f"give {NO_QUICK[args.name]}", file=sys.stderr)
        return 2
    info = machine()
    print_table("machine", info)
    try:
        figures = BENCHMARKS[args.name](args)
    except AlgoSpaceError as err:  # bad settings: one line, no traceback
        print(f"error: {err}", file=sys.stderr)
        return 2
    print_table(f"benchmark: {args.name}", figures)
    if args.json:
        from algospace.files import write_json

        write_json(args.json, {**info, **figures})
        print(f"\nwrote {args.json}")
    return 0
