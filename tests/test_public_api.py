"""The small public API in ``algospace/__init__.py``: every name resolves to its home, and
``import algospace`` alone imports neither Ray nor torch."""

from __future__ import annotations

import dataclasses
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import algospace


@pytest.mark.parametrize("name", sorted(algospace._API))
def test_every_public_name_is_its_home_object(name: str) -> None:
    module, attr = algospace._API[name]
    assert getattr(algospace, name) is getattr(importlib.import_module(module), attr)
    assert name in dir(algospace)


def test_an_unknown_name_says_what_exists() -> None:
    with pytest.raises(AttributeError, match="the public API is run_experiment, train"):
        algospace.no_such_thing  # noqa: B018


def test_import_algospace_is_light() -> None:
    code = ("import sys, algospace; "
            "print(sorted(m for m in ('ray', 'torch', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


@pytest.mark.parametrize("phase", ["strategic", "tactical", "coordination", "joint"])
def test_python_defaults_equal_a_yaml_that_sets_nothing(phase: str, tmp_path: Path) -> None:
    """``train(TrainConfig(env=...))`` trains what a phase YAML with no settings trains: the
    same market (built-in, calibrated signal), PPO settings, model, resources, budget and
    checkpoint rhythm — one definition of each default."""
    from algospace.config import load_experiment
    from algospace.training.builder import TrainConfig
    from algospace.tune.trainables import train_config

    path = tmp_path / f"{phase}.yaml"
    path.write_text(f"phase: {phase}\n")
    from_yaml = train_config(load_experiment(path).config)
    from_python = TrainConfig(env=from_yaml.env)
    differ = {f.name: (getattr(from_yaml, f.name), getattr(from_python, f.name))
              for f in dataclasses.fields(TrainConfig)
              if getattr(from_yaml, f.name) != getattr(from_python, f.name)}
    assert differ == {}
    assert from_python.env_config.data.synthetic.signal > 0  # not a market of pure noise
