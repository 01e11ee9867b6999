"""Two regime detectors on one data section, and a phase that reads the one it names.

Runs rde.yaml --quick twice (two seeds) and strategic.yaml --quick (one iteration) with
``handoff.regime`` naming the older run; checks by value that the env arrays the run built
hold that detector's latents, not the newer one's, that summary.json and the checkpoint
name it, and that the decision engine of the checkpoint loads that detector.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from algospace.features.latents import latent_table
from algospace.features.store import FeatureStore
from algospace.inference.engine import DecisionEngine
from algospace.tune.driver import RunOptions, run

pytestmark = [pytest.mark.slow, pytest.mark.train]


def _opts(tmp: Path, file: str, *sets: str) -> RunOptions:
    return RunOptions(file=file, quick=True,
                      sets=(f"output.dir={tmp / 'results'}", f"data.cache_dir={tmp / 'cache'}",
                            "logging.dashboard.enabled=false", *sets))


def test_a_phase_reads_the_regime_detector_it_names(ray_session: Any, tmp_path: Path) -> None:
    quiet = lambda _: None  # noqa: E731
    [older] = run(_opts(tmp_path, "rde.yaml", "rde.seed=1"), log=quiet)
    [newer] = run(_opts(tmp_path, "rde.yaml", "rde.seed=2"), log=quiet)
    chosen, other = older["rde"]["detector"], newer["rde"]["detector"]
    assert chosen != other and older["rde"]["store"] == newer["rde"]["store"]
    lines: list[str] = []
    [summary] = run(_opts(tmp_path, "strategic.yaml", f"handoff.regime={older['experiment_dir']}",
                          "stop.iterations=1", "evaluation.validation=false",
                          "evaluation.final=false", "checkpoint.score=episode_return_mean"),
                    log=lines.append)
    assert summary["status"] == "finished"
    assert summary["regime"] == {"id": chosen, "checkpoint": older["best_checkpoint"],
                                 "rde_run": older["experiment_dir"]}
    assert f"[run] regime latents: detector {chosen} ({older['best_checkpoint']}, rde run " \
           f"{older['experiment_dir']})" in lines
    info = json.loads((Path(summary["best_checkpoint"]) / "algospace_run.json").read_text())
    assert info["train_config"]["env_config"]["regime_detector"] == chosen

    entry = Path(older["rde"]["store"])
    store = FeatureStore(entry.parent)
    mine = store.read(entry.name, latent_table(chosen)).to_numpy(np.float32)
    theirs = store.read(entry.name, latent_table(other)).to_numpy(np.float32)
    finite = np.isfinite(mine).all(axis=1)
    assert finite.sum() > 100 and not np.allclose(mine[finite], theirs[finite])
    built = sorted(entry.glob("env-arrays-*/latent.npy"))  # what the env runners read
    assert built
    for file in built:
        np.testing.assert_array_equal(np.load(file), mine)

    # `algospace decide` of the checkpoint runs the detector its run read (the data holds
    # two, so nothing but the id the checkpoint carries can pick it)
    engine = DecisionEngine.from_checkpoint(summary["best_checkpoint"])
    want = torch.load(Path(older["best_checkpoint"]) / "rde.pt", weights_only=True)
    got = engine.stream.regime.model.state_dict()  # type: ignore[union-attr]
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
