"""The small public API in ``algospace/__init__.py``: every name resolves to its home, and
``import algospace`` alone imports neither Ray nor torch."""

from __future__ import annotations

import importlib
import subprocess
import sys

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
