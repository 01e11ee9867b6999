"""The bench command line: runs as a package, plain help that names existing modules."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from envs.registry import ENV_NAMES
from experiments.bench import env

ROOT = Path(__file__).resolve().parents[1]


def test_bench_help_is_plain_and_names_existing_modules() -> None:
    proc = subprocess.run([sys.executable, "-m", "experiments.bench", "--help"], cwd=ROOT,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert "``" not in text and not re.search(r":(mod|class|func|data):`", text)
    named = set(re.findall(r"experiments/[\w/]+\.py", text))
    assert {"experiments/bench/data.py", "experiments/bench/env.py"} <= named
    assert [p for p in sorted(named) if not (ROOT / p).is_file()] == []
    for name in ("data", "env", "learn", "train", "team", "market", "latency"):
        assert re.search(rf"^  {name} ", text, re.M), f"{name} missing from the help"


def test_env_bench_has_a_target_for_every_registered_env() -> None:
    assert set(env.ENV_TARGET_STEPS_PER_S) == set(ENV_NAMES)
