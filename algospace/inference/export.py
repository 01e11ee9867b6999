"""Actors exported to TorchScript: run the team without RLlib, checked against the eager modules.

:func:`export_actors` writes one TorchScript file per module id and a
``manifest.json`` (:data:`MANIFEST`) into a folder; :func:`load_exported`
reads it back as :class:`ExportedActor` objects, which satisfy the
:class:`~algospace.inference.policy.Actor` protocol, so
:func:`~algospace.models.actor.actor_mc_stats` uses them unchanged and
:class:`~algospace.inference.policy.TeamPolicy` (the decision engine) reads
their weights out of the TorchScript modules
(:func:`algospace.inference.kernel.net_weights`).

**What is exported.** A small plain module rebuilt from the actor's layers and
head, whose ``forward(x, dropout)`` computes exactly
:meth:`ActorModule.logits <algospace.models.actor.ActorModule.logits>`:
``Linear -> ReLU -> F.dropout(p, training=dropout)`` per hidden layer, then the
linear head. Scripted ``F.dropout`` draws its masks from torch's global
generator exactly as the eager call does, so under the same seed the MC-dropout
statistics of the exported actors equal the eager ones bit for bit (checked by
:func:`check_export`, which every export runs before the folder appears).

**Why TorchScript.** ``torch.jit`` is deprecated as of torch 2.13 (it warns)
but works; a ``torch.export`` program (``.pt2``) runs through its generated
graph module, which took about 77 µs per batch-1 call of a 2×64 actor against
14 µs for the scripted module (one CPU thread, torch 2.13), and needs one
program per dropout setting (a Python bool argument is specialised away).
The deprecation warnings of the ``torch.jit`` calls are silenced here; when
TorchScript goes, a ``.pt2`` export becomes format version 2.

**Engine settings.** :func:`algospace.inference.bundle.write_bundle` adds, under the
manifest's ``engine`` key, what the decision engine needs besides the actors (env, its
settings, the training data's normalisation, a copy of the regime detector), so that an
export runs with no checkpoint; an export without that key runs with its checkpoint.

**Atomic.** Everything is written into a temporary folder next to the target,
loaded back and checked, then renamed into place: an error leaves no folder
(and an existing one untouched).
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from algospace.errors import CheckpointError, ConfigError
from algospace.files import atomic_dir
from algospace.models.actor import actor_mc_stats
from algospace.models.network import actor_layers

FORMAT = "algospace-actors"
"""Value of the manifest's ``format`` key."""
FORMAT_VERSION = 1
"""Manifest layout this version writes and reads."""
MANIFEST = "manifest.json"
"""File name of the manifest inside an export folder."""
TOLERANCE = 1e-5
"""Largest |eager - exported| logit (and MC statistic) difference :func:`check_export` accepts."""
CHECK_MC_PASSES = 50
"""Dropout passes of the MC-statistics comparison (the decision engine's default)."""

_SAFE_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_FIX = ("write it with algospace.inference.export.export_actors(load_actors(CHECKPOINT), "
        "FOLDER)")


class ExportMismatchError(RuntimeError):
    """Exported actors do not compute what the eager actors compute."""


class DropoutMLP(nn.Module):
    """``ActorModule.logits`` as a plain module: the network that is scripted."""

    def __init__(self, layers: list[nn.Linear], head: nn.Linear, p: float) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.head = head
        self.p = p

    def forward(self, x: Tensor, dropout: bool) -> Tensor:
        """Logits ``[..., sum(input_lens)]``; dropout (p) only when ``dropout``."""
        for layer in self.layers:
            x = F.dropout(F.relu(layer(x)), p=self.p, training=dropout)
        return self.head(x)

    @classmethod
    def of(cls, actor: Any) -> DropoutMLP:
        """A CPU float32 copy of an :class:`~algospace.models.actor.ActorModule`'s network,
        layer by layer as :func:`~algospace.models.network.actor_layers` lists them."""
        state = actor.state_dict()
        layers = [_copy_linear(state, layer.name) for layer in actor_layers(state)]
        net = cls(layers[:-1], layers[-1], float(actor.cfg.dropout))
        return net.eval().requires_grad_(False)


def _copy_linear(state: Mapping[str, Tensor], name: str) -> nn.Linear:
    """A CPU float32 linear layer holding ``<name>.weight`` and ``<name>.bias`` of ``state``."""
    weight, bias = state[f"{name}.weight"], state[f"{name}.bias"]
    copy = nn.Linear(int(weight.shape[1]), int(weight.shape[0]))
    copy.load_state_dict({"weight": weight.detach().to("cpu", torch.float32),
                          "bias": bias.detach().to("cpu", torch.float32)})
    return copy


@contextmanager
def _quiet_jit() -> Iterator[None]:
    """Silence the deprecation warnings torch 2.13 gives every ``torch.jit`` call."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning,
                                message=r"`torch\.jit\.")
        yield


class ExportedActor:
    """A loaded TorchScript actor with the :class:`~algospace.inference.policy.Actor` interface."""

    def __init__(self, module: torch.jit.ScriptModule, *, module_id: str,
                 input_lens: tuple[int, ...], is_multi_discrete: bool,
                 votes: tuple[float, ...] | None, dropout: float, local_width: int) -> None:
        self.module = module
        self.module_id = module_id
        self.input_lens = input_lens
        self.is_multi_discrete = is_multi_discrete
        self.votes = None if votes is None else torch.tensor(votes, dtype=torch.float32)
        self.dropout = dropout
        self.local_width = local_width

    def logits(self, local: Tensor, *, dropout: bool = False) -> Tensor:
        """Action-distribution inputs ``[..., sum(input_lens)]``; dropout only if asked."""
        if local.shape[-1] != self.local_width:
            raise ValueError(f"actor {self.module_id!r} takes local observations of width "
                             f"{self.local_width}, got shape {tuple(local.shape)}")
        out: Tensor = self.module(local, dropout)
        return out

    def __repr__(self) -> str:
        return (f"ExportedActor({self.module_id!r}, width={self.local_width}, "
                f"input_lens={self.input_lens})")


def _entry(module_id: str, actor: Any, file: str) -> dict[str, Any]:
    """The manifest entry of one actor."""
    votes = getattr(actor, "votes", None)
    state = actor.state_dict()
    return {"file": file, "input_lens": [int(n) for n in actor.input_lens],
            "is_multi_discrete": bool(actor.is_multi_discrete),
            "votes": None if votes is None else [float(v) for v in votes.tolist()],
            "dropout": float(actor.cfg.dropout), "local_width": _width(actor),
            "hidden": [int(state[f"{layer.name}.weight"].shape[0])
                       for layer in actor_layers(state) if layer.hidden]}


def _width(actor: Any) -> int:
    """Width of the ``local`` observation an eager or exported actor reads."""
    if isinstance(actor, ExportedActor):
        return actor.local_width
    state = actor.state_dict()
    return int(state[f"{actor_layers(state)[0].name}.weight"].shape[1])


def export_actors(actors: Mapping[str, Any], folder: str | Path, *,
                  overwrite: bool = False, engine: Mapping[str, Any] | None = None,
                  extra: Callable[[Path], None] | None = None) -> Path:
    """Write ``actors`` (module id → ActorModule) to ``folder`` as TorchScript, checked.

    ``overwrite``: replace an existing folder (only once the new export has passed
    :func:`check_export`). ``engine``: the decision engine's settings, stored under the
    manifest's ``engine`` key (:mod:`algospace.inference.bundle`); ``extra`` writes more
    files into the folder before it appears. Returns the folder.
    """
    folder = Path(folder)
    if not actors:
        raise ConfigError("no actors to export")
    bad = [m for m in actors if not _SAFE_ID.fullmatch(m)]
    if bad:
        raise ConfigError(f"module ids {bad} cannot be file names; use letters, digits, _ . -")
    if folder.exists() and not overwrite:
        raise ConfigError(f"{folder} already exists; pass overwrite=True or choose a new folder")

    def fill(tmp: Path) -> None:
        _write(actors, tmp, engine)
        if extra is not None:
            extra(tmp)
        check_export(actors, load_exported(tmp))

    return atomic_dir(folder, fill)


def _write(actors: Mapping[str, Any], tmp: Path, engine: Mapping[str, Any] | None) -> None:
    """The TorchScript files and the manifest, into ``tmp``."""
    modules: dict[str, Any] = {}
    for module_id, actor in sorted(actors.items()):
        file = f"{module_id}.pt"
        with _quiet_jit():
            scripted = torch.jit.script(DropoutMLP.of(actor))
            torch.jit.save(scripted, str(tmp / file))
        modules[module_id] = _entry(module_id, actor, file)
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION,
                "torch": torch.__version__, "modules": modules}
    if engine is not None:
        manifest["engine"] = dict(engine)
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The validated manifest of an export folder (:class:`CheckpointError` if broken)."""
    return _manifest(Path(folder))


def _manifest(folder: Path) -> dict[str, Any]:
    """The validated manifest of an export folder."""
    if not folder.is_dir():
        raise CheckpointError(f"exported actors folder {folder} does not exist; {_FIX}")
    path = folder / MANIFEST
    if not path.is_file():
        raise CheckpointError(f"{folder} has no {MANIFEST}: it was not written by "
                              f"export_actors, or the export did not finish; {_FIX}")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path} cannot be read ({err}); export again: {_FIX}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an {FORMAT} manifest; {_FIX}")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has format version {version!r}, this version of AlgoSpace reads "
            f"{FORMAT_VERSION}; export the checkpoint again with this version: {_FIX}")
    if not isinstance(manifest.get("modules"), dict) or not manifest["modules"]:
        raise CheckpointError(f"{path} lists no modules; {_FIX}")
    return manifest


def load_exported(folder: str | Path) -> dict[str, ExportedActor]:
    """The actors of an export folder written by :func:`export_actors`, by module id."""
    folder = Path(folder)
    manifest = _manifest(folder)
    return {module_id: _load_one(folder, module_id, entry)
            for module_id, entry in manifest["modules"].items()}


def _load_one(folder: Path, module_id: str, entry: Any) -> ExportedActor:
    """One actor of a manifest, its output width checked against the manifest."""
    where = f"{folder / MANIFEST}, module {module_id!r}"
    try:
        file, settings = _parse_entry(entry)
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{where}: broken entry ({err!r}); export again: {_FIX}") from None
    path = folder / file
    if not path.is_file():
        raise CheckpointError(f"{where}: file {path} is missing; export again: {_FIX}")
    try:
        with _quiet_jit():
            module = torch.jit.load(str(path), map_location="cpu")
    except RuntimeError as err:
        raise CheckpointError(f"{where}: {path} is not a TorchScript file ({err}); "
                              f"export again: {_FIX}") from None
    actor = ExportedActor(module.eval(), module_id=module_id, **settings)
    with torch.no_grad():
        width = actor.logits(torch.zeros(1, actor.local_width)).shape[-1]
    lens = actor.input_lens
    if width != sum(lens):
        raise CheckpointError(f"{where}: the network gives {width} logits but input_lens "
                              f"{list(lens)} need {sum(lens)}; export again: {_FIX}")
    return actor


def _parse_entry(entry: Any) -> tuple[str, dict[str, Any]]:
    """The file name and the :class:`ExportedActor` settings of a manifest entry."""
    file = str(entry["file"])
    if Path(file).name != file:
        raise ValueError(f"file {file!r} is not a plain file name")
    votes = entry["votes"]
    return file, {"input_lens": tuple(int(n) for n in entry["input_lens"]),
                  "is_multi_discrete": bool(entry["is_multi_discrete"]),
                  "votes": None if votes is None else tuple(float(v) for v in votes),
                  "dropout": float(entry["dropout"]),
                  "local_width": int(entry["local_width"])}


def check_export(actors: Mapping[str, Any], exported: Mapping[str, Any], *,
                 samples: int = 256, seed: int = 0, tolerance: float = TOLERANCE,
                 mc_passes: int = CHECK_MC_PASSES) -> dict[str, float]:
    """Max |eager - exported| dropout-off logit difference per module id, on random inputs.

    Also checks that the greedy actions are equal and that the MC-dropout statistics
    (``mc_passes`` passes, same torch seed) agree within ``tolerance``; raises
    :class:`ExportMismatchError` otherwise. The global torch generator is left as it was.
    """
    missing = sorted(set(actors) - set(exported))
    if missing:
        raise ExportMismatchError(f"exported actors lack module(s) {missing}")
    out: dict[str, float] = {}
    gen = torch.Generator().manual_seed(seed)
    for module_id, eager in sorted(actors.items()):
        other = exported[module_id]
        _check_interface(module_id, eager, other)
        x = 3.0 * torch.randn(samples, _width(eager), generator=gen)
        with torch.no_grad():
            a, b = eager.logits(x), other.logits(x)
        out[module_id] = float((a - b).abs().max())
        if not out[module_id] <= tolerance:
            raise ExportMismatchError(
                f"module {module_id!r}: exported logits differ from eager by "
                f"{out[module_id]:.3g} > {tolerance:g}")
        _check_greedy(module_id, eager.input_lens, a, b)
        _check_mc(module_id, eager, other, x[:16], seed, mc_passes, tolerance)
    return out


def _check_interface(module_id: str, eager: Any, other: Any) -> None:
    """Equal action heads, votes and input width."""
    votes = [None if v is None else v.tolist() for v in (eager.votes, other.votes)]
    same = (tuple(eager.input_lens) == tuple(other.input_lens)
            and bool(eager.is_multi_discrete) == bool(other.is_multi_discrete)
            and votes[0] == votes[1] and _width(eager) == _width(other))
    if not same:
        raise ExportMismatchError(
            f"module {module_id!r}: heads/votes/width differ: eager "
            f"{tuple(eager.input_lens)}, {votes[0]}, {_width(eager)}; exported "
            f"{tuple(other.input_lens)}, {votes[1]}, {_width(other)}")


def _check_greedy(module_id: str, lens: tuple[int, ...], a: Tensor, b: Tensor) -> None:
    """The argmax of every head is the same."""
    for ha, hb in zip(torch.split(a, list(lens), -1), torch.split(b, list(lens), -1),
                      strict=True):
        differ = int((ha.argmax(-1) != hb.argmax(-1)).sum())
        if differ:
            raise ExportMismatchError(
                f"module {module_id!r}: {differ} of {len(a)} greedy actions differ")


def _check_mc(module_id: str, eager: Any, other: Any, x: Tensor, seed: int, passes: int,
              tolerance: float) -> None:
    """MC statistics under the same seed agree (scripted dropout draws the eager masks)."""
    stats = []
    with torch.random.fork_rng(devices=[]):
        for actor in (eager, other):
            torch.manual_seed(seed)
            stats.append(actor_mc_stats(actor, x, passes))
    gap = float((stats[0] - stats[1]).abs().max())
    if not gap <= tolerance:
        raise ExportMismatchError(
            f"module {module_id!r}: MC-dropout statistics under the same seed differ by "
            f"{gap:.3g} > {tolerance:g} (the exported dropout draws other masks)")
