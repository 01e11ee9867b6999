"""``bench team``'s bookkeeping: curves from Tune's progress files, the summary table."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from experiments import team


def test_curve_reads_the_validation_points_of_the_first_trial(tmp_path: Path) -> None:
    trial = tmp_path / "trial_0"
    trial.mkdir()
    (trial / "progress.csv").write_text(
        "training_iteration,env_steps,val_expected_capture,val_net_pnl\n"
        "1,4000,,\n"
        "2,8000,-0.25,-1200.5\n"
        "3,12000,nan,\n"
        "4,16000,0.125,310\n")
    points = team.curve({"trials": [{"path": str(trial)}]})
    assert [p["iteration"] for p in points] == [2.0, 4.0]
    assert [p["val_expected_capture"] for p in points] == [-0.25, 0.125]
    assert points[1]["env_steps"] == 16000.0 and points[0]["val_net_pnl"] == -1200.5
    assert team.curve({"trials": []}) == []
    assert team.curve({"trials": [{"path": str(tmp_path / "missing")}]}) == []


def test_table_has_a_row_per_seed_and_a_column_per_team_and_probe() -> None:
    row = {"seed": 3, "joint_net_pnl": -1234.0}
    for i, name in enumerate([*team.TEAMS, *(f"probe_{p}" for p in team.PROBES),
                              *(f"price_probe_{p}" for p in team.PROBES)]):
        row[f"{name}_expected_capture"] = 0.01 * i
    for i, key in enumerate(team.ABLATION_KEYS):
        row[key] = -0.5 + 0.1 * i
    text = team.table([row])
    header, rule, line = text.strip().splitlines()
    assert header.count("|") == rule.count("|") == line.count("|")
    assert line.startswith("| 3 | +0.000 | +0.010") and "-$1,234" in line
    assert "probe_joint" in header and not math.isnan(float(line.split("|")[2]))
    assert "price_probe_tactical" in header
    heads = [h.strip() for h in header.split("|")]
    cells = [c.strip() for c in line.split("|")]
    for key in ("mappo_minus_ippo", "mappo_minus_zeroed_mc", "joint_critic_ev",
                "zeroed_mc_critic_ev", "ippo_critic_ev"):
        assert key in heads, key
    assert cells[heads.index("mappo_minus_zeroed_mc")] == "-0.500"
    assert cells[heads.index("ippo_critic_ev")] == "-0.100"


def test_the_sets_of_every_phase_name_the_seed_market_and_folder(tmp_path: Path) -> None:
    sets = team.run_sets(2, tmp_path, days=20)
    assert sets == ["seed=2", f"data.synthetic.seed={team.LEARN_SEED + 2}",
                    "data.synthetic.days=20", "data.synthetic.signal=1.0",
                    f"output.dir={tmp_path}"]
    assert "data.synthetic.signal=12.0" in team.run_sets(2, tmp_path, days=20, signal=12.0)


def test_train_dropout_reaches_every_phase_and_its_own_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``bench team --train-dropout``: each phase file, loaded with the seed's sets, trains
    with dropout, and the command line asks for it."""
    from algospace.config.loader import load_experiment, parse_set
    from experiments.bench import cli

    sets = team.run_sets(1, tmp_path, days=20, train_dropout=True)
    assert sets[-1] == "model.train_dropout=true"
    for phase in team.PHASES:
        exp = load_experiment(f"{phase}.yaml", parse_set(sets))
        assert exp.config.model.train_dropout, phase
    seen: list[dict[str, object]] = []
    monkeypatch.setattr(team, "run_seeds", lambda **kw: seen.append(kw) or {"ok": 1})
    monkeypatch.setattr(cli, "machine", lambda: {"host": "test"})
    assert cli.main(["team", "--seeds", "1", "--train-dropout", "--quick"]) == 0
    assert seen[-1]["train_dropout"] is True
    assert cli.main(["team", "--seeds", "1", "--quick"]) == 0
    assert seen[-1]["train_dropout"] is False


def test_the_evaluation_market_has_the_training_markets_strength() -> None:
    """``--signal``: the fresh evaluation market plants the components as strongly as the
    market the teams trained on."""
    train_cfg, eval_cfg = team.market_configs(1, days=30, eval_days=40, regime_latent=False,
                                              signal=12.0)
    assert train_cfg.data.synthetic.signal == eval_cfg.data.synthetic.signal == 12.0
    assert eval_cfg.data.synthetic.seed != train_cfg.data.synthetic.seed


def test_progress_table_shows_critic_ev_and_an_eta_from_the_env_step_budget() -> None:
    from dataclasses import replace

    from algospace import load_experiment
    from algospace.config.run import StopSection
    from algospace.tune.progress import ProgressTable

    cfg = load_experiment("strategic.yaml").config
    cfg = replace(cfg, stop=StopSection(iterations=10**6, env_steps=10_000))
    lines: list[str] = []
    table = ProgressTable(cfg, lines.append)

    class Trial:
        trial_id = "abc"

    table.on_trial_result(1, [], Trial(), {"training_iteration": 2, "env_steps": 2_500.0,
                                           "time_total_s": 60.0,
                                           "critic/explained_variance": 0.4321})
    header, row = lines
    assert "critic EV" in header and "0.43" in row
    assert row.rstrip().endswith("1:00 / 3:00")  # a quarter of the steps in a minute


def test_bad_seeds_end_in_one_error_line_and_status_2(capsys: object) -> None:
    from experiments.bench.cli import main

    assert main(["team", "--seeds", "zero,one", "--quick"]) == 2
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    assert err.startswith("error: --seeds 'zero,one'") and len(err.strip().splitlines()) == 1


def test_a_finished_run_is_kept_and_reused_only_with_its_settings_and_checkpoints(
        tmp_path: Path, capsys: object) -> None:
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    calls: list[int] = []

    def make() -> dict[str, object]:
        calls.append(1)
        return {"phases": {"joint": {"checkpoint": str(ckpt), "critic_ev": math.nan}},
                "env_steps": 10.0}

    record = tmp_path / "seed0" / "curriculum.json"
    settings = {"seed": 0, "days": 20, "signal": 1.0, "quick": True}
    first = team.kept(record, settings, make)
    assert record.is_file() and len(calls) == 1
    again = team.kept(record, settings, make)  # reused: nothing trains again
    assert len(calls) == 1 and again["env_steps"] == first["env_steps"]
    assert math.isnan(again["phases"]["joint"]["critic_ev"])
    assert "reusing" in capsys.readouterr().out  # type: ignore[attr-defined]
    team.kept(record, {**settings, "signal": 12.0}, make)  # other settings: trains
    assert len(calls) == 2
    ckpt.rmdir()
    team.kept(record, {**settings, "signal": 12.0}, make)  # checkpoint gone: trains
    assert len(calls) == 3


def test_code_fingerprint_follows_the_sources_and_phase_files(tmp_path: Path) -> None:
    """A kept run record is reused only for the same code and phase defaults: the
    fingerprint in the bench's settings changes with any source or phase file."""
    (tmp_path / "algospace").mkdir()
    (tmp_path / "tune_configs").mkdir()
    (tmp_path / "algospace" / "a.py").write_text("X = 1\n")
    phase = tmp_path / "tune_configs" / "tactical.yaml"
    phase.write_text("stop:\n  iterations: 40\n")
    first = team.code_fingerprint(tmp_path)
    (tmp_path / "algospace" / "notes.txt").write_text("not a source")
    assert team.code_fingerprint(tmp_path) == first
    phase.write_text("stop:\n  iterations: 100\n")
    assert team.code_fingerprint(tmp_path) != first
    assert len(team.code_fingerprint()) == 16  # the repository's own


def test_the_markets_name_the_curriculums_regime_detector() -> None:
    """A market's store keeps the latents of every detector encoded into it (a rerun
    after a code change trains another one); the bench's training and evaluation markets
    name the curriculum's, so the teams and the probes read its latents and no other's
    (unnamed, two detectors in one store stop the backtest)."""
    train_cfg, eval_cfg = team.market_configs(0, days=20, eval_days=30, regime_latent=True,
                                              detector="e07c46dc7c5b")
    assert train_cfg.regime_detector == eval_cfg.regime_detector == "e07c46dc7c5b"
    assert eval_cfg.data.synthetic.seed != train_cfg.data.synthetic.seed
    assert team.detector_of(None, True) is None
    assert team.detector_of("results/rde/x/checkpoint_000000", False) is None
