"""The only code that touches meta-dataset files.

A store is a directory:

    runs/part-<time_ns>-<pid>-<uuid>.parquet      immutable appended parts (rows of RUN_SCHEMA)
    runs/snapshot-<time_ns>-<hash>.parquet        written by `compact`, replaces the parts it read
    features/part-*.parquet, features/snapshot-*  the same for FEATURE_SCHEMA rows
    manifest.json                                 written by `compact`: rows, content hash, ...

Every file is written under a temporary name (".tmp-*", never read) in the same directory,
flushed and fsync'd, then `os.replace`d into place, so a reader sees a part entirely or not at
all and a crash mid-write leaves only an ignorable temp file. Writers never modify or delete a
file another writer may be reading; only `compact` deletes, and only the parts it has read and
folded into its snapshot, so appends that race with a compaction are kept.

Reads de-duplicate: one row per (run_key, epoch), the most recently written wins (for features:
one per (dataset, model, name)). Appending the same rows twice is therefore harmless.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from quicktune.metadataset.schema import (
    FEATURE_COLUMNS,
    FEATURE_SCHEMA,
    RUN_COLUMNS,
    RUN_SCHEMA,
    SCHEMA_VERSION,
    STATUSES,
)

MANIFEST = "manifest.json"
_KINDS = {"runs": (RUN_SCHEMA, ["run_key", "epoch"]), "features": (FEATURE_SCHEMA, ["dataset", "model", "name"])}


class StoreError(ValueError):
    """A meta-dataset store is missing, malformed, or was given rows that break the schema."""


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _atomic_write_table(table: pa.Table, dest: Path) -> None:
    tmp = dest.parent / f".tmp-{uuid.uuid4().hex}-{dest.name}"
    try:
        with open(tmp, "wb") as f:
            pq.write_table(table, f, compression="zstd")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(dest.parent)


def _atomic_write_text(text: str, dest: Path) -> None:
    tmp = dest.parent / f".tmp-{uuid.uuid4().hex}-{dest.name}"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, dest)
    _fsync_dir(dest.parent)


def _to_table(rows: pd.DataFrame | Iterable[Mapping[str, Any]], schema: pa.Schema) -> pa.Table:
    df = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    missing = [c for c in schema.names if c not in df.columns and c != "written_at"]
    if missing:
        raise StoreError(f"rows must have every schema column, but these are missing: {missing}")
    extra = sorted(set(df.columns) - set(schema.names))
    if extra:
        raise StoreError(f"rows may only have schema columns, but got unknown columns: {extra}")
    df = df.copy()
    if "written_at" not in df.columns or df["written_at"].isna().any():
        df["written_at"] = time.time()
    try:
        return pa.Table.from_pandas(df[schema.names], schema=schema, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise StoreError(f"rows do not fit the schema: {e}") from None


class MetaDatasetStore:
    """Append-only Parquet store of learning curves (see the module docstring for the layout)."""

    def __init__(self, root: str | os.PathLike[str], create: bool = True) -> None:
        self.root = Path(root)
        if not create and not self.root.is_dir():
            raise StoreError(f"no meta-dataset store at {str(self.root)!r} (the directory does not exist)")
        if create:
            for kind in _KINDS:
                (self.root / kind).mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"MetaDatasetStore({str(self.root)!r})"

    # -- writing ------------------------------------------------------------------------------
    def _append(self, kind: str, rows: pd.DataFrame | Iterable[Mapping[str, Any]]) -> Path | None:
        schema, _ = _KINDS[kind]
        table = _to_table(rows, schema)
        if table.num_rows == 0:
            return None
        directory = self.root / kind
        directory.mkdir(parents=True, exist_ok=True)
        dest = directory / f"part-{time.time_ns()}-{os.getpid()}-{uuid.uuid4().hex[:12]}.parquet"
        _atomic_write_table(table, dest)
        return dest

    def append(self, rows: pd.DataFrame | Iterable[Mapping[str, Any]]) -> Path | None:
        """Atomically append run/epoch rows (RUN_SCHEMA columns) as one immutable part file."""
        df = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
        if len(df):
            bad = sorted(set(df["status"]) - set(STATUSES)) if "status" in df else []
            if bad:
                raise StoreError(f"`status` must be one of {STATUSES}, but got {bad}")
            if "epoch" in df and (df["epoch"] < 1).any():
                raise StoreError(f"`epoch >= 1` must hold, but got min epoch {int(df['epoch'].min())}")
        return self._append("runs", df)

    def append_features(self, rows: pd.DataFrame | Iterable[Mapping[str, Any]]) -> Path | None:
        """Atomically append feature rows (dataset, model ('' for dataset-level), name, value)."""
        return self._append("features", rows)

    # -- reading ------------------------------------------------------------------------------
    def _files(self, kind: str) -> list[Path]:
        directory = self.root / kind
        if not directory.is_dir():
            return []
        return sorted(p for p in directory.iterdir() if p.suffix == ".parquet" and not p.name.startswith(".tmp-"))

    def _read(self, kind: str, files: list[Path] | None = None) -> pd.DataFrame:
        schema, key = _KINDS[kind]
        files = self._files(kind) if files is None else files
        tables = []
        for p in files:
            try:
                tables.append(pq.read_table(p, schema=schema))
            except FileNotFoundError:
                continue  # folded into a snapshot by a concurrent compaction; the snapshot is read below
        if not tables:
            return schema.empty_table().to_pandas()
        df = pa.concat_tables(tables).to_pandas()
        df = df.sort_values("written_at", kind="stable").drop_duplicates(key, keep="last")
        return df.sort_values(key, kind="stable").reset_index(drop=True)

    def read(self, datasets: Iterable[str] | None = None) -> pd.DataFrame:
        """All run/epoch rows, one per (run_key, epoch), optionally only for some datasets."""
        for _ in range(3):
            files = self._files("runs")
            df = self._read("runs", files)
            # A compaction may have replaced parts between listing and reading; if a listed part
            # vanished, list again so the snapshot that replaced it is read.
            if all(p.exists() for p in files):
                break
        if datasets is not None:
            df = df[df["dataset"].isin(list(datasets))].reset_index(drop=True)
        return df

    def read_features(self) -> pd.DataFrame:
        """All feature rows, one per (dataset, model, name)."""
        return self._read("features")

    def done_epochs(self) -> dict[str, int]:
        """run_key -> highest epoch recorded (a run may be continued from there)."""
        df = self.read()
        if df.empty:
            return {}
        return {str(k): int(v) for k, v in df.groupby("run_key")["epoch"].max().items()}

    def is_empty(self) -> bool:
        return not self._files("runs")

    # -- maintenance --------------------------------------------------------------------------
    def compact(self) -> dict[str, Any]:
        """Fold every part into one snapshot per kind and write manifest.json.

        Only the files read here are deleted, after the snapshot is in place, so concurrent
        appends survive. Returns the manifest.
        """
        manifest: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "created_at": time.time()}
        for kind, (schema, key) in _KINDS.items():
            files = self._files(kind)
            df = self._read(kind, files)
            table = pa.Table.from_pandas(df[schema.names], schema=schema, preserve_index=False)
            digest = content_hash(df, key)
            if files:
                dest = self.root / kind / f"snapshot-{time.time_ns()}-{digest[:12]}.parquet"
                _atomic_write_table(table, dest)
                for p in files:
                    p.unlink(missing_ok=True)
                _fsync_dir(self.root / kind)
            manifest[kind] = {"rows": int(len(df)), "content_hash": digest}
            for stale in (self.root / kind).glob(".tmp-*"):
                if time.time() - stale.stat().st_mtime > 3600:  # an hour-old temp is a crashed writer's
                    stale.unlink(missing_ok=True)
        runs = self.read()
        manifest["runs"].update(
            datasets=sorted(runs["dataset"].unique().tolist()),
            models=sorted(runs["model"].unique().tolist()),
            n_runs=int(runs["run_key"].nunique()),
            total_seconds=float(runs["seconds"].sum()),
        )
        _atomic_write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", self.root / MANIFEST)
        return manifest

    def manifest(self) -> dict[str, Any] | None:
        p = self.root / MANIFEST
        return json.loads(p.read_text()) if p.exists() else None


def content_hash(df: pd.DataFrame, key: list[str]) -> str:
    """SHA-256 of the de-duplicated rows in key order, ignoring `written_at` (so re-compacting the
    same content, or appending the same rows again, gives the same hash)."""
    cols = [c for c in df.columns if c != "written_at"]
    body = df[cols].sort_values(key, kind="stable").to_csv(index=False, float_format="%.10g")
    return hashlib.sha256(body.encode()).hexdigest()
