"""``bench team``: does the eight-agent team earn more together than either layer alone?

For each seed (the market seed varies with it) on the built-in 250-day market:

1. **The curriculum**: ``pipeline.yaml`` (regime detector → strategic → tactical →
   coordination → joint) through ``experiments.run``, each phase's best checkpoint
   chosen on the validation split. Its learning curves are the validation expected
   capture at each checkpoint, per phase.
2. **The single-layer teams** — the strategic agents alone (``strategic.yaml``) and the
   tactical agents alone (``tactical.yaml``) — and **the single-agent PPO** (one policy on
   the joint observation choosing the target position, ``single_v0``), each given the
   env steps the curriculum's four RL phases took together.
3. **The probes**: per layer and joint, a supervised model of what the layer's agents
   see, traded through the same account. The truth probe
   (:mod:`algospace.evaluation.probes`) is fitted with the oracle's positions as labels:
   what a policy could reach if shown the answer. The price probe
   (:mod:`algospace.evaluation.price_probes`) is fitted on the bars' realised moves and
   chosen by realised validation P&L: what a learner of prices reaches
   (``price_probe_<layer>_expected_capture``).
4. Everything is evaluated once on a **fresh long market** from the same generator
   (``--eval-days``; its test split, 85 %), through the same account, against the three
   oracles and the baselines. Headline: expected capture of the joint oracle; beside it
   net dollar P&L, dollar Sharpe, PSR, and the bootstrap 95 % interval of the daily P&L
   difference joint − strategic-only and joint − tactical-only.

Figures, curves (JSON), a plot of the curves and a summary table go to
``results/bench/team/``. Each finished training run's record is written to
``seed<S>/<run>.json`` as it ends; a rerun with the same seed, days, signal and
``--quick`` whose checkpoints are still there reads it back instead of training again.

5. **The critic ablations** (:mod:`experiments.team_ablation`): the joint phase twice more
   from the same checkpoint, seed and budget -- with the critic's 15 MC features zeroed,
   and with IPPO (independent critics, the same actors loaded) -- each evaluated like the
   joint team: ``mappo_minus_zeroed_mc_expected_capture`` and
   ``mappo_minus_ippo_expected_capture``, beside each run's last critic explained variance
   (``joint_critic_ev``, ``zeroed_mc_critic_ev``, ``ippo_critic_ev``: IPPO's is the mean of
   its eight per-agent critics').
"""

from __future__ import annotations

import csv
import json
import math
import statistics
import time
from pathlib import Path
from typing import Any

from algospace.files import write_text
from experiments.learn import EVAL_DAYS, EVAL_SEED, LEARN_DAYS, LEARN_SEED
from experiments.team_ablation import ABLATIONS

PHASES: tuple[str, ...] = ("strategic", "tactical", "coordination", "joint")
"""The curriculum's RL phases, in order (the regime detector runs first)."""
TEAMS: tuple[str, ...] = ("joint", "strategic", "tactical", "single_agent_ppo")
"""What the bench trains and scores, by name."""
PROBES: tuple[str, ...] = ("strategic", "tactical", "joint")
"""The supervised probes, by layer."""
PROBE_KEYS: list[str] = [*(f"probe_{p}_expected_capture" for p in PROBES),
                         *(f"price_probe_{p}_expected_capture" for p in PROBES)]
"""The truth probes' and the price probes' figures per seed (and ``_mean`` over seeds)."""
ABLATED: tuple[str, ...] = tuple(ABLATIONS)
"""The joint phase's critic ablations (:mod:`experiments.team_ablation`), by name."""
ABLATION_KEYS: list[str] = [
    *(f"mappo_minus_{a}_expected_capture" for a in ABLATED),
    "joint_critic_ev", *(f"{a}_critic_ev" for a in ABLATED)]
"""The ablations' figures per seed (and ``_mean`` over seeds)."""

TEAM_ENV = {"joint": "joint_v0", "strategic": "strategic_v0", "tactical": "tactical_v0",
            "single_agent_ppo": "single_v0", "zeroed_mc": "joint_v0", "ippo": "joint_v0"}
"""The env each team trades on (all on the same market, account and costs)."""
OUT = "results/bench/team"
QUICK_DAYS = 20
"""``--quick``: days of the training market (as ``experiments.run --quick`` uses)."""
QUICK_EVAL_DAYS = 60
"""``--quick``: days of the evaluation market, at most."""


SOURCE_DIRS = ("algospace", "envs", "tune_configs")
"""What a run's training depends on, besides the bench's own settings."""
REPOSITORY = Path(__file__).resolve().parents[1]


def code_fingerprint(root: Path = REPOSITORY) -> str:
    """SHA-256 over the Python and YAML files under :data:`SOURCE_DIRS` of ``root`` (paths
    and contents): a kept record from other code or other phase defaults is not reused."""
    import hashlib

    digest = hashlib.sha256()
    for folder in SOURCE_DIRS:
        for path in sorted((root / folder).rglob("*")):
            if path.suffix in (".py", ".yaml") and path.is_file():
                digest.update(path.relative_to(root).as_posix().encode() + b"\0")
                digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def kept(path: Path, settings: dict[str, Any], make: Any) -> Any:
    """``make()``'s record, written to ``path`` when it finishes; a rerun with the same
    settings whose checkpoints are still there reads it back instead of training again
    (a crash later in the bench loses nothing finished). The bench's settings include
    :func:`code_fingerprint`, so a record of other code or phase files trains again."""
    from algospace.files import write_json

    if path.is_file():
        saved = json.loads(path.read_text())
        if saved.get("settings") == settings and all(
                Path(c).exists() for c in _checkpoints(saved.get("record"))):
            print(f"[team] reusing the finished run recorded in {path}", flush=True)
            return saved["record"]
    record = make()
    write_json(path, {"settings": settings, "record": record}, default=str)
    return record


def _checkpoints(record: Any) -> list[str]:
    """Every ``checkpoint`` path in a run record (nested dicts and lists)."""
    if isinstance(record, dict):
        found = [str(v) for k, v in record.items() if k == "checkpoint" and v]
        return found + [c for k, v in record.items() if k != "checkpoint"
                        for c in _checkpoints(v)]
    if isinstance(record, list):
        return [c for item in record for c in _checkpoints(item)]
    return []


def run_sets(seed: int, out: Path, *, days: int = LEARN_DAYS,
             signal: float = 1.0, train_dropout: bool = False) -> list[str]:
    """The ``--set`` overrides every phase of one seed gets."""
    return [f"seed={seed}", f"data.synthetic.seed={LEARN_SEED + seed}",
            f"data.synthetic.days={days}", f"data.synthetic.signal={signal}",
            f"output.dir={out}", *(["model.train_dropout=true"] if train_dropout else [])]


def curve(summary: dict[str, Any]) -> list[dict[str, float]]:
    """Validation figures at each checkpoint of a phase's one trial (its progress.csv)."""
    trial = summary["trials"][0] if summary.get("trials") else None
    if trial is None:
        return []
    progress = Path(trial["path"]) / "progress.csv"
    if not progress.is_file():
        return []
    points = []
    with progress.open(newline="") as f:
        for row in csv.DictReader(f):
            value = row.get("val_expected_capture", "")
            if value in ("", "nan"):
                continue
            points.append({"iteration": float(row["training_iteration"]),
                           "env_steps": float(row.get("env_steps") or math.nan),
                           "val_expected_capture": float(value),
                           "val_net_pnl": float(row.get("val_net_pnl") or math.nan)})
    return points


def curriculum(seed: int, out: Path, *, quick: bool, days: int,
               signal: float = 1.0, train_dropout: bool = False) -> dict[str, Any]:
    """Run ``pipeline.yaml`` for one seed; per phase: checkpoint, env steps, time, curve."""
    from algospace.tune.driver import run_experiment
    from experiments.team_ablation import last_critic_ev

    started = time.perf_counter()
    summaries = run_experiment("pipeline.yaml", quick=quick,
                               sets=run_sets(seed, out, days=days, signal=signal,
                                             train_dropout=train_dropout))
    phases: dict[str, Any] = {}
    for summary in summaries:
        phase = summary["phase"]
        steps = sum(float(t.get("env_steps") or 0.0) for t in summary["trials"])
        phases[phase] = {"checkpoint": summary["best_checkpoint"], "env_steps": steps,
                         "regime_latent": _regime_latent(summary),
                         "wall_seconds": float(summary["wall_seconds"]),
                         "curve": [] if phase == "rde" else curve(summary),
                         "handoff": summary.get("handoff") or [],
                         "critic_ev": math.nan if phase == "rde"
                         else last_critic_ev(summary, per_module=False)}
    return {"phases": phases, "wall_seconds": time.perf_counter() - started,
            "env_steps": sum(phases[p]["env_steps"] for p in PHASES if p in phases)}


def single_layer(phase: str, seed: int, out: Path, *, budget: float, quick: bool,
                 days: int, signal: float = 1.0, train_dropout: bool = False
                 ) -> dict[str, Any]:
    """One layer's phase alone with the curriculum's whole env-step budget."""
    from algospace.tune.driver import run_experiment

    sets = [*run_sets(seed, out / f"{phase}-only", days=days, signal=signal,
                      train_dropout=train_dropout),
            f"stop.env_steps={max(1, int(budget))}", f"stop.iterations={10**6}"]
    [summary] = run_experiment(f"{phase}.yaml", quick=quick, sets=sets)
    steps = sum(float(t.get("env_steps") or 0.0) for t in summary["trials"])
    return {"checkpoint": summary["best_checkpoint"], "env_steps": steps,
            "regime_latent": _regime_latent(summary),
            "wall_seconds": float(summary["wall_seconds"]), "curve": curve(summary)}


def _regime_latent(summary: dict[str, Any]) -> bool:
    """Whether a phase's agents read the regime latents (its resolved config)."""
    return bool(summary.get("config", {}).get("env", {}).get("regime_latent", False))


def single_agent(seed: int, out: Path, *, budget: float, quick: bool,
                 days: int, signal: float = 1.0, train_dropout: bool = False
                 ) -> dict[str, Any]:
    """The single-agent PPO on ``single_v0`` with the curriculum's env-step budget."""
    from dataclasses import replace

    from algospace.config import PPOSettings
    from algospace.training.train import train
    from experiments.learn import learn_config

    cfg = learn_config(days=days, seed=seed, iterations=10**6, out=out / "single",
                       env="single_v0", algorithm="ippo", signal=signal)
    cfg = replace(cfg, env_steps=max(1, int(budget)))
    if train_dropout:
        cfg = replace(cfg, model=replace(cfg.model, train_dropout=True))
    if quick:  # the batch of experiments.run --quick
        cfg = replace(cfg, ppo=PPOSettings(train_batch_size=400, minibatch_size=200,
                                           num_epochs=2))
    started = time.perf_counter()
    result = train(cfg, log=lambda line: print(line, flush=True))
    return {"checkpoint": result.checkpoint, "env_steps": float(result.env_steps),
            "regime_latent": cfg.env_config.regime_latent,
            "wall_seconds": time.perf_counter() - started, "curve": []}


def evaluate(team: str, run: dict[str, Any], seed: int, *, days: int, eval_days: int,
             rde_checkpoint: str | None, signal: float = 1.0) -> Any:
    """Backtest a team's checkpoint once on the fresh evaluation market (with regime
    latents: those of the curriculum's detector, named, as the market's store may hold
    other detectors' from earlier runs)."""
    from algospace.evaluation.backtest import backtest, greedy_policy
    from algospace.training.checkpoint import load_actors

    _, cfg = market_configs(seed, days=days, eval_days=eval_days,
                            regime_latent=run["regime_latent"], signal=signal,
                            detector=detector_of(rde_checkpoint, run["regime_latent"]))
    if cfg.regime_latent:
        write_latents(cfg.data, rde_checkpoint)
    return backtest(TEAM_ENV[team], cfg, greedy_policy(load_actors(run["checkpoint"])),
                    seed=seed)


def market_configs(seed: int, *, days: int, eval_days: int, regime_latent: bool,
                   signal: float = 1.0, detector: str | None = None) -> tuple[Any, Any]:
    """The env settings of the training market and of the fresh evaluation market
    (``detector``: the regime detector whose latents they read)."""
    from algospace.config import DataConfig, EnvConfig
    from algospace.data.synthetic import SyntheticConfig
    from experiments.learn import evaluation_env

    synth = SyntheticConfig(days=days, seed=LEARN_SEED + seed, signal=signal)
    train_cfg = EnvConfig(data=DataConfig(synthetic=synth), regime_latent=regime_latent,
                          regime_detector=detector)
    return train_cfg, evaluation_env(train_cfg, days=eval_days, seed=EVAL_SEED + seed)


def detector_of(rde_checkpoint: str | None, regime_latent: bool) -> str | None:
    """The id of the curriculum's regime detector when the teams read latents."""
    from algospace.regime.store import detector_id

    return detector_id(rde_checkpoint) if regime_latent and rde_checkpoint else None


def write_latents(data: Any, rde_checkpoint: str | None) -> None:
    """Encode the evaluation market with the curriculum's regime detector."""
    from algospace.errors import ConfigError
    from algospace.features.pipeline import prepare
    from algospace.regime.store import store_latents

    if rde_checkpoint is None:
        raise ConfigError("the teams read regime latents but no regime detector was trained")
    store_latents(prepare(data, log=lambda _: None), rde_checkpoint, log=lambda _: None)


def scored(bt: Any) -> dict[str, float]:
    """The headline and realised figures of one evaluation backtest."""
    m = bt.metrics
    return {"expected_capture": bt.capture.get("expected_capture_of_joint_oracle", math.nan),
            "realised_capture": bt.capture.get("capture_of_joint_oracle", math.nan),
            "net_pnl": m.net_pnl, "sharpe": m.sharpe, "psr": m.probabilistic_sharpe,
            "trades": float(m.trades)}


def run_seed(seed: int, *, quick: bool, eval_days: int, days: int,
             out: Path, signal: float = 1.0, train_dropout: bool = False) -> dict[str, Any]:
    """Every team, probe and interval for one seed."""
    from algospace.evaluation.bootstrap import pnl_difference_ci
    from algospace.evaluation.price_probes import run_price_probes
    from algospace.evaluation.probes import run_probes
    from experiments.team_ablation import ablation_runs

    seed_dir = out / f"seed{seed}"
    settings = {"seed": seed, "days": days, "signal": signal, "quick": quick,
                "code": code_fingerprint(), **({"train_dropout": True} if train_dropout
                                               else {})}
    dropout = {"train_dropout": train_dropout}
    cur = kept(seed_dir / "curriculum.json", settings, lambda: curriculum(
        seed, seed_dir / "curriculum", quick=quick, days=days, signal=signal, **dropout))
    phases = cur["phases"]
    budget = cur["env_steps"]
    ablated = kept(seed_dir / "ablations.json", settings, lambda: ablation_runs(
        run_sets(seed, seed_dir / "curriculum", days=days, signal=signal, **dropout),
        phases["joint"]["handoff"], quick=quick))
    runs = {"joint": phases["joint"],
            **{layer: kept(seed_dir / f"{layer}-only.json", settings, lambda layer=layer:
                           single_layer(layer, seed, seed_dir, budget=budget, quick=quick,
                                        days=days, signal=signal, **dropout))
               for layer in ("strategic", "tactical")},
            "single_agent_ppo": kept(seed_dir / "single.json", settings, lambda: single_agent(
                seed, seed_dir, budget=budget, quick=quick, days=days, signal=signal,
                **dropout)),
            **ablated}
    rde = phases.get("rde", {}).get("checkpoint")
    backtests = {team: evaluate(team, r, seed, days=days, eval_days=eval_days,
                                rde_checkpoint=rde, signal=signal) for team, r in runs.items()}
    row: dict[str, Any] = {"seed": seed, "budget_env_steps": budget}
    for team, bt in backtests.items():
        row.update({f"{team}_{k}": v for k, v in scored(bt).items()})
        row[f"{team}_env_steps"] = runs[team]["env_steps"]
        row[f"{team}_wall_seconds"] = runs[team]["wall_seconds"]
    joint = backtests["joint"]
    for other in ("strategic", "tactical"):
        initial = float(joint.equity.iloc[-1] - joint.metrics.net_pnl)
        ci = pnl_difference_ci(joint.equity, backtests[other].equity, initial, 2000, seed)
        row[f"joint_minus_{other}_daily_pnl"] = ci["mean_daily_usd"]
        row[f"joint_minus_{other}_ci_low"] = ci["low_2.5"]
        row[f"joint_minus_{other}_ci_high"] = ci["high_97.5"]
    row["joint_critic_ev"] = phases["joint"]["critic_ev"]
    for name in ABLATED:
        row[f"{name}_critic_ev"] = runs[name]["critic_ev"]
        row[f"mappo_minus_{name}_expected_capture"] = \
            row["joint_expected_capture"] - row[f"{name}_expected_capture"]
    latent = runs["joint"]["regime_latent"]
    train_cfg, eval_cfg = market_configs(seed, days=days, eval_days=eval_days,
                                         regime_latent=latent, signal=signal,
                                         detector=detector_of(rde, latent))
    probes = run_probes(train_cfg, eval_config=eval_cfg, seed=seed)
    price = run_price_probes(train_cfg, eval_config=eval_cfg)
    for layer in PROBES:
        row[f"probe_{layer}_expected_capture"] = probes[layer].expected_capture_of_joint_oracle
        row[f"price_probe_{layer}_expected_capture"] = \
            price[layer].expected_capture_of_joint_oracle
    for phase in ("rde", *PHASES):
        if phase in phases:
            row[f"phase_{phase}_wall_seconds"] = phases[phase]["wall_seconds"]
    row["curves"] = {p: phases[p]["curve"] for p in PHASES if p in phases}
    return row


def run_seeds(*, seeds: tuple[int, ...], quick: bool = False, eval_days: int = EVAL_DAYS,
              days: int = LEARN_DAYS, out: str | None = None, signal: float = 1.0,
              train_dropout: bool = False) -> dict[str, Any]:
    """:func:`run_seed` for each seed; means over seeds; the plot and the table.
    ``train_dropout``: every RL run trains with dropout active (``model.train_dropout``),
    into ``results/bench/team-train-dropout/`` unless ``out`` is given."""
    out_dir = Path(out if out is not None else OUT + ("-train-dropout" if train_dropout
                                                       else ""))
    per_seed = [run_seed(s, quick=quick, eval_days=eval_days, days=days, out=out_dir,
                         signal=signal, train_dropout=train_dropout) for s in seeds]
    figures: dict[str, Any] = {"seeds": ",".join(map(str, seeds)), "eval_days": eval_days,
                               "quick": quick, "signal": signal,
                               "train_dropout": train_dropout}
    headline = [f"{t}_expected_capture" for t in TEAMS] + PROBE_KEYS + ABLATION_KEYS
    for row in per_seed:
        s = row["seed"]
        for key, value in row.items():
            if key not in ("seed", "curves"):
                figures[f"{key}_seed{s}"] = value
    for key in headline:
        figures[f"{key}_mean"] = statistics.fmean(float(r[key]) for r in per_seed)
    figures["team_beats_layers_every_seed"] = all(
        r["joint_expected_capture"] > max(r["strategic_expected_capture"],
                                          r["tactical_expected_capture"],
                                          r["single_agent_ppo_expected_capture"])
        for r in per_seed)
    curves = {str(r["seed"]): r["curves"] for r in per_seed}
    write_text(out_dir / "curves.json", json.dumps(curves, indent=2))
    write_text(out_dir / "summary.md", table(per_seed))
    plot_curves(curves, out_dir / "curves.png")
    figures["plot"] = str(out_dir / "curves.png")
    return figures


def table(per_seed: list[dict[str, Any]]) -> str:
    """The summary table (Markdown): expected capture of the joint oracle per team, then the
    critic ablations (MAPPO minus each ablation's expected capture, each run's critic EV)."""
    names = [*(f"{t}_expected_capture" for t in TEAMS), *PROBE_KEYS, *ABLATION_KEYS]
    heads = [n.removesuffix("_expected_capture") for n in names]
    lines = ["| seed | " + " | ".join(heads) + " | joint net P&L |",
             "|---" * (len(names) + 2) + "|"]
    for r in per_seed:
        cells = [f"{float(r[n]):+.3f}" for n in names]
        lines.append(f"| {r['seed']} | " + " | ".join(cells)
                     + f" | {_dollars(r['joint_net_pnl'])} |")
    return "\n".join(lines) + "\n"


def _dollars(value: float) -> str:
    """``-$1,234`` / ``$1,234``."""
    return f"{'-' if value < 0 else ''}${abs(value):,.0f}"


def plot_curves(curves: dict[str, dict[str, list[dict[str, float]]]], path: Path) -> None:
    """Validation expected capture per checkpoint, one panel per phase, a line per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from algospace.files import atomic_write

    fig, axes = plt.subplots(1, len(PHASES), figsize=(4 * len(PHASES), 3.5), sharey=True)
    for ax, phase in zip(axes, PHASES, strict=True):
        for seed, phases in curves.items():
            pts = phases.get(phase, [])
            ax.plot([p["iteration"] for p in pts], [p["val_expected_capture"] for p in pts],
                    marker="o", label=f"seed {seed}")
        ax.axhline(0.0, color="grey", lw=0.8)
        ax.set(title=phase, xlabel="iteration")
    axes[0].set_ylabel("validation expected capture")
    axes[-1].legend()
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
