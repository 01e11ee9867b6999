"""Evaluating a checkpoint on a CSV of one's own: its contract and its regime latents.

:func:`csv_env_config` turns ``evaluate --data FILE`` into the env settings of that file:

* the contract: ``--symbol``, else the one the file name names (``ES_5min.csv``), else the
  checkpoint's own (the contract its agents traded; the output says so);
* the regime latents, where the agents read them (``env.regime_latent``): the file's
  30-minute bars encoded with the checkpoint's own detector (``env.regime_detector``),
  whose checkpoint is found in the run's records (``summary.json`` or
  ``algospace_experiment.json`` next to the checkpoint, then the record of the prepared
  data the agents trained on). A new detector is never trained: without that checkpoint
  the evaluation stops with one error naming the detector and where it looked.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from algospace.config import SYNTHETIC_SYMBOL, DataConfig, EnvConfig
from algospace.data.contracts import symbol_from_filename
from algospace.errors import AlgoSpaceError, CheckpointError, ConfigError

Log = Callable[[str], None]
RUN_RECORDS = ("summary.json", "algospace_experiment.json")
"""Files of a tuning run (:mod:`algospace.tune.plan`) recording its detector (``regime``)."""


def csv_env_config(checkpoint: str | Path, trained: EnvConfig, csv: str,
                   symbol: str | None = None, log: Log = print) -> EnvConfig:
    """The env settings ``trained`` (a checkpoint's) on the bar CSV ``csv`` instead: its
    contract (``symbol``, the file name's, or the checkpoint's) and, where the agents read
    regime latents, the file encoded with the checkpoint's own detector."""
    path = Path(csv).expanduser()
    if not path.is_file():
        raise ConfigError(f"--data {csv}: no such file; pass a CSV of bars "
                          "(Timestamp,Open,High,Low,Close,Volume)")
    run_data = _TrainedData(trained)
    if symbol is None and symbol_from_filename(path.name) is None:
        symbol = _checkpoint_contract(trained, run_data, path.name)
        log(f"[evaluate] contract: {symbol} (from the checkpoint; --symbol to change)")
    d = trained.data
    data = DataConfig(source="csv", path=str(path.resolve()), symbol=symbol,
                      contract=dict(d.contract), timestamps=d.timestamps, dayfirst=d.dayfirst,
                      strategic_minutes=d.strategic_minutes, split=d.split,
                      cache_dir=d.cache_dir)
    env = replace(trained, data=data)
    if not trained.regime_latent:
        return env
    detector = trained.regime_detector or _only_detector(run_data)
    _encode(checkpoint, detector, data, run_data, log)
    return replace(env, regime_detector=detector)


class _TrainedData:
    """The prepared data the agents trained on, read once when first needed."""

    def __init__(self, env: EnvConfig) -> None:
        self.env = env
        self._prepared: Any = None
        self.problem: str | None = None

    def get(self) -> Any:
        """The :class:`~algospace.features.pipeline.Prepared` entry, or None (``problem``
        says why) when it cannot be read."""
        if self._prepared is None and self.problem is None:
            from algospace.features.pipeline import prepare

            try:
                self._prepared = prepare(self.env.data)
            except AlgoSpaceError as err:
                self.problem = str(err)
        return self._prepared


def _checkpoint_contract(trained: EnvConfig, run_data: _TrainedData, name: str) -> str:
    """The contract the checkpoint's agents traded (for a file whose name names none)."""
    from algospace.market.sizing import contract_of

    prepared = run_data.get()
    if prepared is not None:
        return contract_of(prepared.meta, trained)[0].symbol
    known = trained.data.symbol or (SYNTHETIC_SYMBOL if trained.data.source == "synthetic"
                                    else None)
    if known is None:
        raise ConfigError(f"--data: cannot tell the contract from the file name {name!r}, nor "
                          f"from the checkpoint (its data cannot be read: {run_data.problem}); "
                          "pass --symbol (e.g. ES, NQ, CL)")
    return known


def _only_detector(run_data: _TrainedData) -> str:
    """The detector of a checkpoint that does not name one: the only one its data holds."""
    from algospace.features.latents import pick_detector

    prepared = run_data.get()
    if prepared is None:
        raise CheckpointError(f"the checkpoint does not name the regime detector its agents "
                              f"read, and the data they trained on cannot be read "
                              f"({run_data.problem}); evaluate it on that data again")
    return pick_detector(prepared.meta, prepared.path, None)[0]


def _encode(checkpoint: str | Path, detector: str, data: DataConfig, run_data: _TrainedData,
            log: Log) -> None:
    """Make the prepared data of ``data`` hold ``detector``'s latents, and say so."""
    from algospace.features.latents import stored_detectors
    from algospace.features.pipeline import prepare
    from algospace.regime.store import encode_missing

    prepared = prepare(data, log=lambda m: log(f"[evaluate] {m}"))
    held = stored_detectors(prepared.meta, prepared.path).get(detector)
    source = str(held.get("checkpoint")) if held else detector_checkpoint(
        checkpoint, detector, run_data)
    encode_missing(prepared, detector, source, log=lambda m: log(f"[evaluate] {m}"))
    earlier = " (earlier; read from the prepared data)" if held else ""
    log(f"[evaluate] regime latents of {Path(str(data.path)).name}: encoded with the "
        f"checkpoint's detector {detector} ({source}){earlier}")


def detector_checkpoint(checkpoint: str | Path, detector: str, run_data: _TrainedData) -> str:
    """The checkpoint folder of ``detector``, from the run's records; a
    :class:`CheckpointError` naming the id and every place looked in when none is there."""
    looked: list[str] = []
    named = False
    for folder in list(Path(checkpoint).expanduser().resolve().parents)[:2]:
        for name in RUN_RECORDS:
            file = folder / name
            if not file.is_file():
                continue
            try:
                regime = json.loads(file.read_text(encoding="utf-8")).get("regime") or {}
            except (OSError, ValueError, AttributeError):
                continue
            if regime.get("id") == detector and regime.get("checkpoint"):
                named = True
                looked.append(f"{regime['checkpoint']} (recorded in {file})")
                if _is_detector(regime["checkpoint"]):
                    return str(regime["checkpoint"])
    prepared = run_data.get()
    if prepared is None:
        looked.append(f"the prepared data the agents trained on (cannot be read: "
                      f"{run_data.problem})")
    else:
        from algospace.features.latents import stored_detectors

        recorded = stored_detectors(prepared.meta).get(detector, {}).get("checkpoint")
        looked.append(f"{recorded} (recorded in {prepared.path / 'meta.json'})" if recorded
                      else f"{prepared.path / 'meta.json'} (no record of it)")
        if recorded and _is_detector(recorded):
            return str(recorded)
    if not named:
        looked.insert(0, f"{' and '.join(RUN_RECORDS)} next to the checkpoint (none names it)")
    raise CheckpointError(
        f"the agents read the latents of regime detector {detector}; --data must be encoded "
        f"with it, but its checkpoint is not there; looked in: {'; '.join(looked)}; put that "
        "detector's checkpoint folder (rde.pt, rde.json) back where it was recorded, or "
        "evaluate on the run's own data (without --data)")


def _is_detector(path: str) -> bool:
    """Whether ``path`` is a regime-detector checkpoint folder."""
    return (Path(path) / "rde.pt").is_file() and (Path(path) / "rde.json").is_file()
