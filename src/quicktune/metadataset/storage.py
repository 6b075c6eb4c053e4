"""The only code that touches meta-dataset files.

A store is a directory:

    runs/part-<time_ns>-<pid>-<uuid>.parquet      immutable appended parts (rows of RUN_SCHEMA)
    runs/snapshot-<time_ns>-<uuid>.parquet        written by `compact`, replaces the parts it read
    features/part-*.parquet, features/snapshot-*  the same for FEATURE_SCHEMA rows
    manifest.json                                 written by `compact`: rows, content hash, ...
    feature_settings.json                         how its domain features were computed
                                                  (absent: the v1 defaults, `FeatureSettings()`)

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

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from quicktune.atomic import TMP_PREFIX, atomic_write, fsync_dir
from quicktune.metadataset.schema import (
    FEATURE_SCHEMA,
    RUN_SCHEMA,
    SCHEMA_VERSION,
    STATUSES,
    FeatureSettings,
)

MANIFEST = "manifest.json"
FEATURE_SETTINGS = "feature_settings.json"
_KINDS = {"runs": (RUN_SCHEMA, ["run_key", "epoch"]), "features": (FEATURE_SCHEMA, ["dataset", "model", "name"])}


class StoreError(ValueError):
    """A meta-dataset store is missing, malformed, or was given rows that break the schema."""


def _atomic_write_table(table: pa.Table, dest: Path) -> None:
    with atomic_write(dest, sync_dir=True) as f:
        pq.write_table(table, f, compression="zstd")


def _frame(rows: pd.DataFrame | Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    return rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))


def _to_table(df: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    missing = [c for c in schema.names if c not in df.columns and c != "written_at"]
    if missing:
        raise StoreError(f"rows must have every schema column, but these are missing: {missing}")
    extra = sorted(set(df.columns) - set(schema.names))
    if extra:
        raise StoreError(f"rows may only have schema columns, but got unknown columns: {extra}")
    df = df.copy()
    now = time.time()
    df["written_at"] = df["written_at"].fillna(now) if "written_at" in df.columns else now
    try:
        return pa.Table.from_pandas(df[schema.names], schema=schema, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as e:
        raise StoreError(f"rows do not fit the schema: {str(e).splitlines()[0]}") from None


def _validate_runs(df: pd.DataFrame) -> None:
    """Reject run rows that break the schema's rules, naming the rule and an offending value."""
    for col in ("run_key", "dataset", "model", "status"):
        if col in df and (df[col].isna() | (df[col].astype(str) == "")).any():
            raise StoreError(f"`{col}` must be a non-empty string on every row, but some rows have none")
    if "status" in df:
        bad = sorted(set(df["status"].astype(str)) - set(STATUSES))
        if bad:
            raise StoreError(f"`status` must be one of {STATUSES}, but got {bad}")
    for col in ("epoch", "seed", "max_epochs"):
        if col in df and df[col].isna().any():
            raise StoreError(f"`{col}` must be set on every row, but some rows have none")
    if "epoch" in df and (pd.to_numeric(df["epoch"], errors="coerce") < 1).any():
        raise StoreError(f"`epoch >= 1` must hold, but got min epoch {df['epoch'].min()}")
    if "val_acc" in df:
        acc = pd.to_numeric(df["val_acc"], errors="coerce")
        bad_acc = acc[(acc < 0) | (acc > 1)]
        if len(bad_acc):
            raise StoreError(f"`0 <= val_acc <= 1` must hold (a fraction, not %), but got val_acc={float(bad_acc.iat[0])!r}")
    if "seconds" in df:
        sec = pd.to_numeric(df["seconds"], errors="coerce")
        bad_sec = sec[sec < 0]
        if len(bad_sec):
            raise StoreError(f"`seconds >= 0` must hold, but got seconds={float(bad_sec.iat[0])!r}")


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
    def _append(self, kind: str, df: pd.DataFrame) -> Path | None:
        schema, _ = _KINDS[kind]
        if len(df) == 0:
            return None
        table = _to_table(df, schema)
        directory = self.root / kind
        directory.mkdir(parents=True, exist_ok=True)
        dest = directory / f"part-{time.time_ns()}-{os.getpid()}-{uuid.uuid4().hex[:12]}.parquet"
        _atomic_write_table(table, dest)
        return dest

    def append(self, rows: pd.DataFrame | Iterable[Mapping[str, Any]]) -> Path | None:
        """Atomically append run/epoch rows (RUN_SCHEMA columns) as one immutable part file."""
        df = _frame(rows)
        if len(df):
            _validate_runs(df)
        return self._append("runs", df)

    def append_features(self, rows: pd.DataFrame | Iterable[Mapping[str, Any]]) -> Path | None:
        """Atomically append feature rows (dataset, model ('' for dataset-level), name, value)."""
        return self._append("features", _frame(rows))

    def record_feature_settings(self, settings: FeatureSettings) -> None:
        """Record how the store's domain features are computed. One store holds features of one
        setting only: a different one than recorded (or than the v1 default of a store that
        already has domain features) is refused."""
        recorded = (self.root / FEATURE_SETTINGS).exists()
        have = self.feature_settings()
        if have != settings and (recorded or self._has_domain_features()):
            raise StoreError(
                f"{self.root}: its domain features were computed with {have}, not {settings}; "
                f"one store holds features of one setting"
            )
        if not recorded:
            with atomic_write(self.root / FEATURE_SETTINGS, mode="w") as f:
                f.write(json.dumps(settings.to_dict(), sort_keys=True) + "\n")

    def feature_settings(self) -> FeatureSettings:
        """How the store's domain features were computed (the v1 defaults when not recorded)."""
        p = self.root / FEATURE_SETTINGS
        if not p.exists():
            return FeatureSettings()
        try:
            return FeatureSettings.from_dict(json.loads(p.read_text()))
        except (ValueError, TypeError, AttributeError) as e:
            raise StoreError(f"{p}: not a feature-settings file ({str(e).splitlines()[0]})") from None

    def _has_domain_features(self) -> bool:
        df = self.read_features()
        return bool(len(df) and (df["model"] != "").any())

    # -- reading ------------------------------------------------------------------------------
    def _files(self, kind: str) -> list[Path]:
        directory = self.root / kind
        if not directory.is_dir():
            return []
        return sorted(p for p in directory.iterdir() if p.suffix == ".parquet" and not p.name.startswith(TMP_PREFIX))

    def _read(self, kind: str, files: list[Path] | None = None) -> pd.DataFrame:
        schema, key = _KINDS[kind]
        files = self._files(kind) if files is None else files
        tables = []
        for p in files:
            try:
                tables.append(pq.read_table(p, schema=schema))
            except FileNotFoundError:
                continue  # folded into a snapshot by a concurrent compaction; the snapshot is read below
            except (pa.ArrowInvalid, OSError) as e:
                # Parts are written atomically, so this is outside damage: say which file.
                raise StoreError(f"{p}: unreadable part file ({str(e).splitlines()[0]})") from None
        if not tables:
            return schema.empty_table().to_pandas()
        df = pa.concat_tables(tables).to_pandas()
        df = df.sort_values("written_at", kind="stable").drop_duplicates(key, keep="last")
        return df.sort_values(key, kind="stable").reset_index(drop=True)

    def read(self, datasets: Iterable[str] | None = None) -> pd.DataFrame:
        """All run/epoch rows, one per (run_key, epoch), optionally only for some datasets."""
        df = self._read_consistent("runs")
        if datasets is not None:
            df = df[df["dataset"].isin(list(datasets))].reset_index(drop=True)
        return df

    def read_features(self) -> pd.DataFrame:
        """All feature rows, one per (dataset, model, name)."""
        return self._read_consistent("features")

    def _read_consistent(self, kind: str) -> pd.DataFrame:
        for _ in range(20):
            files = self._files(kind)
            df = self._read(kind, files)
            # A compaction may have replaced parts between listing and reading; if a listed part
            # vanished, list again so the snapshot that replaced it is read.
            if all(p.exists() for p in files):
                return df
        raise StoreError(f"{self.root / kind}: files kept changing while being read (20 attempts); retry")

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

        Only the files read here are deleted, after the snapshot is in place, so appends that race
        with the compaction survive (as parts next to the snapshot). The manifest describes what
        the store holds once the compaction is done. Returns the manifest.
        """
        for kind, (schema, _key) in _KINDS.items():
            directory = self.root / kind
            files = self._files(kind)
            if files and not (len(files) == 1 and files[0].name.startswith("snapshot-")):
                df = self._read(kind, files)
                table = pa.Table.from_pandas(df[schema.names], schema=schema, preserve_index=False)
                dest = directory / f"snapshot-{time.time_ns()}-{uuid.uuid4().hex[:12]}.parquet"
                _atomic_write_table(table, dest)
                for p in files:
                    p.unlink(missing_ok=True)
                fsync_dir(directory)
            for stale in directory.glob(f"{TMP_PREFIX}*") if directory.is_dir() else ():
                try:
                    if time.time() - stale.stat().st_mtime > 3600:  # an hour-old temp is a crashed writer's
                        stale.unlink(missing_ok=True)
                except FileNotFoundError:
                    pass  # a live writer just renamed it into place
        manifest: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "created_at": time.time()}
        for kind, (_schema, key) in _KINDS.items():
            df = self._read_consistent(kind)
            manifest[kind] = {"rows": int(len(df)), "content_hash": content_hash(df, key)}
            if kind == "runs":
                manifest[kind].update(
                    datasets=sorted(df["dataset"].unique().tolist()),
                    models=sorted(df["model"].unique().tolist()),
                    n_runs=int(df["run_key"].nunique()),
                    total_seconds=float(df["seconds"].sum()),
                )
        with atomic_write(self.root / MANIFEST, "w", sync_dir=True) as f:
            f.write(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        return manifest

    def manifest(self) -> dict[str, Any] | None:
        p = self.root / MANIFEST
        return json.loads(p.read_text()) if p.exists() else None


def content_hash(df: pd.DataFrame, key: list[str]) -> str:
    """SHA-256 of the de-duplicated rows in key order, ignoring `written_at` (so re-compacting the
    same content, or appending the same rows again, gives the same hash).

    Hashed column by column (name, then the values: numbers as little-endian IEEE/int64 bytes with
    one canonical NaN, strings joined by a separator), which is fast and independent of how any
    library formats numbers as text.
    """
    cols = [c for c in df.columns if c != "written_at"]
    body = df[cols].sort_values(key, kind="stable")
    h = hashlib.sha256()
    for c in cols:
        h.update(f"\x1e{c}\x1e".encode())
        col = body[c]
        if pd.api.types.is_integer_dtype(col.dtype) or pd.api.types.is_bool_dtype(col.dtype):
            h.update(np.ascontiguousarray(col.to_numpy(dtype=np.int64), dtype="<i8").tobytes())
        elif pd.api.types.is_float_dtype(col.dtype):
            x = col.to_numpy(dtype=np.float64)
            x = np.where(np.isnan(x), np.nan, x)  # one NaN bit pattern
            h.update(np.ascontiguousarray(x, dtype="<f8").tobytes())
        else:
            values = col.fillna("\x00").tolist()
            try:
                text = "\x1f".join(values)
            except TypeError:  # non-string objects
                text = "\x1f".join(map(str, values))
            h.update(text.encode())
    return h.hexdigest()
