"""The experiment schema: bad YAMLs are rejected before Ray starts, good ones validate.

Every bad case goes through the real command line (``algospace.cli.run.main``) and must
exit with status 2 and print exactly one ``error: …`` line naming the offending key (and
the file where the key comes from one), without starting Ray, preparing data or writing
anything into the output directory. No test here starts Ray or trains.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
import torch

from algospace.cli import main as algospace_main
from algospace.cli.run import main
from algospace.config import TUNE_CONFIGS, load_experiment, resolve_path
from algospace.errors import ConfigError
from algospace.tune import driver as runner
from algospace.tune.plan import RunOptions, load_phase, pipeline_files

REPO = Path(__file__).resolve().parent.parent
CPUS = os.cpu_count() or 1
GPUS = torch.cuda.device_count()
OK = "phase: strategic\n"
"""A minimal valid phase file (every other key has a default)."""


# ------------------------------------------------------------------ helpers
@pytest.fixture
def no_ray(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail the test if anything past validation runs: Ray, data preparation, Tune."""
    def forbidden(what: str) -> Any:
        def fail(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError(f"{what} was called: the input should have been rejected")
        return fail

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(ray, "init", forbidden("ray.init"))
    monkeypatch.setattr(runner, "start_ray", forbidden("start_ray"))
    monkeypatch.setattr(runner, "prepare_data", forbidden("prepare_data"))
    monkeypatch.setattr(runner, "run_phase", forbidden("run_phase"))
    was_initialized = ray.is_initialized()
    yield
    assert ray.is_initialized() == was_initialized


def dirs(tmp_path: Path) -> list[str]:
    """``--set`` items pointing the results and the data store into ``tmp_path``."""
    return ["--set", f"output.dir={tmp_path / 'out'}",
            "--set", f"data.cache_dir={tmp_path / 'cache'}"]


def reject(argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str],
           run: Any = main) -> str:
    """Run the command, check it was rejected cleanly, return the message."""
    assert run(argv) == 2
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: "), lines[0]
    assert captured.out == ""
    for written in ("out", "cache"):
        where = tmp_path / written
        assert not where.exists() or not any(where.iterdir()), f"{where} was written"
    return lines[0].removeprefix("error: ")


def write(tmp_path: Path, text: str, name: str = "bad.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------ the bad corpus
KEYS = "phase, name, seed, data"
SPACE = "a mapping with one key of grid_search, choice, uniform, loguniform, randint"

# (id, YAML text, fragments the message must contain). "{file}" is the YAML's path.
BAD_FILES: list[tuple[str, str, list[str]]] = [
    # unknown keys
    ("unknown-top-level-key", OK + "trainig:\n  lr: 0.001\n",
     ["{file}: trainig: unknown key", "Did you mean 'training'?", KEYS]),
    ("unknown-nested-key", OK + "training:\n  lrr: 0.001\n",
     ["{file}: training.lrr: unknown key", "Did you mean 'lr'?"]),
    ("unknown-deep-key", OK + "tune:\n  scheduler:\n    typ: asha\n",
     ["{file}: tune.scheduler.typ: unknown key", "Did you mean 'type'?"]),
    ("unknown-handoff-entry-key", "phase: tactical\nhandoff:\n  load:\n    - phse: strategic\n",
     ["{file}: handoff.load[0].phse: unknown key", "Did you mean 'phase'?"]),
    # wrong types
    ("float-is-a-word", OK + "training:\n  lr: fast\n",
     ["{file}: training.lr: expected float, got 'fast'"]),
    ("int-is-a-float", OK + "stop:\n  iterations: 2.5\n",
     ["{file}: stop.iterations: expected int, got 2.5"]),
    ("split-is-a-number", OK + "data:\n  split: 0.7\n",
     ["{file}: data.split: expected a list, got 0.7"]),
    ("bool-is-a-string", OK + "evaluation:\n  validation: maybe\n",
     ["{file}: evaluation.validation: expected bool, got 'maybe'"]),
    ("section-is-a-scalar", OK + "training: 5\n",
     ["{file}: training: expected a mapping of keys, got int"]),
    ("list-of-ints-has-a-word", OK + "model:\n  actor_hidden: [64, wide]\n",
     ["{file}: model.actor_hidden[1]: expected int, got 'wide'"]),
    # Literals
    ("bad-phase", "phase: strategik\n",
     ["{file}: phase: expected one of", "got 'strategik'", "Did you mean 'strategic'?"]),
    ("bad-algorithm", OK + "training:\n  algorithm: mapo\n",
     ["{file}: training.algorithm: expected one of ['mappo', 'ippo']",
      "Did you mean 'mappo'?"]),
    ("bad-evaluation-split", OK + "evaluation:\n  split: tset\n",
     ["{file}: evaluation.split: expected one of ['val', 'test']", "Did you mean 'test'?"]),
    ("gate-threshold-out-of-range", OK + "evaluation:\n  gate_threshold: 1.5\n",
     ["{file}", "evaluation.gate_threshold must lie in [0, 1], got 1.5"]),
    ("no-mc-passes-for-the-gates", OK + "evaluation:\n  mc_passes: 0\n",
     ["{file}", "evaluation.mc_passes must be >= 1, got 0"]),
    # search spaces
    ("space-kind-typo", OK + "training:\n  lr:\n    logunifrom: [1e-5, 1e-3]\n",
     ["{file}: training.lr: expected a value or a search space", SPACE,
      "Did you mean 'loguniform'?"]),
    ("space-two-kinds", OK + "training:\n  lr: {uniform: [0.1, 0.2], choice: [0.1]}\n",
     ["{file}: training.lr: expected a value or a search space", SPACE]),
    ("loguniform-zero-low", OK + "training:\n  lr:\n    loguniform: [0, 1e-3]\n",
     ["{file}: training.lr.loguniform: bounds must be > 0"]),
    ("loguniform-negative-low", OK + "training:\n  lr:\n    loguniform: [-1e-3, 1e-3]\n",
     ["{file}: training.lr.loguniform: bounds must be > 0"]),
    ("uniform-low-above-high", OK + "training:\n  clip_param:\n    uniform: [0.3, 0.1]\n",
     ["{file}: training.clip_param.uniform: low (0.3) must be below high (0.1)"]),
    ("uniform-low-equals-high", OK + "training:\n  lr:\n    uniform: [1e-4, 1e-4]\n",
     ["{file}: training.lr.uniform: low (0.0001) must be below high (0.0001)"]),
    ("uniform-one-bound", OK + "training:\n  lr:\n    uniform: [1e-4]\n",
     ["{file}: training.lr.uniform: expected [low, high] numbers"]),
    ("randint-floats", OK + "training:\n  num_epochs:\n    randint: [1.5, 4]\n",
     ["{file}: training.num_epochs.randint: bounds must be integers"]),
    ("uniform-on-int-field", OK + "training:\n  num_epochs:\n    uniform: [1, 8]\n",
     ["{file}: training.num_epochs.uniform: uniform draws floats", "randint"]),
    ("loguniform-on-seed", OK + "seed:\n  loguniform: [1, 100]\n",
     ["{file}: seed.loguniform: loguniform draws floats", "randint"]),
    ("grid-search-empty", OK + "training:\n  lr:\n    grid_search: []\n",
     ["{file}: training.lr.grid_search: expected a non-empty list"]),
    ("choice-not-a-list", OK + "training:\n  lr:\n    choice: 0.001\n",
     ["{file}: training.lr.choice: expected a non-empty list"]),
    ("grid-search-bad-value", OK + "training:\n  lr:\n    grid_search: [1e-4, fast]\n",
     ["{file}: training.lr.grid_search[1]: expected float, got 'fast'"]),
    ("choice-bad-literal", OK + "model:\n  sharing:\n    choice: [agent, layr]\n",
     ["{file}: model.sharing.choice[1]: expected one of ['agent', 'layer']",
      "Did you mean 'layer'?"]),
    ("space-on-stop", OK + "stop:\n  iterations:\n    grid_search: [10, 20]\n",
     ["{file}: stop.iterations: search spaces (grid_search) are allowed only under "
      "training, model, env.reward, rde, seed"]),
    ("space-on-env-outside-reward", OK + "env:\n  max_position:\n    choice: [1, 5]\n",
     ["{file}: env.max_position: search spaces (choice) are allowed only under"]),
    ("space-on-resources", OK + "resources:\n  num_env_runners:\n    choice: [0, 1]\n",
     ["{file}: resources.num_env_runners: search spaces (choice) are allowed only under"]),
    ("space-in-reward-checked", OK + "env:\n  reward:\n    drawdown_penalty:\n"
     "      uniform: [0.5, 0.1]\n",
     ["{file}: env.reward.drawdown_penalty.uniform: low (0.5) must be below high (0.1)"]),
    # files that are not experiment mappings
    ("not-valid-yaml", "phase: strategic\ntraining: {lr: 0.001\n",
     ["{file}: line", "not valid YAML"]),
    ("yaml-list", "- phase: strategic\n- stop: {iterations: 3}\n",
     ["{file}: expected a mapping of sections, got list"]),
    ("yaml-scalar", "strategic\n",
     ["{file}: expected a mapping of sections, got str"]),
    # contradictions inside the file
    ("minibatch-above-batch", OK + "training:\n  train_batch_size: 400\n"
     "  minibatch_size: 800\n",
     ["{file}: training.minibatch_size (800) is larger than training.train_batch_size (400)"]),
    ("env-data", OK + "env:\n  data:\n    source: synthetic\n",
     ["{file}: env.data: not set here", "top-level data section"]),
    ("env-split", OK + "env:\n  split: val\n",
     ["{file}: env.split: not set here", "evaluation.split"]),
    ("env-fixed-starts", OK + "env:\n  random_start: false\n",
     ["{file}: env.random_start: false would replay the same episodes"]),
    ("val-score-without-validation", OK + "evaluation:\n  validation: false\n",
     ["{file}: checkpoint.score is 'val_net_pnl' but evaluation.validation is false",
      "episode_return_mean"]),
    ("csv-without-path", OK + "data:\n  source: csv\n",
     ["{file}: data.path: required when data.source is 'csv'"]),
    ("path-with-synthetic", OK + "data:\n  path: bars.csv\n",
     ["{file}: data.path is set but data.source is 'synthetic'"]),
    ("negative-runners", OK + "resources:\n  num_env_runners: -1\n",
     ["{file}: resources.num_env_runners must be >= 0"]),
    ("rde-section-outside-rde", OK + "rde:\n  window: 24\n",
     ["{file}: rde: settings of the regime detector belong in rde.yaml"]),
    ("handoff-in-rde", "phase: rde\nhandoff:\n  trainable: [portfolio]\n",
     ["{file}: handoff: the rde phase trains the regime detector alone"]),
    ("regime-choice-in-rde", "phase: rde\nhandoff:\n  regime: /some/rde\n",
     ["{file}: handoff: the rde phase trains the regime detector alone"]),
    ("regime-choice-without-latents", OK + "handoff:\n  regime: /some/rde\n",
     ["{file}: handoff.regime is '/some/rde' but env.regime_latent is false",
      "set env.regime_latent: true or remove handoff.regime"]),
    ("env-regime-detector", OK + "env:\n  regime_latent: true\n  regime_detector: x\n",
     ["{file}: env.regime_detector: not set here", "handoff.regime"]),
    # hand-off
    ("handoff-phase-and-checkpoint", "phase: tactical\nhandoff:\n  load:\n"
     "    - phase: strategic\n      checkpoint: /some/checkpoint\n",
     ["{file}: handoff.load", "either phase: NAME", "or checkpoint: PATH, not both"]),
    ("handoff-neither", "phase: tactical\nhandoff:\n  load:\n    - modules: [risk]\n",
     ["{file}: handoff.load", "either phase: NAME"]),
    ("handoff-from-rde", "phase: tactical\nhandoff:\n  load:\n    - phase: rde\n",
     ["{file}: handoff.load: the rde phase has no agent weights", "env.regime_latent"]),
    ("handoff-bad-phase-name", "phase: joint\nhandoff:\n  load:\n    - phase: coordinaton\n",
     ["{file}: handoff.load[0].phase: expected one of", "Did you mean 'coordination'?"]),
    ("trainable-not-a-module", OK + "handoff:\n  trainable: [portfolo]\n",
     ["{file}: handoff.trainable: 'portfolo' is not an actor module of the strategic phase",
      "mlmi, nwrqk, portfolio, regime"]),
    ("trainable-from-other-layer", OK + "handoff:\n  trainable: [risk]\n",
     ["{file}: handoff.trainable: 'risk' is not an actor module"]),
    ("frozen-without-weights", "phase: coordination\nhandoff:\n  trainable: [portfolio]\n",
     ["{file}: handoff:", "would be frozen with untrained weights", "mlmi", "risk",
      "handoff.load", "handoff.trainable"]),
    ("handoff-phase-not-run", "phase: tactical\nhandoff:\n  load:\n    - phase: strategic\n",
     ["{file}: handoff.load[0]: no finished run of phase 'strategic' under {out}",
      "run `python -m experiments.run strategic.yaml` first", "checkpoint: PATH"]),
    ("handoff-checkpoint-missing", "phase: tactical\nhandoff:\n  load:\n"
     "    - checkpoint: {tmp}/no-such-checkpoint\n",
     ["{file}: handoff.load[0]: checkpoint", "no-such-checkpoint does not exist"]),
    ("handoff-checkpoint-not-a-checkpoint", "phase: tactical\nhandoff:\n  load:\n"
     "    - checkpoint: {tmp}\n",
     ["{file}: handoff.load[0]:", "is not an algorithm checkpoint"]),
    # resources this machine cannot give
    ("more-runners-than-cpus", OK + f"resources:\n  num_env_runners: {CPUS + 1}\n",
     ["{file}: resources: one trial needs", f"this machine has {CPUS}",
      "lower resources.num_env_runners", "--address"]),
    ("runner-cpus-above-machine", OK + "resources:\n  num_env_runners: 1\n"
     f"  num_cpus_per_env_runner: {CPUS}\n",
     ["{file}: resources: one trial needs", f"this machine has {CPUS}"]),
    ("gpu-learner-without-gpu", OK + f"resources:\n  num_gpus_per_learner: {GPUS + 1}\n",
     ["{file}: resources.num_gpus_per_learner is", f"this machine has {GPUS} CUDA GPU(s)",
      "set it to 0"]),
]


def _fill(text: str, tmp_path: Path, file: Path | None = None) -> str:
    return (text.replace("{tmp}", str(tmp_path)).replace("{out}", str(tmp_path / "out"))
            .replace("{file}", str(file)))


@pytest.mark.parametrize(("text", "fragments"), [c[1:] for c in BAD_FILES],
                         ids=[c[0] for c in BAD_FILES])
def test_bad_file_rejected(text: str, fragments: list[str], tmp_path: Path,
                           capsys: pytest.CaptureFixture[str], no_ray: None) -> None:
    file = write(tmp_path, _fill(text, tmp_path))
    message = reject([str(file), *dirs(tmp_path)], tmp_path, capsys)
    for fragment in fragments:
        assert _fill(fragment, tmp_path, file) in message, message


# (id, YAML text, extra argv, fragments)
BAD_COMMANDS: list[tuple[str, str, list[str], list[str]]] = [
    ("set-without-equals", OK, ["--set", "training.lr"],
     ["--set 'training.lr': expected KEY=VALUE", "--set training.lr=1e-4"]),
    ("set-without-key", OK, ["--set", "=3"], ["--set '=3': expected KEY=VALUE"]),
    ("set-value-not-yaml", OK, ["--set", "data.path=@MES - 5 min.csv"],
     ["--set 'data.path=@MES - 5 min.csv': the value is not valid YAML (found character '@'",
      """Fix: quote it as a YAML string, e.g. --set 'data.path="@MES - 5 min.csv"'"""]),
    ("set-unknown-key", OK, ["--set", "training.lrr=1e-4"],
     ["--set training.lrr=1e-4: training.lrr: unknown key", "Did you mean 'lr'?"]),
    ("set-unknown-section", OK, ["--set", "trainig.lr=1e-4"],
     ["--set trainig.lr=1e-4: trainig: unknown key", "Did you mean 'training'?"]),
    ("set-wrong-type", OK, ["--set", "stop.iterations=many"],
     ["--set stop.iterations=many: stop.iterations: expected int, got 'many'"]),
    ("set-below-a-value", "phase: strategic\nstop:\n  iterations: 5\n",
     ["--set", "stop.iterations.max=3"],
     ["--set stop.iterations.max=3: stop.iterations: is 5, not a section, so "
      "stop.iterations.max cannot be set"]),
    ("set-regime-detector", OK, ["--set", "env.regime_detector=0123456789ab"],
     ["{file}: env.regime_detector: not set here", "handoff.regime"]),
    ("set-bad-space", OK, ["--set", "training.lr={loguniform: [0, 1]}"],
     ["--set training.lr={loguniform: [0, 1]}: training.lr.loguniform: bounds must be > 0"]),
    ("set-makes-contradiction", OK, ["--set", "training.minibatch_size=8000"],
     ["--set training.minibatch_size=8000: training.minibatch_size (8000) is larger than"]),
    ("set-file-error-stays-the-file's", OK + "training:\n  lr: fast\n",
     ["--set", "training.gamma=0.9"], ["{file}: training.lr: expected float, got 'fast'"]),
    ("quick-with-bad-synthetic", OK + "data:\n  synthetic: 5\n", ["--quick"],
     ["{file}: data.synthetic: expected a mapping of keys, got int"]),
]


@pytest.mark.parametrize(("text", "extra", "fragments"), [c[1:] for c in BAD_COMMANDS],
                         ids=[c[0] for c in BAD_COMMANDS])
def test_bad_command_line_rejected(text: str, extra: list[str], fragments: list[str],
                                   tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   no_ray: None) -> None:
    file = write(tmp_path, text, "ok.yaml")
    message = reject([str(file), *dirs(tmp_path), *extra], tmp_path, capsys)
    for fragment in fragments:
        assert _fill(fragment, tmp_path, file) in message, message
    if fragments[0].startswith("--set"):  # the file is not blamed for the --set
        assert str(file) not in message, message


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str], no_ray: None,
                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    missing = tmp_path / "nowhere" / "strategic.yaml"
    message = reject([str(missing), *dirs(tmp_path)], tmp_path, capsys)
    assert message.startswith(f"{missing}: config file not found"), message
    assert "Known files:" in message and "strategic.yaml" in message
    message = reject(["strategc", *dirs(tmp_path)], tmp_path, capsys)
    assert message.startswith("strategc: config file not found"), message
    assert str(TUNE_CONFIGS) in message and "Did you mean 'strategic.yaml'?" in message


def test_bad_pipelines(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                       no_ray: None) -> None:
    """A pipeline checks every phase's schema and resources before the first one runs."""
    write(tmp_path, OK, "good.yaml")
    write(tmp_path, "phase: tactical\ntraining:\n  lr: fast\n", "typo.yaml")
    write(tmp_path, f"phase: tactical\nresources:\n  num_env_runners: {CPUS + 1}\n",
          "big.yaml")
    cases = [
        ("pipeline: [good.yaml, typo.yaml]\n", [],
         [f"{tmp_path / 'typo.yaml'}: training.lr: expected float, got 'fast'"]),
        ("pipeline: [good.yaml, big.yaml]\n", [],
         [f"{tmp_path / 'big.yaml'}: resources: one trial needs", f"this machine has {CPUS}"]),
        ("pipeline: [good.yaml, missing.yaml]\n", [], ["missing.yaml: config file not found"]),
        ("pipeline: []\n", [], ["{file}: pipeline: expected a list of phase files"]),
        ("pipeline: good.yaml\n", [], ["{file}: pipeline: expected a list of phase files"]),
        ("pipeline: [good.yaml]\nstop: {iterations: 3}\n", [],
         ["{file}: a pipeline file has only the key 'pipeline'; unknown: stop"]),
        ("pipeline: [good.yaml]\n", ["--name", "x"],
         ["--name applies to one phase, not a pipeline"]),
    ]
    for text, extra, fragments in cases:
        file = write(tmp_path, text, "pipe.yaml")
        message = reject([str(file), *dirs(tmp_path), *extra], tmp_path, capsys)
        for fragment in fragments:
            assert _fill(fragment, tmp_path, file) in message, message


def test_algospace_run_rejects_the_same_way(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str],
                                            no_ray: None) -> None:
    file = write(tmp_path, OK + "trainig:\n  lr: 0.001\n")
    message = reject(["run", str(file), *dirs(tmp_path)], tmp_path, capsys,
                     run=algospace_main)
    assert f"{file}: trainig: unknown key. Did you mean 'training'?" in message


def test_real_command_exits_2(tmp_path: Path) -> None:
    """``python -m experiments.run bad.yaml``: status 2, one error line, no traceback."""
    file = write(tmp_path, OK + "stop:\n  iterations:\n    grid_search: [1, 2]\n")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.run", str(file), *dirs(tmp_path)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert f"{file}: stop.iterations: search spaces (grid_search)" in lines[0]
    assert proc.stdout == ""
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


# ------------------------------------------------------------------ good files
def _opts(tmp_path: Path, file: str, *sets: str, quick: bool = False) -> RunOptions:
    return RunOptions(file=file, quick=quick,
                      sets=(f"output.dir={tmp_path / 'out'}",
                            f"data.cache_dir={tmp_path / 'cache'}", *sets))


SHIPPED = sorted(p.relative_to(TUNE_CONFIGS).as_posix() for p in TUNE_CONFIGS.rglob("*.yaml"))


def test_shipped_configs_are_found() -> None:
    for name in ("rde.yaml", "strategic.yaml", "tactical.yaml", "coordination.yaml",
                 "joint.yaml", "pipeline.yaml"):
        assert name in SHIPPED


@pytest.mark.parametrize("quick", [False, True], ids=["full", "quick"])
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_config_validates(name: str, quick: bool, tmp_path: Path) -> None:
    phases = pipeline_files(name)
    for file in phases or [name]:
        experiment = load_phase(file, _opts(tmp_path, file, quick=quick))
        cfg = experiment.config
        assert Path(experiment.source).is_file()
        assert cfg.output.dir == str(tmp_path / "out")
        assert cfg.data.cache_dir == str(tmp_path / "cache")
        assert cfg.env.data == cfg.data
        if cfg.phase != "rde":
            assert cfg.env_name in ("strategic_v0", "tactical_v0", "joint_v0")
        if quick:
            assert cfg.stop.iterations == 2 and cfg.data.synthetic.days <= (
                40 if cfg.evaluation.walk_forward else 20)  # walk-forward: 3 folds need room
        if name.startswith("sweeps/"):
            assert experiment.spaces, f"{name} searches nothing"
        last: dict[str, Any] = {}  # one trial: every space at its last value (or upper bound)
        for key, space in experiment.spaces.items():
            last[key] = next(iter(space.values()))[-1]
        trial = experiment.resolved(last)
        assert trial.training.lr == last.get("training.lr", cfg.training.lr)
        assert trial.seed == last.get("seed", cfg.seed)


def test_pipeline_lists_every_phase_in_order(tmp_path: Path) -> None:
    files = pipeline_files("pipeline.yaml")
    assert files is not None
    phases = [load_phase(f, _opts(tmp_path, f)).config.phase for f in files]
    assert phases == ["rde", "strategic", "tactical", "coordination", "joint"]
    assert pipeline_files("strategic.yaml") is None


def test_search_spaces_recorded_and_resolved(tmp_path: Path) -> None:
    file = write(tmp_path, """
phase: strategic
seed: {randint: [0, 1000]}
training:
  lr: {loguniform: [1e-5, 1e-3]}
  clip_param: {uniform: [0.1, 0.3]}
  num_epochs: {choice: [3, 5, 8]}
  entropy_coeff: {grid_search: [0.0, 0.01]}
  value_clip: {choice: [null, 0.2]}
model:
  actor_hidden: {choice: [[64], [128, 128]]}
  sharing: {grid_search: [agent, layer]}
env:
  reward:
    drawdown_penalty: {uniform: [0.0, 0.5]}
    shaping:
      mlmi: {choice: [0.0, 0.1]}
""", "sweep.yaml")
    experiment = load_experiment(file)
    assert experiment.spaces == {
        "seed": {"randint": [0, 1000]},
        "training.lr": {"loguniform": [1e-5, 1e-3]},
        "training.clip_param": {"uniform": [0.1, 0.3]},
        "training.num_epochs": {"choice": [3, 5, 8]},
        "training.entropy_coeff": {"grid_search": [0.0, 0.01]},
        "training.value_clip": {"choice": [None, 0.2]},
        "model.actor_hidden": {"choice": [[64], [128, 128]]},
        "model.sharing": {"grid_search": ["agent", "layer"]},
        "env.reward.drawdown_penalty": {"uniform": [0.0, 0.5]},
        "env.reward.shaping.mlmi": {"choice": [0.0, 0.1]},
    }
    assert experiment.raw["training"]["lr"] == {"loguniform": [1e-5, 1e-3]}
    # the config checked up front holds one value of each space
    cfg = experiment.config
    assert cfg.seed == 0 and cfg.training.lr == 1e-5 and cfg.training.num_epochs == 3
    assert cfg.model.sharing == "agent" and cfg.model.actor_hidden == (64,)
    # one trial's sampled values
    values: dict[str, Any] = {
        "seed": 417, "training.lr": 3.2e-4, "training.clip_param": 0.17,
        "training.num_epochs": 8, "training.entropy_coeff": 0.01,
        "training.value_clip": None, "model.actor_hidden": [128, 128],
        "model.sharing": "layer", "env.reward.drawdown_penalty": 0.25,
        "env.reward.shaping.mlmi": 0.1}
    trial = experiment.resolved(values)
    assert trial.seed == 417
    assert trial.training.lr == 3.2e-4 and trial.training.clip_param == 0.17
    assert trial.training.num_epochs == 8 and trial.training.entropy_coeff == 0.01
    assert trial.training.value_clip is None
    assert trial.model.actor_hidden == (128, 128) and trial.model.sharing == "layer"
    assert trial.env.reward.drawdown_penalty == 0.25
    assert trial.env.reward.shaping == {"mlmi": 0.1}
    assert trial.env.data == trial.data
    # a trial value is still type-checked
    with pytest.raises(ConfigError, match=r"training\.num_epochs: expected int, got 2\.5"):
        experiment.resolved({**values, "training.num_epochs": 2.5})


def test_rde_search_space(tmp_path: Path) -> None:
    file = write(tmp_path, "phase: rde\nrde:\n  lr: {loguniform: [1e-4, 1e-2]}\n"
                 "  latent_dim: {grid_search: [4, 8]}\n", "rde.yaml")
    experiment = load_experiment(file)
    assert set(experiment.spaces) == {"rde.lr", "rde.latent_dim"}
    trial = experiment.resolved({"rde.lr": 2e-3, "rde.latent_dim": 8})
    assert trial.rde.lr == 2e-3 and trial.rde.latent_dim == 8


def test_overrides_applied(tmp_path: Path) -> None:
    opts = _opts(tmp_path, "strategic.yaml", "training.lr=1e-4", "stop.iterations=7",
                 "training.entropy_coeff={grid_search: [0.0, 0.01]}")
    experiment = load_phase("strategic.yaml", opts)
    assert experiment.config.training.lr == 1e-4
    assert isinstance(experiment.config.training.lr, float)
    assert experiment.config.stop.iterations == 7
    assert experiment.spaces == {"training.entropy_coeff": {"grid_search": [0.0, 0.01]}}
    assert experiment.raw["training"]["lr"] == 1e-4
    named = load_phase("strategic.yaml", RunOptions(file="strategic.yaml", name="mine",
                                                    wandb=True, sets=opts.sets))
    assert named.name == "mine" and named.config.logging.wandb.enabled
    assert load_phase("strategic.yaml", opts).name == "strategic"


def test_exponent_without_dot_is_a_float(tmp_path: Path) -> None:
    """YAML 1.1 reads 1e-4 as a string; the schema reads it as the number it looks like."""
    file = write(tmp_path, OK + "training:\n  lr: 1e-4\n  entropy_coeff: {loguniform: "
                 "[1e-5, 1E-2]}\n", "exp.yaml")
    experiment = load_experiment(file)
    assert experiment.config.training.lr == 1e-4
    assert experiment.spaces["training.entropy_coeff"] == {"loguniform": [1e-5, 1e-2]}


def test_relative_paths_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    experiment = load_phase("strategic.yaml", RunOptions(
        file="strategic.yaml", sets=("output.dir=results", "data.cache_dir=store")))
    assert experiment.config.output.dir == str(tmp_path / "results")
    assert experiment.config.data.cache_dir == str(tmp_path / "store")
    assert not (tmp_path / "results").exists() and not (tmp_path / "store").exists()


def test_bare_name_resolves_in_tune_configs(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("strategic", "strategic.yaml"):
        assert resolve_path(name) == TUNE_CONFIGS / "strategic.yaml"
    for name in SHIPPED:
        assert resolve_path(name) == TUNE_CONFIGS / name
    experiment = load_phase("tactical", _opts(tmp_path, "tactical"))
    assert experiment.source == str(TUNE_CONFIGS / "tactical.yaml")
    assert experiment.name == "tactical" and experiment.config.phase == "tactical"
    # a file in the working directory comes first
    local = write(tmp_path, "phase: tactical\n", "strategic.yaml")
    assert resolve_path("strategic.yaml").resolve() == local
    # an absolute path is never looked up in tune_configs/
    with pytest.raises(ConfigError, match="config file not found"):
        resolve_path(str(tmp_path / "rde.yaml"))


def test_resources_fit_this_machine_or_a_cluster() -> None:
    """The CPU check counts the learner plus its runners; attaching to a cluster skips it."""
    cfg = load_experiment(TUNE_CONFIGS / "strategic.yaml",
                          {"resources.num_env_runners": CPUS + 1}).config
    assert cfg.resources.cpus_per_trial() == CPUS + 2
    with pytest.raises(ConfigError, match=f"machine has {CPUS}"):
        runner.check_resources(cfg, attached=False)
    runner.check_resources(cfg, attached=True)
    gpu = load_experiment(TUNE_CONFIGS / "strategic.yaml",
                          {"resources.num_gpus_per_learner": 0.5}).config
    if GPUS == 0:
        with pytest.raises(ConfigError, match="num_gpus_per_learner"):
            runner.check_resources(gpu, attached=False)
    runner.check_resources(gpu, attached=True)
    assert math.ceil(gpu.resources.num_gpus_per_learner) == 1
