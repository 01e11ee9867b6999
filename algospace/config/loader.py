"""Reading an experiment: YAML files, ``--set`` overrides and Tune search spaces.

:func:`load_experiment` reads a file, applies ``--set`` overrides, pulls out Tune search
spaces, and builds :class:`~algospace.config.experiment.ExperimentConfig` — unknown keys
rejected with a did-you-mean, wrong types naming the YAML path, contradictions explained —
all before Ray starts.

Search spaces are accepted in ``training``, ``model``, ``env.reward``, ``rde`` and
``seed``: a one-key mapping ``{grid_search: [...]}``, ``{choice: [...]}``,
``{uniform: [lo, hi]}``, ``{loguniform: [lo, hi]}`` or ``{randint: [lo, hi]}``.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from algospace.config.experiment import ExperimentConfig
from algospace.errors import ConfigError
from algospace.schema import build, convert, did_you_mean

TUNE_CONFIGS = Path(__file__).resolve().parents[2] / "tune_configs"
"""Where a bare file name given to ``experiments.run`` is looked up."""

SPACE_KINDS = ("grid_search", "choice", "uniform", "loguniform", "randint")
SEARCHABLE = ("training", "model", "env.reward", "rde", "seed")
"""Key prefixes whose values may be Tune search spaces."""


class YamlLoader(yaml.SafeLoader):
    """``yaml.safe_load``'s loader, but ``1e-4`` (an exponent without a dot) is a float, as
    in YAML 1.2 — PyYAML (YAML 1.1) would read it as the string ``'1e-4'``."""


YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with clear errors for missing or malformed files."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        content = yaml.load(path.read_text(encoding="utf-8"), Loader=YamlLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", err)
        raise ConfigError(f"{path}:{where} not valid YAML ({problem})") from None
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(content).__name__}")
    return content


@dataclass(frozen=True)
class Experiment:
    """A validated experiment: its config, search spaces and where it came from."""

    config: ExperimentConfig
    """The config, with each search space replaced by one of its values (for checks)."""
    raw: dict[str, Any]
    """The YAML mapping after overrides, search spaces still in place."""
    spaces: dict[str, dict[str, Any]]
    """Search spaces by dotted key, e.g. ``{"training.lr": {"loguniform": [1e-4, 1e-3]}}``."""
    source: str
    """The file it was read from."""

    @property
    def name(self) -> str:
        """Experiment name."""
        return self.config.name or Path(self.source).stem

    def resolved(self, values: dict[str, Any]) -> ExperimentConfig:
        """The config with the search spaces set to ``values`` (one Tune trial's)."""
        raw = copy.deepcopy(self.raw)
        for key, value in values.items():
            set_key(raw, key, value)
        return build_experiment(raw, self.source)


def resolve_path(name: str) -> Path:
    """A YAML path: as given if it exists, else looked up in ``tune_configs/``."""
    path = Path(name).expanduser()
    if path.is_file():
        return path
    for candidate in (TUNE_CONFIGS / name, TUNE_CONFIGS / f"{name}.yaml"):
        if not path.is_absolute() and candidate.is_file():
            return candidate
    known = sorted(p.relative_to(TUNE_CONFIGS).as_posix()
                   for p in TUNE_CONFIGS.rglob("*.yaml")) if TUNE_CONFIGS.is_dir() else []
    raise ConfigError(f"{name}: config file not found (looked in the working directory and in "
                      f"{TUNE_CONFIGS}).{did_you_mean(name, known)} Known files: "
                      f"{', '.join(known) or 'none'}")


def parse_set(items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``--set key.path=value`` items (values parsed as YAML) as a mapping."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set training.lr=1e-4")
        try:
            out[key.strip()] = yaml.load(text, Loader=YamlLoader)  # 1e-4 is a float
        except yaml.YAMLError as err:
            problem = getattr(err, "problem", None) or "not parseable"
            quoted = text.replace("\\", "\\\\").replace('"', '\\"')
            raise ConfigError(
                f"--set {item!r}: the value is not valid YAML ({problem}). Fix: quote it as a "
                f"YAML string, e.g. --set '{key.strip()}=\"{quoted}\"'") from None
    return out


def blame_key(err: ConfigError, source: str, sets: Sequence[str] = ()) -> ConfigError:
    """``err`` (a message starting with the key at fault) named after where that key came
    from: the ``--set KEY=VALUE`` item that set it (or a key under it, or the section it
    goes into), else the file ``source``."""
    message = str(err)
    path = re.match(r"[\w.\[\]]+", message)
    at = path.group(0) if path else ""
    for item in reversed(sets):  # a later --set wins, so it is the one at fault
        key = item.partition("=")[0].strip()
        if key and (at == key or at.startswith((key + ".", key + "["))
                    or key.startswith(at + ".")):
            return ConfigError(f"--set {item}: {message}")
    return ConfigError(f"{source}: {message}")


def set_key(raw: dict[str, Any], key: str, value: Any) -> None:
    """Set dotted ``key`` in the nested mapping ``raw``."""
    parts = key.split(".")
    node = raw
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"{'.'.join(parts[:i + 1])}: is {child!r}, not a section, so "
                              f"{key} cannot be set")
        node = child
    node[parts[-1]] = value


def load_experiment(path: str | Path, overrides: dict[str, Any] | None = None) -> Experiment:
    """Read, override, check and build an experiment file."""
    file = resolve_path(str(path))
    raw = read_yaml(file)
    for key, value in (overrides or {}).items():
        set_key(raw, key, value)
    try:
        return _experiment(raw, str(file))
    except ConfigError as err:
        raise ConfigError(f"{file}: {err}") from None


def experiment_from_raw(raw: dict[str, Any], source: str) -> Experiment:
    """An experiment from a YAML mapping (overrides applied), e.g. one saved with a run."""
    return _experiment(copy.deepcopy(raw), source)


def _experiment(raw: dict[str, Any], source: str) -> Experiment:
    spaces: dict[str, dict[str, Any]] = {}
    sample = _extract_spaces(copy.deepcopy(raw), "", spaces)
    config = build_experiment(sample, source)
    return Experiment(config, raw, spaces, source)


def build_experiment(raw: dict[str, Any], source: str = "<config>") -> ExperimentConfig:
    """An :class:`ExperimentConfig` from a mapping without search spaces."""
    raw = dict(raw)
    env = raw.get("env")
    if isinstance(env, dict):
        for key, why in (("data", "the data is set in the top-level data section"),
                         ("split", "training uses the train split; evaluation.split picks "
                                   "the final evaluation's"),
                         ("fold", "the runner runs one trial per fold of "
                                  "evaluation.walk_forward"),
                         ("walk_forward", "set evaluation.walk_forward")):
            if key in env:
                raise ConfigError(f"env.{key}: not set here — {why}")
        if "random_start" in env and env["random_start"] is False:
            raise ConfigError("env.random_start: false would replay the same episodes; "
                              "training draws random episode starts")
    config = build(ExperimentConfig, raw, "")
    return dataclasses.replace(config, env=dataclasses.replace(
        config.env, data=config.data, walk_forward=config.evaluation.walk_forward))


def _extract_spaces(node: Any, path: str, spaces: dict[str, dict[str, Any]]) -> Any:
    """``node`` with each search space replaced by its first value (the space recorded,
    and every value it can take checked against the field's type)."""
    if not isinstance(node, dict):
        return node
    tp = field_type(path) if path else ExperimentConfig
    if dataclasses.is_dataclass(tp) or typing.get_origin(tp) is dict:
        return {k: _extract_spaces(v, f"{path}.{k}" if path else str(k), spaces)
                for k, v in node.items()}
    kind = next(iter(node)) if len(node) == 1 else None
    if kind not in SPACE_KINDS:
        hint = did_you_mean(str(kind), SPACE_KINDS) if kind is not None else ""
        raise ConfigError(f"{path}: expected a value or a search space (a mapping with one "
                          f"key of {', '.join(SPACE_KINDS)}), got {node!r}.{hint}")
    if not any(path == p or path.startswith(p + ".") for p in SEARCHABLE):
        raise ConfigError(f"{path}: search spaces ({kind}) are allowed only under "
                          f"{', '.join(SEARCHABLE)}")
    values = _space_values(path, str(kind), node[kind])
    if kind in ("uniform", "loguniform"):
        try:
            convert(tp, 0.5, path)
        except ConfigError:
            raise ConfigError(f"{path}.{kind}: {kind} draws floats but {path} is not a float; "
                              "use randint: [low, high] for an integer, or choice: "
                              "[...]") from None
    for i, value in enumerate(values):
        convert(tp, value, f"{path}.{kind}[{i}]")
    spaces[path] = dict(node)
    return values[0]


def _space_values(path: str, kind: str, args: Any) -> list[Any]:
    """Check a search space's arguments; return the values to type-check."""
    if kind in ("grid_search", "choice"):
        if not isinstance(args, list) or not args:
            raise ConfigError(f"{path}.{kind}: expected a non-empty list of values")
        return list(args)
    if not (isinstance(args, list) and len(args) == 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in args)):
        raise ConfigError(f"{path}.{kind}: expected [low, high] numbers, got {args!r}")
    low, high = args
    if not low < high:
        raise ConfigError(f"{path}.{kind}: low ({low}) must be below high ({high})")
    if kind == "loguniform" and low <= 0:
        raise ConfigError(f"{path}.loguniform: bounds must be > 0, got {args!r}")
    if kind == "randint":
        if not all(isinstance(v, int) for v in args):
            raise ConfigError(f"{path}.randint: bounds must be integers, got {args!r}")
        return [low, high]
    return [float(low), float(high)]


def field_type(path: str) -> Any:
    """The annotation of dotted ``path`` in :class:`ExperimentConfig`."""
    tp: Any = ExperimentConfig
    parts = path.split(".")
    for i, part in enumerate(parts):
        if typing.get_origin(tp) is dict:
            tp = typing.get_args(tp)[1]
            continue
        if not dataclasses.is_dataclass(tp):
            raise ConfigError(f"{path}: {part!r} is not a key of a section")
        hints = typing.get_type_hints(tp)
        if part not in hints:
            names = [f.name for f in dataclasses.fields(tp)]
            raise ConfigError(f"{'.'.join(parts[:i + 1])}: unknown key.{did_you_mean(part, names)} "
                              f"Known keys here: {', '.join(names)}")
        tp = optional_section(hints[part])
    return tp


def optional_section(tp: Any) -> Any:
    """``X`` for an optional section ``X | None`` (``X`` a dataclass), else ``tp``."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if len(args) == 1 and len(typing.get_args(tp)) == 2 and dataclasses.is_dataclass(args[0]):
        return args[0]
    return tp


def tune_space(spec: dict[str, Any]) -> Any:
    """The Ray Tune search-space object of a YAML search-space mapping."""
    from ray import tune

    kind, args = next(iter(spec.items()))
    if kind == "grid_search":
        return tune.grid_search(list(args))
    if kind == "choice":
        return tune.choice(list(args))
    if kind == "uniform":
        return tune.uniform(*args)
    if kind == "loguniform":
        return tune.loguniform(*args)
    return tune.randint(args[0], args[1] + 1)  # YAML bounds are inclusive
