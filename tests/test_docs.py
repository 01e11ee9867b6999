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


def _help_texts() -> dict[str, str]:
    """``--help`` of every command line: ``algospace`` and its subcommands, and the
    ``python -m experiments.*`` entry points."""
    import contextlib
    import io

    import pytest

    from algospace.cli import evaluate, run
    from algospace.cli.main import main as algospace
    from experiments.bench import cli as bench

    texts = {"experiments.run": run.build_parser().format_help(),
             "experiments.evaluate": evaluate.build_parser().format_help(),
             "experiments.bench": bench.build_parser().format_help()}
    for command in ([], ["data", "validate"], ["data", "synth"], ["data", "prepare"],
                    ["regime", "train"], ["run"], ["evaluate"], ["decide"]):
        out = io.StringIO()
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
            algospace([*command, "--help"])
        texts[" ".join(["algospace", *command])] = out.getvalue()
    return texts


def test_yaml_files_named_in_help_and_readmes_exist() -> None:
    """Every ``name.yaml`` a help text or README mentions is a file in tune_configs/
    (names in capitals, such as FILE.yaml, stand for the user's own file)."""
    import re

    texts = {**_help_texts(), "README.md": (ROOT / "README.md").read_text(),
             "tune_configs/README.md": (TUNE_CONFIGS / "README.md").read_text()}
    named = 0
    for where, text in texts.items():
        for name in re.findall(r"[\w/.-]*\.yaml\b", text):
            name = name.rsplit("tune_configs/", 1)[-1]
            if re.fullmatch(r"[A-Z_]+\.yaml", name):
                continue
            named += 1
            assert (TUNE_CONFIGS / name).is_file(), f"{where} names {name}: not in tune_configs/"
    assert named > 10


def test_readme_evaluate_synopsis_lists_every_option() -> None:
    """The README's ``algospace evaluate`` synopsis shows exactly the parser's options."""
    import re

    from algospace.cli.evaluate import build_parser

    text = (ROOT / "README.md").read_text()
    [block] = re.findall(r"```bash\n(\.venv/bin/algospace evaluate .*?)```", text, flags=re.S)
    shown = set(re.findall(r"\[(--[\w-]+)", block))
    options = set(re.findall(r"(?<![\w-])(--[\w-]+)", build_parser().format_help()))
    options.discard("--help")
    assert shown == options, (f"README synopsis lacks {sorted(options - shown)}, "
                              f"shows unknown {sorted(shown - options)}")
