"""Tune storage: paths and URIs, checkpoints on a filesystem other than the local one, and
a run whose trials go to ``output.storage`` given as a URI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.fs
import pytest

from algospace.tune import storage


def test_paths_and_uris(tmp_path: Path) -> None:
    assert storage.join("s3://bucket/runs/", "strategic", "2026") == "s3://bucket/runs/strategic/2026"
    assert storage.join(str(tmp_path), "a", "b") == str(tmp_path / "a" / "b")
    (tmp_path / "a").mkdir()
    assert storage.exists(str(tmp_path / "a")) and storage.exists(f"file://{tmp_path}/a")
    assert not storage.exists(f"file://{tmp_path}/b")
    assert storage.shared("s3://bucket/runs") and storage.shared("gs://bucket")
    assert not storage.shared(f"file://{tmp_path}")
    assert storage.filesystem_type("/proc/self") == "proc"
    assert "nfs" in storage.NETWORK_FILESYSTEMS


def test_checkpoint_on_another_filesystem(tmp_path: Path) -> None:
    """A checkpoint on a non-local pyarrow filesystem (as on S3) is copied next to the
    summary, and pruned through its filesystem."""
    from ray.train import Checkpoint

    bucket = tmp_path / "bucket"
    (bucket / "run" / "checkpoint_000001" / "sub").mkdir(parents=True)
    (bucket / "run" / "checkpoint_000001" / "sub" / "state.json").write_text("{}")
    fs = pyarrow.fs.SubTreeFileSystem(str(bucket), pyarrow.fs.LocalFileSystem())
    remote = Checkpoint("run/checkpoint_000001", filesystem=fs)
    assert not storage.is_local(remote)
    copy = storage.local_checkpoint(remote, tmp_path / "exp" / "best_checkpoint")
    assert (Path(copy) / "sub" / "state.json").read_text() == "{}"
    assert storage.delete(remote) and not (bucket / "run" / "checkpoint_000001").exists()
    assert not storage.delete(remote)
    local = Checkpoint(str(tmp_path / "exp" / "best_checkpoint"))
    assert storage.local_checkpoint(local, tmp_path / "elsewhere") == local.path


@pytest.mark.slow
def test_run_with_storage_uri(ray_session: Any, tmp_path: Path) -> None:
    """``output.storage`` as a URI: trials and checkpoints there, the summary in
    ``output.dir``, the experiment record naming where Tune keeps the run."""
    from algospace.tune.driver import RunOptions, run
    from algospace.tune.plan import EXPERIMENT_FILE

    store = tmp_path / "store"
    opts = RunOptions(file="strategic.yaml", quick=True, sets=(
        f"output.dir={tmp_path / 'results'}", f"output.storage=file://{store}",
        f"data.cache_dir={tmp_path / 'cache'}", "env.regime_latent=false",
        "stop.iterations=1", "evaluation.final=false"))
    lines: list[str] = []
    [summary] = run(opts, log=lines.append)
    exp = Path(summary["experiment_dir"])
    assert exp.parent.parent == tmp_path / "results"
    tune_dir = json.loads((exp / EXPERIMENT_FILE).read_text())["tune_dir"]
    assert tune_dir == f"file://{store}/strategic-quick/{exp.name}"
    assert Path(summary["best_checkpoint"]).is_relative_to(store / "strategic-quick" / exp.name)
    assert (store / "strategic-quick" / exp.name / "tuner.pkl").is_file()
    assert not list(exp.glob("trial_*")) and (exp / "summary.json").is_file()
    assert f"[run] trials and checkpoints in {tune_dir}" in lines
