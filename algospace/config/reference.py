"""The key reference of the experiment schema (``tune_configs/README.md``), generated from
the sections' own field docstrings: ``python -m algospace.config`` prints it."""

from __future__ import annotations

import dataclasses
import itertools
import json
import typing
from typing import Any

from algospace.config.experiment import ExperimentConfig
from algospace.config.loader import optional_section
from algospace.schema import to_dict


def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of dataclass ``cls`` (and its bases)."""
    import ast
    import inspect
    import textwrap

    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        body = tree.body[0].body  # type: ignore[attr-defined]
        for node, nxt in itertools.pairwise(body):
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) \
                    and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
                docs[node.target.id] = " ".join(str(nxt.value.value).split())
    return docs


def schema_reference() -> str:
    """Every key of an experiment YAML with its default and meaning (Markdown)."""
    lines = ["| key | default | meaning |", "|---|---|---|"]

    def walk(cls: Any, prefix: str) -> None:
        docs = field_docs(cls)
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            key = f"{prefix}{f.name}"
            if key in ("env.data", "env.split", "env.regime_detector", "env.fold",
                       "env.walk_forward"):
                continue  # the data is top-level; training uses the train split; the
                # runner sets the regime detector (handoff.regime) and the walk-forward fold
            tp = hints[f.name]
            if dataclasses.is_dataclass(tp):
                walk(tp, f"{key}.")
                continue
            value = f.default if f.default is not dataclasses.MISSING \
                else f.default_factory()  # type: ignore[operator]
            shown = json.dumps(to_dict(value), default=str)
            lines.append(f"| `{key}` | `{shown}` | {docs.get(f.name, '')} |")
            if optional_section(tp) is not tp:  # an optional section: its keys too
                walk(optional_section(tp), f"{key}.")
            item = typing.get_args(tp)[0] if typing.get_origin(tp) is tuple else None
            if item is not None and dataclasses.is_dataclass(item):
                walk(item, f"{key}[].")

    walk(ExperimentConfig, "")
    return "\n".join(lines) + "\n"
