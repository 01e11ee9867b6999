"""The bench command line: runs as a package, plain help that names existing modules."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

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
    for name in ("data", "env", "learn", "train", "team", "market", "latency", "uncertainty"):
        assert re.search(rf"^  {name} ", text, re.M), f"{name} missing from the help"


def test_env_bench_has_a_target_for_every_registered_env() -> None:
    assert set(env.ENV_TARGET_STEPS_PER_S) == set(ENV_NAMES)


def test_quick_is_a_smoke_run_of_each_bench_that_has_one(monkeypatch: Any,
                                                         capsys: Any) -> None:
    """``--quick`` shrinks data, market and env to their smoke sizes (given options still
    win) and is an error where a benchmark has no smoke run."""
    from experiments.bench import cli, data, market

    calls: dict[str, dict[str, Any]] = {}

    def fake(name: str) -> Any:
        def run(**kwargs: Any) -> dict[str, Any]:
            calls[name] = kwargs
            return {"ok": 1}
        return run

    monkeypatch.setattr(cli, "machine", lambda: {"host": "test"})
    for module, name in ((data, "data"), (market, "market"), (env, "env")):
        monkeypatch.setattr(module, "run", fake(name))
    assert cli.main(["data", "--quick"]) == 0
    assert cli.main(["market", "--quick"]) == 0
    assert cli.main(["env", "--quick"]) == 0
    assert calls == {"data": {"days": cli.QUICK_DAYS},
                     "market": {"days": cli.QUICK_DAYS, "seed": 0},
                     "env": {"steps": 2000, "seconds": 0.5}}
    assert cli.main(["market", "--quick", "--days", "30"]) == 0
    assert cli.main(["env"]) == 0
    assert calls["market"]["days"] == 30
    assert calls["env"] == {"steps": env.DEFAULT_STEPS, "seconds": env.DEFAULT_SECONDS}
    capsys.readouterr()
    assert cli.main(["learn", "--quick"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: --quick: the learn benchmark has no smoke run")


TRAIN_KEYS = ("ours_sampling_env_steps_per_s", "ours_sampling_agent_steps_per_s",
              "ours_learning_share", "stock_best_config", "stock_sampling_env_steps_per_s",
              "ours_train_env_steps_per_s", "stock_train_env_steps_per_s",
              "env_alone_env_steps_per_s", "sampling_speedup_vs_stock",
              "train_speedup_vs_stock")
"""The keys issue 22 names for ``bench train --json``."""


def test_train_options_reach_the_bench_and_gpu_without_one_is_a_clear_error(
        monkeypatch: Any, capsys: Any) -> None:
    import torch

    from experiments.bench import cli, train

    seen: list[dict[str, Any]] = []
    real_run = train.run
    monkeypatch.setattr(cli, "machine", lambda: {"host": "test"})
    monkeypatch.setattr(train, "run", lambda **kw: seen.append(kw) or {"ok": 1})
    assert cli.main(["train", "--copies", "32", "--timed-iterations", "2"]) == 0
    assert cli.main(["train", "--quick"]) == 0
    assert seen == [{"iterations": 2, "gpu": False, "copies": 32, "quick": False},
                    {"iterations": 3, "gpu": False, "copies": 16, "quick": True}]
    monkeypatch.setattr(train, "run", real_run)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    capsys.readouterr()
    assert cli.main(["train", "--gpu"]) == 2  # refused before anything starts
    err = capsys.readouterr().err
    assert err.startswith("error: --gpu: torch sees no CUDA GPU")
    assert cli.main(["train", "--copies", "0"]) == 2
    assert "--copies must be >= 1" in capsys.readouterr().err


@pytest.mark.train
def test_train_smoke_run_writes_every_figure(tmp_path: Path, capsys: Any) -> None:
    """``bench train --quick``: all three sides on a tiny market (figures no result)."""
    from experiments.bench import cli

    out = tmp_path / "train.json"
    assert cli.main(["train", "--quick", "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    for key in TRAIN_KEYS:
        assert key in figures, key
    assert figures["stock_best_config"] in (
        "num_env_runners=0, num_envs_per_env_runner=1",
        "num_env_runners=0, num_envs_per_env_runner=2")
    for key in TRAIN_KEYS:
        if key != "stock_best_config":
            assert figures[key] > 0, key
    assert figures["sampling_speedup_vs_stock"] == pytest.approx(
        figures["ours_sampling_env_steps_per_s"] / figures["stock_sampling_env_steps_per_s"])
    assert "sampling_speedup_vs_stock" in capsys.readouterr().out


def test_learn_signal_reaches_the_markets_and_a_bad_one_is_refused(monkeypatch: Any,
                                                                   capsys: Any) -> None:
    """``bench learn --signal X`` trains and evaluates on markets of strength X; a negative or
    non-numeric value is a usage error naming the option."""
    from experiments import learn
    from experiments.bench import cli

    seen: list[float] = []

    def run(**kw: Any) -> dict[str, Any]:
        cfg = learn.learn_config(days=5, seed=kw["seed"], iterations=1, out=Path("x"),
                                 signal=kw["signal"])
        seen.append(cfg.env_config.data.synthetic.signal)
        keys = ("eval_expected_capture", "eval_capture_of_oracle", "eval_net_pnl",
                "eval_sharpe", "eval_psr", "eval_oracle_net_pnl", "train_seconds")
        return {**dict.fromkeys(keys, 0.0), "pass_capture": False,
                "pass_beats_baselines": False}

    monkeypatch.setattr(cli, "machine", lambda: {"host": "test"})
    monkeypatch.setattr(learn, "run", run)
    assert cli.main(["learn", "--signal", "6", "--seeds", "0,1"]) == 0
    assert seen == [6.0, 6.0]
    capsys.readouterr()
    for bad in ("-1", "strong"):
        try:
            cli.main(["learn", "--signal", bad])
        except SystemExit as exc:
            assert exc.code == 2
        else:
            raise AssertionError(f"--signal {bad} was accepted")
        assert "--signal" in capsys.readouterr().err


def test_probes_smoke_run_writes_both_probes_per_layer_and_signal(
        tmp_path: Path, monkeypatch: Any, capsys: Any) -> None:
    """``bench probes --quick``: the truth and the price probe of every layer for each
    signal, a mean per signal, and the table; a bad --signals is one error line."""
    from experiments.bench import cli

    monkeypatch.chdir(tmp_path)  # the market cache goes under the working directory
    monkeypatch.setattr(cli, "machine", lambda: {"host": "test"})
    out = tmp_path / "probes.json"
    assert cli.main(["probes", "--quick", "--signals", "12", "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    for layer in ("strategic", "tactical", "joint"):
        for kind in ("truth", "price"):
            assert f"signal12_seed0_{layer}_{kind}_probe_expected_capture" in figures
            assert f"signal12_{layer}_{kind}_probe_expected_capture_mean" in figures
    assert figures["eval_days"] == 60 and figures["days"] == 40
    assert "| 12x |" in capsys.readouterr().out
    assert cli.main(["probes", "--signals", "1,strong"]) == 2
    assert "--signals" in capsys.readouterr().err
