"""Part files: the rows of one append (or one compaction) as a Parquet file, checked against the
schema and its row rules on the way in and out, and the content hash of a set of rows.

`storage.MetaDatasetStore` lays the parts out in a store directory; this module reads and writes
one file at a time.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from quicktune.atomic import atomic_write
from quicktune.metadataset.schema import FEATURE_SCHEMA, RUN_SCHEMA, STATUSES

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
    if "max_epochs" in df and "epoch" in df:
        over = df[pd.to_numeric(df["epoch"], errors="coerce") > pd.to_numeric(df["max_epochs"], errors="coerce")]
        if len(over):
            raise StoreError(f"`epoch <= max_epochs` must hold, but got epoch={over['epoch'].iat[0]} "
                             f"with max_epochs={over['max_epochs'].iat[0]}")
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


def _validate_features(df: pd.DataFrame) -> None:
    for col in ("dataset", "name"):
        if (df[col].isna() | (df[col].astype(str) == "")).any():
            raise StoreError(f"`{col}` must be a non-empty string on every row, but some rows have none")
    if df["model"].isna().any():
        raise StoreError("`model` must be a string on every row ('' for dataset-level features), but some rows have none")


_VALIDATE = {"runs": _validate_runs, "features": _validate_features}


def _read_part(p: Path, kind: str) -> pd.DataFrame:
    """The rows of one part file, checked against the schema and the row rules.

    A file that is not one of ours (another schema, wrong types, out-of-range values) raises a
    one-line StoreError naming it: reads never guess, and `compact` never folds such a file into
    a snapshot (it would then delete the evidence). FileNotFoundError passes through (a
    concurrent compaction folded the part into its snapshot).
    """
    schema, _ = _KINDS[kind]
    try:
        f = pq.ParquetFile(p)
        have = f.schema_arrow
    except FileNotFoundError:
        raise
    except (pa.ArrowInvalid, OSError) as e:
        # Parts are written atomically, so this is outside damage: say which file.
        raise StoreError(f"{p}: unreadable part file ({str(e).splitlines()[0]})") from None
    missing = [n for n in schema.names if n not in have.names]
    extra = sorted(set(have.names) - set(schema.names))
    if missing or extra:
        names = missing or extra
        shown = ", ".join(names[:4]) + (f", ... ({len(names)} in all)" if len(names) > 4 else "")
        what = f"missing columns {shown}" if missing else f"unknown columns {shown}"
        raise StoreError(f"{p}: not a {kind} part of a quicktune store ({what}); move it out of {p.parent}")
    try:
        table = f.read(columns=schema.names).cast(schema)
    except FileNotFoundError:
        raise
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OSError) as e:
        raise StoreError(f"{p}: columns do not fit the {kind} schema ({str(e).splitlines()[0]}); "
                         f"move it out of {p.parent}") from None
    df = table.to_pandas()
    try:
        _VALIDATE[kind](df)
    except StoreError as e:
        raise StoreError(f"{p}: {e}; move it out of {p.parent}") from None
    return df


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
