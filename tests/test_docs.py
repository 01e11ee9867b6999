"""Documentation that is generated from code stays in step with it."""

from __future__ import annotations

from pathlib import Path

from algospace.config import TUNE_CONFIGS, schema_reference


def test_tune_configs_readme_lists_every_key() -> None:
    text = (TUNE_CONFIGS / "README.md").read_text()
    block = text.split("<!-- schema:start -->\n", 1)[1].split("<!-- schema:end -->", 1)[0]
    assert block == schema_reference(), (
        "tune_configs/README.md is out of date: regenerate the table between the schema "
        "markers with `python -m algospace.config`")


def test_every_phase_file_is_documented() -> None:
    text = (TUNE_CONFIGS / "README.md").read_text()
    for path in sorted(Path(TUNE_CONFIGS).rglob("*.yaml")):
        assert f"`{path.relative_to(TUNE_CONFIGS).as_posix()}`" in text, path
