"""A :class:`~algospace.inference.stream.MarketStream` saved after any bar and restored.

The state is one ``.npz`` file, written atomically (:func:`algospace.files.atomic_write`):
the bars received, the open 30-minute bucket, every table computed so far (features,
synergy rows and the synergy detector's carried state, latents) and the derived env rows,
with a JSON header holding the prepared-data meta and the stream's settings. A restored
stream therefore continues exactly where the saved one stood — the same arrays, row for
row, so the same decisions — without recomputing anything over the history. The regime
encoder's weights are not in the file: the header names its checkpoint, which
:func:`restore_stream` loads again (or pass the encoder).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from algospace.data.contracts import ContractSpec
from algospace.data.splits import Splits
from algospace.errors import DataError
from algospace.files import atomic_write

if TYPE_CHECKING:
    from algospace.inference.stream import MarketStream, RegimeEncoder

STATE_VERSION = 2
"""Bump when what the saved state holds changes (2: the MMD sums, MLMI's recurrences)."""
_GROWING = ("_times", "_values", "_index", "_strat_times", "_strat_values", "_tactical",
            "_synergy_rows", "_latents", "_strat_table", "_strat_returns")
"""The stream's growing arrays, saved as they are."""


def save_stream(stream: MarketStream, path: str | Path) -> Path:
    """Write ``stream``'s state to ``path`` (atomically: a reader sees the old file or the
    new one, never a part)."""
    regime = stream.regime
    header = {
        "version": STATE_VERSION, "meta": stream.meta, "atr_bars": stream.atr_bars,
        "contract": asdict(stream.contract),
        "splits": None if stream._splits is None else asdict(stream._splits),
        "regime": None if regime is None else {"source": regime.source,
                                               "window": regime.window},
        "bucket": stream._bucket, "bucket_first": stream._bucket_first,
        "rows_done": list(stream._rows_done)}
    try:
        text = json.dumps(header)
    except TypeError as exc:
        raise DataError(f"the stream's meta cannot be saved as JSON: {exc}") from exc
    arrays: dict[str, np.ndarray] = {"header": np.array(text)}
    arrays.update({f"grow{name}": getattr(stream, name).view for name in _GROWING})
    arrays.update({f"synergy_{k}": v for k, v in stream._synergy.state().items()})
    arrays.update(stream._mmd.state())
    arrays.update(stream._mlmi.state())
    rows = stream._rows_done
    arrays.update({f"buffer_{name}": buffer[:rows[1] if name in _strategic_arrays() else rows[0]]
                   for name, buffer in stream._buffers.items()})

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez adds no ".npz" to the name
            np.savez(f, allow_pickle=False, **arrays)

    return atomic_write(path, write)


def restore_stream(path: str | Path, regime: RegimeEncoder | None = None) -> MarketStream:
    """The stream saved at ``path`` by :func:`save_stream`, ready for its next bar.

    ``regime``: the regime encoder, when the saved stream had one; None loads it from the
    checkpoint the state names.
    """
    from algospace.inference.stream import MarketStream, RegimeEncoder

    path = Path(path)
    if not path.is_file():
        raise DataError(f"no saved stream state at {path}",
                        fix="save one with save_stream(stream, path) after any bar")
    try:
        with np.load(path, allow_pickle=False) as z:
            header = json.loads(str(z["header"]))
            arrays = {name: z[name] for name in z.files if name != "header"}
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{path} is not a saved stream state ({exc})",
                        fix="pass the file save_stream wrote") from exc
    if header.get("version") != STATE_VERSION:
        raise DataError(f"{path} holds stream state version {header.get('version')}; this "
                        f"code reads version {STATE_VERSION}",
                        fix="warm a new stream up from the bars' history instead")
    saved_regime = header["regime"]
    if saved_regime is None and regime is not None:
        raise DataError(f"the stream saved at {path} had no regime encoder, so it has no "
                        "latents to continue from", fix="restore it without one")
    if saved_regime is not None and regime is None:
        if not saved_regime["source"]:
            raise DataError(f"the stream saved at {path} used a regime encoder built in "
                            "code, which the state cannot name",
                            fix="pass it: restore_stream(path, regime=encoder)")
        regime = RegimeEncoder.load(saved_regime["source"])
    splits = header["splits"]
    stream = MarketStream(
        header["meta"], atr_bars=int(header["atr_bars"]), regime=regime,
        splits=None if splits is None else Splits(**{k: tuple(v) for k, v in splits.items()}),
        contract=ContractSpec(**header["contract"]))
    for name in _GROWING:
        getattr(stream, name).put(0, arrays[f"grow{name}"])
    stream._synergy.load_state({k[len("synergy_"):]: v for k, v in arrays.items()
                                if k.startswith("synergy_")})
    stream._mmd.load_state(arrays)
    stream._mlmi.load_state(arrays)
    stream._buffers = {k[len("buffer_"):]: v for k, v in arrays.items()
                       if k.startswith("buffer_")}
    stream._bucket = header["bucket"]
    stream._bucket_first = int(header["bucket_first"])
    stream._rows_done = (int(header["rows_done"][0]), int(header["rows_done"][1]))
    if stream._buffers:
        stream._bind()
    return stream


def _strategic_arrays() -> tuple[str, ...]:
    from algospace.inference.stream import _STRATEGIC_ARRAYS

    return _STRATEGIC_ARRAYS
