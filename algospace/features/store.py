"""The prepared-data store: Parquet tables plus ``meta.json``, keyed by content.

Each prepared dataset lives in ``<cache_dir>/<key>/`` where ``key`` is a hash
of the input files' bytes, the data/feature configuration and the store's
schema version — so editing a CSV or a setting gives a new entry, and a
second prepare of the same inputs reads the first one's.

Writes are atomic: tables are written into a temporary sibling directory
that is renamed into place only when complete, so a crash or Ctrl-C leaves
either nothing or a whole entry, never half of one. The set of tables is
open: later stages add theirs (features, regime latents) under new names,
each table file written beside its target and renamed into place, and
``meta.json`` updated under a lock (``.meta.lock`` in the entry) by merging
into what is there now, so two processes adding tables at once keep both.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from algospace.errors import DataError
from algospace.files import atomic_write, locked, publish_dir, write_bytes, write_text

SCHEMA_VERSION = 1
"""Bump when the layout or meaning of stored tables changes."""
META_LOCK = ".meta.lock"
"""Lock file of an entry: held while a process reads, merges and rewrites its meta.json."""


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def store_key(inputs: Iterable[str], config: Mapping[str, Any]) -> str:
    """Key of a store entry from input digests and a JSON-serialisable config."""
    payload = json.dumps(
        {"schema": SCHEMA_VERSION, "inputs": list(inputs), "config": config},
        sort_keys=True, default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


class FeatureStore:
    """A directory of prepared datasets."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        """Directory of entry ``key``."""
        return self.root / key

    def exists(self, key: str) -> bool:
        """Whether a complete entry ``key`` exists."""
        return (self.path(key) / "meta.json").is_file()

    def write(self, key: str, tables: Mapping[str, pd.DataFrame], meta: Mapping[str, Any]) -> Path:
        """Write an entry atomically; if another process wrote it first, keep theirs."""
        def fill(tmp: Path) -> None:
            for name, frame in tables.items():
                table = pa.Table.from_pandas(frame, preserve_index=True)
                pq.write_table(table, tmp / f"{name}.parquet")
            full_meta = {**meta, "key": key, "schema_version": SCHEMA_VERSION,
                         "tables": sorted(tables)}
            (tmp / "meta.json").write_text(json.dumps(full_meta, indent=2, default=str))

        publish_dir(self.path(key), fill, prefix=f".tmp-{key}-")
        return self.path(key)

    def add_table(self, key: str, name: str, frame: pd.DataFrame,
                  meta_update: Mapping[str, Any]) -> Path:
        """Add (or replace) one table of an existing entry, atomically, recording ``meta_update``.

        Used by later stages (e.g. regime latents). The table is written to a temporary file
        beside its target and renamed into place (a reader, or a second process writing the
        same table, never sees half of it); then ``meta.json`` is re-read, ``meta_update``
        merged into it (nested mappings key by key) and replaced in one rename, under the
        entry's lock, so concurrent writers of different tables keep each other's records.
        """
        self.meta(key)  # the entry must exist
        entry = self.path(key)
        table = pa.Table.from_pandas(frame, preserve_index=True)
        atomic_write(entry / f"{name}.parquet", lambda tmp: pq.write_table(table, tmp))
        self.update_meta(key, lambda meta: {**merge_meta(meta, meta_update),
                                            "tables": sorted({*meta["tables"], name})})
        return entry / f"{name}.parquet"

    def update_meta(self, key: str,
                    change: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
        """Replace entry ``key``'s ``meta.json`` with ``change(current meta)``, under the
        entry's lock (read, change and write happen as one step for other writers)."""
        entry = self.path(key)
        with locked(entry / META_LOCK):
            meta = change(self.meta(key))
            write_text(entry / "meta.json", json.dumps(meta, indent=2, default=str))
        return meta

    def meta(self, key: str) -> dict[str, Any]:
        """The entry's ``meta.json``."""
        if not self.exists(key):
            raise DataError(f"no prepared data with key {key}", path=self.root,
                            fix="run `algospace data prepare` first")
        return json.loads((self.path(key) / "meta.json").read_text())

    def read(self, key: str, name: str) -> pd.DataFrame:
        """One table of entry ``key``."""
        file = self.path(key) / f"{name}.parquet"
        if not file.is_file():
            raise DataError(f"table {name!r} is not in prepared data {key}", path=self.path(key),
                            fix="prepare the data again (`algospace data prepare --force`)")
        return pq.read_table(file).to_pandas()

    def files(self, key: str) -> dict[str, bytes]:
        """The entry's tables and ``meta.json`` as bytes (to copy it to another machine)."""
        entry = self.path(key)
        names = [f"{name}.parquet" for name in self.meta(key)["tables"]] + ["meta.json"]
        return {name: (entry / name).read_bytes() for name in names}

    def missing(self, key: str, tables: Iterable[str]) -> list[str]:
        """Which of ``tables`` entry ``key`` lacks (all of them when there is no entry)."""
        if not self.exists(key):
            return list(tables)
        return [t for t in tables if not (self.path(key) / f"{t}.parquet").is_file()]

    def put_files(self, key: str, files: Mapping[str, bytes]) -> Path:
        """Write an entry copied with :meth:`files`: a new entry whole, or the tables an
        existing one lacks (each file replaced in one rename), then the copied ``meta.json``
        merged into the entry's (under its lock; the entry's own records win)."""
        entry = self.path(key)
        if not self.exists(key):
            def fill(tmp: Path) -> None:
                for name, data in files.items():
                    (tmp / name).write_bytes(data)

            publish_dir(entry, fill, prefix=f".tmp-{key}-")
            return entry
        for name in files:  # the tables this entry lacks, then the merged meta.json
            if name != "meta.json" and not (entry / name).is_file():
                write_bytes(entry / name, files[name])
        if "meta.json" in files:
            shipped = json.loads(files["meta.json"])
            self.update_meta(key, lambda meta: {
                **merge_meta(shipped, meta),
                "tables": sorted({*meta["tables"], *shipped.get("tables", ())})})
        return entry

    def clean_temporary(self, older_than_s: float = 3600.0) -> int:
        """Remove temporary directories left by interrupted writes; return how many."""
        if not self.root.is_dir():
            return 0
        now = time.time()
        stale = [p for p in self.root.glob(".tmp-*")
                 if p.is_dir() and now - p.stat().st_mtime > older_than_s]
        for p in stale:
            shutil.rmtree(p, ignore_errors=True)
        return len(stale)


def merge_meta(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """``old`` updated with ``new``: nested mappings merged key by key, other values replaced."""
    out = dict(old)
    for name, value in new.items():
        if isinstance(value, Mapping) and isinstance(out.get(name), Mapping):
            out[name] = merge_meta(out[name], value)
        else:
            out[name] = value
    return out
