"""Open a meta-dataset from a path: a store directory or a Quick-Tune-format directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from quicktune.metadataset.importers import is_quicktune_dir, read_quicktune
from quicktune.metadataset.storage import MetaDatasetStore, StoreError
from quicktune.metadataset.tabular import CurveTable

# The embedded CPU meta-dataset (collected by metadataset/campaign/campaign_v1.py) ships with the
# source checkout, next to src/: the default of `quicktune benchmark` and `quicktune metatrain`.
EMBEDDED_METADATASET = Path(__file__).resolve().parents[3] / "metadataset" / "v1"


def embedded_metadataset() -> Path:
    """Path of the embedded meta-dataset (StoreError when this installation does not have it)."""
    if not (EMBEDDED_METADATASET / "runs").is_dir():
        raise StoreError(
            f"the embedded meta-dataset is not at {EMBEDDED_METADATASET} (it ships with the source checkout: "
            "install with `pip install -e .` from a clone, or pass a meta-dataset path)"
        )
    return EMBEDDED_METADATASET

def is_store_dir(path: str | Path) -> bool:
    """True when `path` looks like a MetaDatasetStore directory (it has a runs/ folder)."""
    return (Path(path) / "runs").is_dir()


def load_rows(path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(run rows, feature rows) of a store directory, or of a Quick-Tune-format directory read in
    memory (nothing is written). Raises StoreError with a one-line message for anything else."""
    p = Path(path)
    if not p.exists():
        raise StoreError(f"{p}: no such directory (expected a meta-dataset store or a Quick-Tune meta-dataset)")
    if is_store_dir(p):
        store = MetaDatasetStore(p, create=False)
        runs = store.read()
        if runs.empty:
            raise StoreError(f"{p}: the meta-dataset store holds no runs; import or collect some first")
        return runs, store.read_features()
    if p.is_dir() and (is_quicktune_dir(p) or (p / "table.csv").exists() or (p / "curves").is_dir()):
        return read_quicktune(p)  # a half-formed Quick-Tune dir gets the importer's precise error
    if p.is_dir() and any(is_quicktune_dir(p / v) for v in ("micro", "mini", "extended")):
        return read_quicktune(p)  # names the version subfolders to pass instead
    raise StoreError(
        f"{p}: neither a meta-dataset store (no runs/ folder) nor a Quick-Tune meta-dataset "
        f"(no table.csv + curves/perf.json)"
    )


def open_metadataset(path: str | Path) -> CurveTable:
    """The curves of a meta-dataset at `path` (a store directory or a Quick-Tune-format directory)."""
    runs, features = load_rows(path)
    return CurveTable(runs, features)


def summarize(runs: pd.DataFrame, features: pd.DataFrame | None = None) -> dict[str, Any]:
    """Counts of a meta-dataset's rows: datasets, models, runs, epochs, recorded compute.

    `per_dataset` lists, for each dataset, its runs, models, epochs, longest curve, best accuracy,
    recorded hours and its dataset-level features.
    """
    g = runs.groupby("dataset", sort=True)
    per = pd.DataFrame({
        "runs": g["run_key"].nunique(),
        "models": g["model"].nunique(),
        "epochs": g.size(),
        "max_epoch": g["epoch"].max(),
        "best_acc": g["val_acc"].max(),
        "hours": g["seconds"].sum() / 3600.0,
    })
    feats: dict[str, dict[str, float]] = {}
    if features is not None and len(features):
        f = features[features["model"] == ""]
        for r in f.itertuples(index=False):
            feats.setdefault(str(r.dataset), {})[str(r.name)] = float(r.value)
    per_dataset = [
        {"dataset": str(d), "runs": int(r.runs), "models": int(r.models), "epochs": int(r.epochs),
         "max_epoch": int(r.max_epoch), "best_acc": float(r.best_acc), "hours": float(r.hours),
         "features": feats.get(str(d), {})}
        for d, r in per.iterrows()
    ]
    return {
        "datasets": int(runs["dataset"].nunique()),
        "models": int(runs["model"].nunique()),
        "runs": int(runs["run_key"].nunique()),
        "epochs": int(len(runs)),
        "max_epochs": int(runs["max_epochs"].max()) if len(runs) else 0,
        "total_hours": float(runs["seconds"].sum() / 3600.0),
        "sources": sorted(runs["source"].unique().tolist()),
        "statuses": {str(k): int(v) for k, v in runs["status"].value_counts().sort_index().items()},
        "per_dataset": per_dataset,
    }
