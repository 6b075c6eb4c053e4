"""Merging meta-datasets: add your own collected runs to the embedded (or any) meta-dataset, so
`metatrain` learns from both.

Sources are stores or Quick-Tune-format folders; the output is a store (new, or an existing one
that receives the others' rows). Rows are appended as they are (run keys, `written_at`), so a run
present in two sources stays one run on read. Two things would make the merged table lie, and are
refused with one line: the same dataset name with different dataset descriptors (two different
tasks under one name), domain features computed with different `FeatureSettings`, and runs of
different epoch horizons (meta-training needs one).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from quicktune.metadataset.schema import FeatureSettings
from quicktune.metadataset.storage import MetaDatasetStore, StoreError


def _settings_of(path: Path, features: pd.DataFrame) -> FeatureSettings | None:
    """The feature settings of a source's domain features (None when it has none)."""
    from quicktune.metadataset.loading import is_store_dir

    if not len(features) or not (features["model"] != "").any():
        return None
    return MetaDatasetStore(path, create=False).feature_settings() if is_store_dir(path) else FeatureSettings()


def _check_descriptors(frames: Sequence[tuple[Path, pd.DataFrame]]) -> None:
    seen: dict[tuple[str, str], tuple[Path, float]] = {}
    for path, feats in frames:
        if not len(feats):
            continue
        for r in feats[feats["model"] == ""].itertuples():
            key = (str(r.dataset), str(r.name))
            v = float(r.value)
            if key in seen and not (seen[key][1] == v or (math.isnan(v) and math.isnan(seen[key][1]))):
                raise StoreError(
                    f"dataset {key[0]!r} is in {seen[key][0]} and {path} with different {key[1]} "
                    f"({seen[key][1]:g} vs {v:g}): two tasks under one name; rename one (task option name=...)"
                )
            seen[key] = (path, v)


def merge_metadatasets(sources: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str]) -> dict[str, Any]:
    """Append every source's run and feature rows to the store `out` (created if missing; it may
    be one of the sources). Returns {"runs", "epochs", "datasets", "sources"} of the merged store."""
    from quicktune.metadataset.loading import is_store_dir, load_rows

    if len(sources) < 1:
        raise StoreError("give at least one meta-dataset to merge")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise StoreError(f"{out}: exists and is not a directory")
    if out.exists() and any(out.iterdir()) and not is_store_dir(out):
        raise StoreError(f"{out}: exists and is not a meta-dataset store (no runs/ folder)")
    loaded: list[tuple[Path, pd.DataFrame, pd.DataFrame]] = []
    for s in sources:
        p = Path(s)
        runs, feats = load_rows(p)  # StoreError, one line, for anything unreadable
        loaded.append((p, runs, feats))
    target: list[tuple[Path, pd.DataFrame]] = []
    if is_store_dir(out) and not any(p.resolve() == out.resolve() for p, _, _ in loaded):
        target = [(out, MetaDatasetStore(out, create=False).read_features())]
    _check_descriptors(target + [(p, f) for p, _, f in loaded])
    horizons = {p: sorted({int(h) for h in r["max_epochs"].unique()}) for p, r, _ in loaded}
    if target:
        horizons[out] = sorted({int(h) for h in MetaDatasetStore(out, create=False).read()["max_epochs"].unique()})
    if len({h for hs in horizons.values() for h in hs}) > 1:
        raise StoreError("meta-training needs one epoch horizon, but the meta-datasets have " + "; ".join(
            f"{p}: {', '.join(map(str, hs))} epochs" for p, hs in horizons.items() if hs) + "; collect with the same horizon")
    settings = {p: _settings_of(p, f) for p, f in target + [(p, f) for p, _, f in loaded]}
    distinct = {s for s in settings.values() if s is not None}
    if len(distinct) > 1:
        raise StoreError("domain features computed with different settings can not be merged: " + "; ".join(
            f"{p}: {s}" for p, s in settings.items() if s is not None))
    store = MetaDatasetStore(out)
    if distinct:
        store.record_feature_settings(distinct.pop())
    for p, runs, feats in loaded:
        if p.resolve() == out.resolve():
            continue  # already there
        store.append(runs)
        if len(feats):
            store.append_features(feats)
    merged = store.read()
    return {
        "runs": int(merged["run_key"].nunique()),
        "epochs": int(len(merged)),
        "datasets": int(merged["dataset"].nunique()),
        "sources": [str(p) for p, _, _ in loaded],
    }
