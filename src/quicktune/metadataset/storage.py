"""The only code that touches meta-dataset files (with `parts`, which reads and writes one part).

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

import json
import os
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from quicktune.atomic import TMP_PREFIX, atomic_write, fsync_dir
from quicktune.metadataset.parts import (
    _KINDS,
    _atomic_write_table,
    _frame,
    _read_part,
    _to_table,
    _validate_runs,
    content_hash,
)
from quicktune.metadataset.parts import StoreError as StoreError  # its error, raised here too
from quicktune.metadataset.schema import SCHEMA_VERSION, FeatureSettings

MANIFEST = "manifest.json"
FEATURE_SETTINGS = "feature_settings.json"


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
        frames = []
        for p in files:
            try:
                frames.append(_read_part(p, kind))
            except FileNotFoundError:
                continue  # folded into a snapshot by a concurrent compaction; the snapshot is read below
        frames = [f for f in frames if len(f)]
        if not frames:
            return schema.empty_table().to_pandas()
        df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
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
        snapshots: dict[str, tuple[str, str]] = {}  # kind -> (snapshot file, its content hash)
        for kind, (schema, key) in _KINDS.items():
            directory = self.root / kind
            files = self._files(kind)
            if files and not (len(files) == 1 and files[0].name.startswith("snapshot-")):
                df = self._read(kind, files)  # StoreError on a foreign or bad part: nothing is deleted
                table = pa.Table.from_pandas(df[schema.names], schema=schema, preserve_index=False)
                dest = directory / f"snapshot-{time.time_ns()}-{uuid.uuid4().hex[:12]}.parquet"
                _atomic_write_table(table, dest)
                for p in files:
                    p.unlink(missing_ok=True)
                fsync_dir(directory)
                snapshots[kind] = (dest.name, content_hash(df, key))
            elif files:
                snapshots[kind] = (files[0].name, content_hash(self._read(kind, files), key))
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
            if kind in snapshots:
                manifest[kind].update(snapshot=snapshots[kind][0], snapshot_hash=snapshots[kind][1])
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

    def verify_manifest(self) -> list[str]:
        """Check the store against manifest.json; returns notes (e.g. parts appended since the
        compaction), raises StoreError when content the manifest vouches for has changed.

        What is checked per kind: the snapshot the manifest names still hashes to the recorded
        value (a manifest from before snapshot hashes were recorded: when the store holds only one
        snapshot, the whole content must hash to the recorded content hash).
        """
        path = self.root / MANIFEST
        if not path.exists():
            return []
        try:
            manifest = json.loads(path.read_text())
            if not isinstance(manifest, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as e:
            raise StoreError(f"{path}: unreadable manifest ({str(e).splitlines()[0]}); rerun `quicktune metadataset "
                             f"compact {self.root}` to rewrite it") from None
        notes = []
        for kind, (_schema, key) in _KINDS.items():
            entry = manifest.get(kind)
            if not isinstance(entry, dict):
                continue
            files = self._files(kind)
            if "snapshot_hash" in entry:
                snap = self.root / kind / str(entry.get("snapshot"))
                if not snap.exists():
                    if not any(p.name.startswith("snapshot-") for p in files):
                        raise StoreError(f"{snap}: missing, but {path} records it ({entry.get('rows')} rows "
                                         "at compaction); the store lost content")
                    notes.append(f"{path}: names {kind}/{snap.name}, which a later compaction replaced; "
                                 "not verified")
                    continue
                got, want = content_hash(self._read(kind, [snap]), key), entry["snapshot_hash"]
                checked = snap
                later = [p for p in files if p != snap]
            elif not files and not entry.get("rows"):
                continue  # nothing was compacted, nothing is there
            elif len(files) == 1 and files[0].name.startswith("snapshot-"):
                got, want, checked, later = content_hash(self._read(kind, files), key), entry.get("content_hash"), files[0], []
            else:
                notes.append(f"{path}: {kind} has changed since the manifest was written; not verified")
                continue
            if got != want:
                raise StoreError(f"{checked}: content hash {got[:16]} differs from {want!s:.16} recorded in {path} "
                                 "(the file was changed after compaction)")
            if later:
                notes.append(f"{kind}: {len(later)} part(s) appended since the last compaction")
        return notes

    def manifest(self) -> dict[str, Any] | None:
        p = self.root / MANIFEST
        return json.loads(p.read_text()) if p.exists() else None

