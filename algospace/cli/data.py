"""``algospace data validate|synth|prepare``: check a bar CSV, write the built-in market,
build the prepared-data store."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

from algospace.config import DataConfig, load_data_config, read_yaml
from algospace.data.loader import load_bars
from algospace.data.synthetic import SyntheticConfig, generate, to_csv
from algospace.data.validate import gap_summary
from algospace.errors import ConfigError
from algospace.market.oracle import default_account, market_oracles


def add_parser(sub: Any) -> None:
    """Register ``algospace data`` and its subcommands."""
    data = sub.add_parser("data", help="validate, generate and prepare bar data")
    data_sub = data.add_subparsers(dest="data_command", required=True)

    validate = data_sub.add_parser("validate", help="check a bar CSV and summarise it")
    validate.add_argument("file", help="the CSV file")
    dayfirst_flags(validate)

    synth = data_sub.add_parser("synth", help="write a CSV from the built-in synthetic market")
    synth.add_argument("--out", required=True, help="CSV file to write")
    synth.add_argument("--days", type=int, default=None, help="trading days (default 250)")
    synth.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    synth.add_argument("--bar-minutes", type=int, default=None, help="bar size (default 5)")
    synth.add_argument("--signal", type=float, default=None,
                       help="scale of the planted 30- and 5-minute components (default 1.0, "
                            "the calibrated market; 0: none)")

    prep = data_sub.add_parser("prepare", help="build (or find) the prepared-data store")
    add_data_source_flags(prep)
    prep.add_argument("--force", action="store_true", help="rebuild even if cached")
    data.set_defaults(handler=run)


def add_data_source_flags(parser: argparse.ArgumentParser) -> None:
    """Flags choosing the data: a YAML's data section, a CSV or the synthetic market."""
    parser.add_argument("config", nargs="?", help="experiment YAML whose data section to use")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--data", metavar="FILE",
                        help="base-bar CSV (sets data.source: csv)")
    source.add_argument("--csv", dest="data", action=DeprecatedAlias, new="--data",
                        help=argparse.SUPPRESS)
    source.add_argument("--synthetic", action="store_true", help="use the built-in market")
    parser.add_argument("--strategic-csv", help="optional strategic-bar (e.g. 30-min) CSV")
    parser.add_argument("--symbol", help="contract root, e.g. ES, NQ")
    parser.add_argument("--days", type=int, help="synthetic market: trading days")
    parser.add_argument("--seed", type=int, help="synthetic market: seed")
    parser.add_argument("--signal", type=float,
                        help="synthetic market: scale of the planted components (1.0: calibrated)")
    parser.add_argument("--cache-dir", help="store directory (default .algospace/cache)")
    dayfirst_flags(parser)


class DeprecatedAlias(argparse.Action):
    """An old name of an option: works as the new one and says so on stderr, once a use."""

    def __init__(self, option_strings: list[str], dest: str, new: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.new = new

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        """Store the value under the new option's name; print the deprecation note."""
        print(f"note: {option_string} is deprecated and will go; use {self.new} (the same "
              "option)", file=sys.stderr)
        setattr(namespace, self.dest, values)


def dayfirst_flags(parser: argparse.ArgumentParser) -> None:
    """Add the mutually exclusive --dayfirst / --monthfirst flags and --timestamps."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--dayfirst", dest="dayfirst", action="store_const", const=True,
                       help="dates are written day first (29/06/2020)")
    group.add_argument("--monthfirst", dest="dayfirst", action="store_const", const=False,
                       help="dates are written month first (06/29/2020)")
    parser.add_argument("--timestamps", choices=["open", "close"], default=None,
                        help="whether timestamps mark bar open or bar close (default: open)")


def run(args: argparse.Namespace) -> int:
    """Dispatch ``algospace data <command>``."""
    handlers = {"validate": validate, "synth": synth, "prepare": prepare}
    return handlers[args.data_command](args)


def validate(args: argparse.Namespace) -> int:
    """Load and validate one file; print its summary."""
    bars = load_bars(args.file, dayfirst=args.dayfirst, timestamps=args.timestamps or "open")
    gaps = gap_summary(bars.open_time, bars.bar_minutes)
    print(f"file:        {args.file}")
    print(f"rows:        {len(bars):,}")
    print(f"first bar:   {bars.open_time[0]} (open time)")
    print(f"last bar:    {bars.open_time[-1]} (open time)")
    print(f"bar size:    {bars.bar_minutes} min (detected)")
    print(f"steps:       {gaps['regular_steps']:,} regular {bars.bar_minutes}-min steps")
    print(f"gaps:        {gaps['gaps_under_4h']:,} under 4 h (daily breaks, missing bars), "
          f"{gaps['gaps_4h_to_30h']:,} of 4-30 h (overnight), "
          f"{gaps['gaps_30h_to_80h']:,} of 30-80 h (weekends), "
          f"{gaps['gaps_over_80h']:,} over 80 h (holidays)")
    print("ok: the file is valid")
    return 0


def synth(args: argparse.Namespace) -> int:
    """Write a synthetic-market CSV."""
    overrides = {
        "days": args.days, "seed": args.seed, "bar_minutes": args.bar_minutes, "signal": args.signal
    }
    cfg = dataclasses.replace(SyntheticConfig(), **{k: v for k, v in overrides.items()
                                                    if v is not None})
    market = generate(cfg)
    to_csv(market, args.out)
    print(f"wrote {len(market.bars):,} bars of {cfg.bar_minutes} min to {args.out} "
          f"({market.bars.open_time[0]} to {market.bars.open_time[-1]}, timestamps mark bar open)")
    if cfg.strategic_loading > 0 or cfg.tactical_loading > 0:
        account = default_account(market)
        print(f"planted signal x{cfg.signal:g} (strategic {cfg.strategic_strength:g}, tactical "
              f"{cfg.tactical_strength:g} sigma per bar); causal oracles on "
              f"{account.contract.symbol}, ${account.capital:,.0f}, limit {account.limit}:")
        _print_oracles({name: {"expected_net_sharpe": f.expected_net_sharpe,
                               "expected_net_pnl": f.expected_net_pnl}
                        for name, f in market_oracles(market, account).items()}, "  ")
    return 0


def _print_oracles(oracles: dict[str, dict[str, float]], indent: str) -> None:
    """One line per oracle: expected net daily dollar Sharpe and expected net P&L."""
    for name, fig in oracles.items():
        print(f"{indent}{name:<9} oracle Sharpe {fig['expected_net_sharpe']:5.2f} (expected, "
              f"net, daily $ x sqrt(252)), expected net P&L ${fig['expected_net_pnl']:,.0f}")


def prepare_config(args: argparse.Namespace) -> DataConfig:
    """Data config from an optional YAML file plus command-line overrides."""
    section: dict[str, Any] = {}
    if args.config:
        section = dict(read_yaml(args.config).get("data") or {})
    if args.data:
        section.update(source="csv", path=args.data)
    elif args.synthetic:
        section.update(source="synthetic")
        section.pop("path", None)
    for flag, key in (("strategic_csv", "strategic_path"), ("symbol", "symbol"),
                      ("cache_dir", "cache_dir"), ("dayfirst", "dayfirst"),
                      ("timestamps", "timestamps")):
        if getattr(args, flag) is not None:
            section[key] = getattr(args, flag)
    synthetic = dict(section.get("synthetic") or {})
    for key in ("days", "seed", "signal"):
        if getattr(args, key) is not None:
            synthetic[key] = getattr(args, key)
    if synthetic:
        section["synthetic"] = synthetic
    if section.get("source", "synthetic") == "csv" and synthetic and not args.config:
        raise ConfigError("--days/--seed/--signal apply to the synthetic market, not to --data")
    return load_data_config(section)


def prepare(args: argparse.Namespace) -> int:
    """Build or find the prepared-data store and say what it holds."""
    from algospace.features.pipeline import prepare as prepare_data

    cfg = prepare_config(args)
    prepared = prepare_data(cfg, force=args.force, log=lambda m: print(f"[data] {m}", flush=True))
    meta = prepared.meta
    print(f"prepared data: {prepared.path}  ({'cache hit' if prepared.cache_hit else 'built'})")
    print(f"  source:     {meta['source']}")
    print(f"  contract:   {meta['contract']['symbol']} (${meta['contract']['point_value']:g}/pt, "
          f"tick {meta['contract']['tick_size']:g})")
    print(f"  bars:       {meta['rows']['base']:,} x {meta['bar_minutes']} min, "
          f"{meta['rows']['strategic']:,} x {meta['strategic_minutes']} min")
    for name, info in meta["splits"].items():
        a, b = info["rows"]
        print(f"  {name:<6}      rows {a:>8,}-{b:<8,} {info['first']} to {info['last']}")
    print(f"  tables:     {', '.join(meta['tables'])}")
    matrices = prepared.matrices()
    usable = matrices.usable
    print(f"  matrices:   30-min {matrices.strategic.shape[0]}x{matrices.strategic.shape[1]}, "
          f"5-min {matrices.tactical.shape[0]}x{matrices.tactical.shape[1]}; "
          f"{int(usable.sum()):,} usable 5-min steps "
          f"from {prepared.base.open_time[usable.argmax()]}")
    if "oracles" in meta and (cfg.synthetic.strategic_loading > 0
                              or cfg.synthetic.tactical_loading > 0):
        account = meta["oracle_account"]
        print(f"  oracles:    causal, on {account['contract']}, ${account['capital']:,.0f}, "
              f"limit {account['position_limit']}, whole market")
        _print_oracles(meta["oracles"], "    ")
    return 0
