"""Documentation that is generated from code stays in step with it."""

from __future__ import annotations

from pathlib import Path

from algospace.config import TUNE_CONFIGS, schema_reference

ROOT = Path(__file__).resolve().parents[1]


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


def test_readme_python_names_exist() -> None:
    """Every name the README's Python examples import, or read off ``algospace.``, exists."""
    import ast
    import importlib
    import importlib.util
    import re

    import algospace

    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    assert blocks
    missing = []
    for block in blocks:
        for node in ast.walk(ast.parse(block)):
            if isinstance(node, ast.ImportFrom) and node.module:
                module = importlib.import_module(node.module)
                missing += [f"{node.module}.{a.name}" for a in node.names
                            if not hasattr(module, a.name)
                            and importlib.util.find_spec(f"{node.module}.{a.name}") is None]
            elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                  and node.value.id == "algospace" and not hasattr(algospace, node.attr)):
                missing.append(f"algospace.{node.attr}")
    assert missing == []
