"""Per-bar decision latency of the team on one CPU thread: engine, eager and exported actors.

``python -m experiments.bench latency [--checkpoint PATH] [--quick] [--json FILE]``.

What one timed **decision step** is — what the decision engine
(:mod:`algospace.inference.engine`) does for one layer at a bar's close:

* ``mc0``: the greedy actions of the layer's four agents and their probabilities;
* ``mc50``: the same plus 50 MC-dropout passes per agent, with the masks seeded
  per decision, followed by the two gates
  (:func:`algospace.inference.gates.apply_gates`) over the statistics of all
  eight agents (the other layer's latched).

Three implementations, timed interleaved on the same real env observations
(a ``joint_v0`` episode on the synthetic market):

* ``engine`` — what the decision engine runs:
  :meth:`TeamPolicy.act <algospace.inference.policy.TeamPolicy.act>`, the
  actors' weights in NumPy (:mod:`algospace.inference.kernel`: greedy logits
  per agent, the 50 passes of all four agents in one kernel call). It reads
  the same weights from eager and exported actors (the same numbers, tested),
  so it is timed once, on the exported actors' weights.
* ``eager`` — the per-agent torch path of the RLlib
  :class:`~algospace.models.actor.ActorModule`: ``logits`` at batch size 1 and
  :func:`~algospace.models.actor.actor_mc_stats` (one batched forward of the
  50 passes per agent, torch's generator seeded per decision).
* ``exported`` — the same per-agent torch path on the TorchScript actors
  (:mod:`algospace.inference.export`).

The tactical step is ``entry, fvg, momentum, risk`` (every 5-minute bar); the
strategic step ``mlmi, nwrqk, portfolio, regime`` (every 30-minute close).
``time.perf_counter_ns`` after a warm-up; p50 and p99 in microseconds.
Targets (p99, one core): tactical < 1 ms, strategic < 5 ms including the 50
MC passes. The timed work has no data-dependent branches, so without
``--checkpoint`` freshly initialised actors of the default size stand in for
trained ones.

Reported separately (it is not part of the decision-step targets): the
feature update per 5-minute bar of :class:`~algospace.inference.stream.MarketStream`
(``add`` + ``update``) after each ``--history-days`` length, with a regime encoder
(a freshly initialised detector of the default size, :class:`RDEConfig`, its input
normalisation fitted on the history); bars that close a 30-minute bar also compute that
bar's 30-minute features and the regime latent of its window, and cost more.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

Figures = dict[str, Any]

TARGET_P99_US = {"tactical": 1_000.0, "strategic": 5_000.0}
"""Decision-step targets (p99, microseconds, one core), both including the MC passes."""
MC_VARIANTS = (0, 50)
"""MC-dropout passes per agent of the timed variants."""
IMPLS = ("engine", "eager", "exported")
"""Timed implementations (see the module docstring); the targets are the engine's."""
REPEATS = 5_000
"""Timed decision steps per variant and implementation."""
WARMUP = 200
"""Untimed steps before them."""
STREAM_BARS = 100
"""Timed 5-minute bars of the stream's feature update (per history length)."""
STREAM_WARMUP = 6
"""Untimed bars streamed before them (after the bulk load and the first full update)."""
HISTORY_DAYS = (30, 1260)
"""Trading days of history before the timed bars: 30 days and 5 years (~350k bars)."""
QUICK = {"repeats": 20, "warmup": 5, "stream_bars": 7, "history_days": (30, 35)}
"""Sizes of ``--quick`` (a run that only checks the bench works; 7 bars hold a 30-minute close)."""
OBSERVATIONS = 64
"""Env observations the timed steps cycle through."""
SEED = 7


def _layers() -> dict[str, tuple[str, ...]]:
    from algospace.config import STRATEGIC_AGENTS, TACTICAL_AGENTS

    return {"tactical": TACTICAL_AGENTS, "strategic": STRATEGIC_AGENTS}


def _data(days: int, cache: Path) -> Any:
    """The built-in synthetic market, ``days`` trading days, cached under ``cache``."""
    from algospace.config import DataConfig
    from algospace.data.synthetic import SyntheticConfig

    return DataConfig(synthetic=SyntheticConfig(days=days, seed=SEED), cache_dir=str(cache))


def team(checkpoint: str | None, data: Any) -> tuple[Any, dict[str, Any], str]:
    """An env on ``data`` and the actors to time: a checkpoint's, or fresh default-size ones."""
    from algospace.config import EnvConfig
    from algospace.models.actor import ActorModule
    from algospace.training.builder import votes_for
    from algospace.training.checkpoint import load_actors
    from envs.registry import env_class

    if checkpoint:
        from algospace.training.checkpoint import load_train_config

        cfg = load_train_config(checkpoint)
        env_cfg = replace(cfg.env_config, data=data, regime_latent=False, random_start=False)
        return env_class(cfg.env)(env_cfg), load_actors(checkpoint), f"checkpoint {checkpoint}"
    env = env_class("joint_v0")(EnvConfig(data=data))
    torch.manual_seed(0)
    actors = {a: ActorModule(observation_space=env.observation_space(a),
                             action_space=env.action_space(a),
                             model_config={"votes": votes_for(a)})
              for a in env.possible_agents}
    actor_cfg = next(iter(actors.values())).cfg
    hidden = "x".join(map(str, actor_cfg.hidden))
    return env, actors, (f"fresh joint_v0 actors, hidden {hidden}, dropout {actor_cfg.dropout} "
                         "(latency does not depend on the weight values)")


def observations(env: Any, n: int, seed: int = SEED) -> list[dict[str, Any]]:
    """``n`` observations of an episode under seeded uniform random actions."""
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    out = [obs]
    while len(out) < n:
        actions = {}
        for agent in env.agents:
            space = env.action_space(agent)
            nvec = getattr(space, "nvec", None)
            actions[agent] = rng.integers(0, nvec) if nvec is not None \
                else int(rng.integers(space.n))
        obs, *_ = env.step(actions)
        if not env.agents:
            obs, _ = env.reset()
        out.append(obs)
    return out


def _gates_after(stats: Mapping[str, np.ndarray], latched: Mapping[str, np.ndarray]) -> Any:
    """The two gates over the layer's fresh statistics and the other layer's latched ones."""
    from algospace.inference.gates import GateConfig, apply_gates

    return apply_gates(1, 0, synergy_direction=1.0, stats={**latched, **stats},
                       drawdown_pct=0.0, cfg=GateConfig())


def decision_step(policy: Any, agents: tuple[str, ...], latched: Mapping[str, np.ndarray]
                  ) -> Callable[[Mapping[str, Any], int], Any]:
    """One layer's decision at a bar, as the engine takes it (see the module docstring)."""
    if not policy.mc_passes:
        return lambda obs, step: policy.act(obs, agents)

    def step_with_mc(obs: Mapping[str, Any], step: int) -> Any:
        _, _, stats = policy.act(obs, agents, seed=(SEED, step))
        return _gates_after(stats, latched)

    return step_with_mc


def torch_step(actors: Mapping[str, Any], agents: tuple[str, ...], mc_passes: int,
               latched: Mapping[str, np.ndarray]) -> Callable[[Mapping[str, Any], int], Any]:
    """The same decision by the actors' own torch code, one agent after the other."""
    from algospace.models.actor import actor_mc_stats

    def step(obs: Mapping[str, Any], i: int) -> Any:
        actions: dict[str, list[int]] = {}
        confidence: dict[str, float] = {}
        stats: dict[str, np.ndarray] = {}
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(i)
            for agent in agents:
                actor = actors[agent]
                x = torch.from_numpy(np.asarray(obs[agent]["local"], np.float32))[None]
                heads = torch.split(actor.logits(x)[0], list(actor.input_lens))
                actions[agent] = [int(torch.argmax(h)) for h in heads]
                confidence[agent] = float(np.mean([
                    float(torch.softmax(h, dim=-1)[b])
                    for h, b in zip(heads, actions[agent], strict=True)]))
                if mc_passes:
                    stats[agent] = actor_mc_stats(actor, x, mc_passes)[0].numpy()
        if mc_passes:
            return _gates_after(stats, latched)
        return actions, confidence

    return step


def time_interleaved(steps: Mapping[str, Callable[[Mapping[str, Any], int], Any]],
                     pool: list[dict[str, Any]], warmup: int, repeats: int
                     ) -> dict[str, np.ndarray]:
    """Nanoseconds per call of each step, the steps alternating call by call (same load)."""
    names = list(steps)
    out = {name: np.empty(repeats, np.int64) for name in names}
    clock = time.perf_counter_ns
    for i in range(warmup + repeats):
        obs = pool[i % len(pool)]
        order = names if i % 2 else names[::-1]
        for name in order:
            began = clock()
            steps[name](obs, i)
            spent = clock() - began
            if i >= warmup:
                out[name][i - warmup] = spent
    return out


def _percentiles(ns: np.ndarray, scale: float) -> tuple[float, float, float]:
    """p50, p99 and mean of nanosecond samples divided by ``scale``."""
    p50, p99 = np.percentile(ns, [50, 99])
    return float(p50) / scale, float(p99) / scale, float(ns.mean()) / scale


def bench_decisions(env: Any, teams: Mapping[str, Mapping[str, Any]], warmup: int,
                    repeats: int) -> Figures:
    """Decision-step latency per layer, MC variant and implementation, with ratios."""
    from algospace.inference.policy import TeamPolicy

    widths = {a: int(env.observation_space(a)["local"].shape[0]) for a in env.possible_agents}
    pool = observations(env, OBSERVATIONS)
    latched = TeamPolicy(teams["eager"], widths, mc_passes=max(MC_VARIANTS)).act(
        pool[0], env.possible_agents)[2]
    figures: Figures = {}
    for layer, agents in _layers().items():
        if not set(agents) <= set(env.possible_agents):
            continue
        for mc in MC_VARIANTS:
            steps = {
                "engine": decision_step(TeamPolicy(teams["exported"], widths, mc_passes=mc),
                                        agents, latched),
                "eager": torch_step(teams["eager"], agents, mc, latched),
                "exported": torch_step(teams["exported"], agents, mc, latched)}
            times = time_interleaved(steps, pool, warmup, repeats)
            key = f"{layer}_mc{mc}"
            for impl in IMPLS:
                p50, p99, mean = _percentiles(times[impl], 1e3)
                figures.update({f"{key}_{impl}_p50_us": p50, f"{key}_{impl}_p99_us": p99,
                                f"{key}_{impl}_mean_us": mean,
                                f"{key}_{impl}_p99_pass": p99 < TARGET_P99_US[layer]})
            for q in ("p50", "p99"):
                for impl in ("exported", "engine"):
                    figures[f"{key}_{impl}_vs_eager_{q}_ratio"] = (
                        figures[f"{key}_{impl}_{q}_us"] / figures[f"{key}_eager_{q}_us"])
        figures[f"{layer}_target_p99_us"] = TARGET_P99_US[layer]
    return figures


def history_label(days: int) -> str:
    """The key suffix of a history length: ``30d``, ``1y`` (252 days), ``5y`` (1260 days)."""
    years = {252: "1y", 1260: "5y"}
    return years.get(days, f"{days}d")


def bench_stream(data: Any, atr_bars: int, bars: int, warmup: int = STREAM_WARMUP) -> Figures:
    """``MarketStream.add`` + ``update`` per 5-minute bar after the rest of ``data``'s bars.

    The stream loads all but the last ``warmup + bars`` bars in bulk and updates once (every
    row computed), then takes ``warmup`` bars untimed and times the last ``bars``.
    """
    from algospace.features.pipeline import prepare
    from algospace.inference.stream import MarketStream

    prepared = prepare(data, log=lambda _: None)
    frame = prepared.base.frame
    stream = MarketStream(prepared.meta, atr_bars=atr_bars, regime=regime_encoder(prepared))
    stream.extend(frame.iloc[:-(bars + warmup)])
    stream.update()  # the first update computes every row; later ones only the new rows
    values = frame[["open", "high", "low", "close", "volume"]].to_numpy(np.float64)
    spent = np.empty(bars + warmup, np.int64)
    closes = np.zeros(bars + warmup, bool)
    first = len(frame) - bars - warmup
    for i, when in enumerate(frame.index[first:]):
        began = time.perf_counter_ns()
        closes[i] = stream.add(when, *values[first + i])
        stream.update()
        spent[i] = time.perf_counter_ns() - began
    spent, closes = spent[warmup:], closes[warmup:]
    figures: Figures = {"stream_history_bars": first + warmup, "stream_timed_bars": bars,
                        "stream_strategic_closes": int(closes.sum())}
    for name, mask in (("all", np.ones(bars, bool)), ("5m_only", ~closes),
                       ("strategic_close", closes)):
        if mask.any():
            p50, p99, mean = _percentiles(spent[mask], 1e6)
            figures.update({f"stream_bar_{name}_p50_ms": p50, f"stream_bar_{name}_p99_ms": p99,
                            f"stream_bar_{name}_mean_ms": mean})
    return figures


def regime_encoder(prepared: Any) -> Any:
    """A freshly initialised regime detector of the default size (the timed work does not
    depend on its weights' values), its normalisation fitted on ``prepared``'s bars."""
    from algospace.config import RDEConfig
    from algospace.data.splits import Normalizer
    from algospace.inference.stream import RegimeEncoder
    from algospace.regime.features import REGIME_FEATURES, regime_features
    from algospace.regime.train import build_model

    torch.manual_seed(SEED)
    cfg = RDEConfig()
    features = regime_features(prepared.strategic)
    normaliser = Normalizer.fit(features, (0, len(features)))
    return RegimeEncoder(build_model(len(REGIME_FEATURES), cfg).eval(), normaliser, cfg.window)


def bench_histories(history_days: tuple[int, ...], atr_bars: int, bars: int,
                    cache: Path) -> Figures:
    """:func:`bench_stream` after each history length, keyed ``feature_update_p50_ms_30d``,
    ``close_update_p99_ms_5y`` and so on (``_ms_<label>``, see :func:`history_label`)."""
    figures: Figures = {}
    for days in history_days:
        label = history_label(days)
        one = bench_stream(_data(days, cache / label), atr_bars, bars)
        keys = {"feature_update": "all", "update_5m_only": "5m_only",
                "close_update": "strategic_close"}
        for key, name in keys.items():
            for q in ("p50", "p99", "mean"):
                if f"stream_bar_{name}_{q}_ms" in one:
                    figures[f"{key}_{q}_ms_{label}"] = one[f"stream_bar_{name}_{q}_ms"]
        figures[f"history_bars_{label}"] = one["stream_history_bars"]
        figures[f"timed_closes_{label}"] = one["stream_strategic_closes"]
        if days == history_days[0]:
            figures.update(one)
    figures["stream_history_days"] = list(history_days)
    return figures


def run(*, checkpoint: str | None = None, repeats: int | None = None, quick: bool = False,
        days: int = 30, history_days: tuple[int, ...] | None = None) -> Figures:
    """The ``latency`` benchmark (see the module docstring); prints its table.

    ``repeats``: timed steps per variant (default :data:`REPEATS`); ``quick``: a few
    steps and bars only (:data:`QUICK`), to check that the bench runs; ``history_days``:
    the history lengths of the stream's feature update (default :data:`HISTORY_DAYS`).
    """
    from algospace.config import EnvConfig
    from algospace.inference.export import check_export, export_actors, load_exported

    sizes: dict[str, Any] = dict(QUICK) if quick else {
        "repeats": REPEATS, "warmup": WARMUP, "stream_bars": STREAM_BARS,
        "history_days": HISTORY_DAYS}
    if history_days:
        sizes["history_days"] = tuple(history_days)
    if repeats is not None:
        sizes["repeats"] = repeats
    repeats, warmup, stream_bars = sizes["repeats"], sizes["warmup"], sizes["stream_bars"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    load_before = os.getloadavg()[0]
    try:
        with tempfile.TemporaryDirectory(prefix="latency-bench-") as tmp:
            data = _data(days, Path(tmp) / "cache")
            env, actors, source = team(checkpoint, data)
            exported = load_exported(export_actors(actors, Path(tmp) / "exported"))
            gaps = check_export(actors, exported)
            figures: Figures = {
                "latency_actors": source, "latency_torch_threads": torch.get_num_threads(),
                "latency_env": type(env).__name__, "latency_repeats": repeats,
                "latency_warmup": warmup, "latency_observations": OBSERVATIONS,
                "latency_export_max_abs_logit_diff": max(gaps.values()),
                "machine_load_1m_start": load_before}
            figures.update(bench_decisions(env, {"eager": actors, "exported": exported},
                                           warmup, repeats))
            figures.update(bench_histories(sizes["history_days"], EnvConfig().atr_bars,
                                           stream_bars, Path(tmp) / "stream"))
            figures["machine_load_1m_end"] = os.getloadavg()[0]
    finally:
        torch.set_num_threads(threads)
    print_summary(figures)
    return figures


def print_summary(figures: Figures) -> None:
    """The side-by-side table with the targets and PASS/MISS."""
    print(f"\nper-bar decision latency (µs), one CPU thread (torch.set_num_threads(1)), "
          f"{figures['latency_repeats']:,} timed steps each after "
          f"{figures['latency_warmup']:,} warm-up\nactors: {figures['latency_actors']}\n"
          "engine: the decision engine (NumPy kernel on the actors' weights); eager / "
          "exported: per-agent torch on the ActorModules / TorchScript actors")
    head = (f"  {'step':<10}{'MC':>4}  {'gates':<6}" + "".join(
        f"{impl + ' p50':>14}{'p99':>7}" for impl in IMPLS)
        + f"{'exp/eager p99':>15}{'engine/eager p99':>18}  {'target p99':>10}  "
        + "".join(f"{impl:<9}" for impl in IMPLS))
    print(head)
    for layer, target in TARGET_P99_US.items():
        for mc in MC_VARIANTS:
            key = f"{layer}_mc{mc}"
            if f"{key}_eager_p50_us" not in figures:
                continue
            verdict = ["PASS" if figures[f"{key}_{impl}_p99_pass"] else "MISS"
                       for impl in IMPLS]
            cells = "".join(f"{figures[f'{key}_{impl}_p50_us']:>14,.0f}"
                            f"{figures[f'{key}_{impl}_p99_us']:>7,.0f}" for impl in IMPLS)
            print(f"  {layer:<10}{mc:>4}  {'yes' if mc else 'no':<6}{cells}"
                  f"{figures[f'{key}_exported_vs_eager_p99_ratio']:>15.2f}"
                  f"{figures[f'{key}_engine_vs_eager_p99_ratio']:>18.2f}  < {target:>8,.0f}  "
                  + "".join(f"{v:<9}" for v in verdict))
    if "stream_history_days" in figures:
        print_stream(figures)
    print(f"load average (1 min): {figures['machine_load_1m_start']:.2f} at the start, "
          f"{figures['machine_load_1m_end']:.2f} at the end, on {os.cpu_count()} cores")


def print_stream(figures: Figures) -> None:
    """The stream's feature update per history length, side by side (ms, one core)."""
    labels = [history_label(d) for d in figures["stream_history_days"]]
    print(f"\nfeature update of the stream (add + update, ms, regime encoder included; "
          f"{figures['stream_timed_bars']} bars timed after {STREAM_WARMUP} untimed; targets "
          "p99 < 5 per bar, < 20 at a 30-minute close)")
    print(f"  {'history':<9}{'bars':>10}" + "".join(
        f"{k:>12}" for k in ("all p50", "all p99", "close p50", "close p99", "closes")))
    for label in labels:
        cells = [figures.get(f"{k}_ms_{label}", float("nan")) for k in (
            "feature_update_p50", "feature_update_p99", "close_update_p50",
            "close_update_p99")]
        print(f"  {label:<9}{figures[f'history_bars_{label}']:>10,}"
              + "".join(f"{c:>12.2f}" for c in cells)
              + f"{figures[f'timed_closes_{label}']:>12}")
