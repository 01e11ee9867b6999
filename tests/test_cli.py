"""The algospace command: summaries on good input, `error:` and exit 2 on bad."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from algospace.cli import main
from algospace.data.loader import load_bars


def test_synth_validate_prepare(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "ES - 5 min.csv"
    assert main(["data", "synth", "--out", str(out), "--days", "10", "--signal", "0.2"]) == 0
    text = capsys.readouterr().out
    assert "wrote 2,760 bars" in text and "oracle Sharpe" in text
    assert main(["data", "validate", str(out)]) == 0
    text = capsys.readouterr().out
    assert "rows:        2,760" in text and "bar size:    5 min" in text
    assert "ok: the file is valid" in text
    assert main(["data", "prepare", "--data", str(out)]) == 0
    captured = capsys.readouterr()
    assert "(built)" in captured.out and ".algospace/cache" in captured.out
    assert "train" in captured.out and "deprecated" not in captured.err
    assert main(["data", "prepare", "--csv", str(out)]) == 0  # the old name still works
    captured = capsys.readouterr()
    assert "(cache hit)" in captured.out
    assert captured.err.strip() == ("note: --csv is deprecated and will go; use --data "
                                    "(the same option)")


def test_synth_is_byte_identical(tmp_path: Path) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    for path in (a, b):
        assert main(["data", "synth", "--out", str(path), "--days", "3", "--seed", "7"]) == 0
    assert a.read_bytes() == b.read_bytes()
    assert len(load_bars(a)) == 3 * 276


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        ("Timestamp,Open,High,Low,Close,Volume\n2024-01-02 09:30,1,0.5,0.9,1,1\n", [],
         "line 2, column 'High': High 0.5 is below Low 0.9"),
        ("", [], "file is empty"),
        ("Timestamp,Open,High,Low,Close\n2024-01-02 09:30,1,2,0.5,1\n", [], "missing column"),
        ("Timestamp,Open,High,Low,Close,Volume\n13/01/2024 09:30,1,2,0.5,1,1\n"
         "13/01/2024 09:35,1,2,0.5,1,1\n", ["--monthfirst"], "cannot be read month-first"),
    ],
)
def test_validate_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str,
                         args: list[str], message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    assert main(["data", "validate", str(path), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_prepare_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["data", "prepare", "--data", "missing.csv"]) == 2
    assert "missing.csv: file not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # one data source
        main(["data", "prepare", "--data", "a.csv", "--csv", "b.csv"])
    assert "not allowed with argument" in capsys.readouterr().err
    config = tmp_path / "exp.yaml"
    config.write_text("data:\n  sourse: csv\n")
    assert main(["data", "prepare", str(config)]) == 2
    assert "Did you mean 'source'?" in capsys.readouterr().err
    assert main(["data", "synth", "--out", "x.csv", "--bar-minutes", "7"]) == 2
    assert "bar_minutes" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()
    assert not (tmp_path / ".algospace").exists()


def test_console_script_exit_status(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"\x00\x01binary")
    exe = Path(sys.executable).parent / "algospace"
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "algospace.cli"]
    proc = subprocess.run([*command, "data", "validate", str(bad)], capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "binary" in proc.stderr


@pytest.mark.parametrize("command", [[], ["data"], ["data", "validate"], ["data", "synth"],
                                     ["data", "prepare"], ["regime", "train"], ["run"],
                                     ["evaluate"], ["decide"]])
def test_help_is_plain_text_naming_files_that_exist(command: list[str],
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """``--help`` shows no reST markup, and the phase files it names exist."""
    import re

    from algospace.config import resolve_path

    with pytest.raises(SystemExit) as exit_:
        main([*command, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "``" not in text and not re.search(r":(func|mod|class|data):", text), text
    for name in re.findall(r"[\w/]+\.yaml", text):
        if name not in {"FILE.yaml", "CONFIG.yaml"}:
            assert resolve_path(name).is_file(), name


@pytest.mark.parametrize(("module", "prog"), [
    ("experiments.evaluate", "python -m experiments.evaluate"),
    ("experiments.run", "python -m experiments.run"),
    ("algospace.cli.main", "algospace"),
])
def test_each_entry_point_shows_its_own_name(module: str, prog: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    import importlib

    with pytest.raises(SystemExit) as exit_:
        importlib.import_module(module).main(["--help"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: {prog} ")
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    assert capsys.readouterr().out.startswith("usage: algospace evaluate ")
