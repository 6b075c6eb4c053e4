"""Leave-datasets-out folds and the meta-training table of each."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from quicktune.benchmark.methods import FoldContext
from quicktune.metadataset.tabular import CurveTable


# -- folds ------------------------------------------------------------------------------------
def make_folds(datasets: Iterable[str], k: int) -> list[list[str]]:
    """Sorted datasets dealt round-robin into min(k, n) folds (deterministic, no dataset twice)."""
    ds = sorted(set(datasets))
    if k < 1:
        raise ValueError(f"`folds >= 1` must hold, but got folds={k}")
    k = min(k, len(ds))
    return [ds[f::k] for f in range(k)]


def restrict_table(table: CurveTable, datasets: Iterable[str]) -> CurveTable:
    """A view of `table` holding only `datasets`: other datasets are absent from `datasets`,
    `task()`, `tasks()` and from the rows it was built from, so nothing held out can leak."""
    keep = set(datasets)
    missing = keep - set(table.datasets)
    if missing:
        raise KeyError(f"datasets {sorted(missing)} are not in the meta-dataset; known: {table.datasets}")
    view = copy.copy(table)  # shallow: shares the already built TaskCurves
    view.datasets = [d for d in table.datasets if d in keep]
    # The private state CurveTable builds tasks and feature names from; filtered so that code
    # reading it directly can not see held-out datasets either.
    if isinstance(getattr(table, "_tasks", None), dict):
        view._tasks = {d: t for d, t in table._tasks.items() if d in keep}
    for name in ("_runs", "_features"):
        frame = getattr(table, name, None)
        if isinstance(frame, pd.DataFrame) and "dataset" in frame.columns:
            setattr(view, name, frame[frame["dataset"].isin(keep)])
    if isinstance(getattr(view, "_runs", None), pd.DataFrame) and hasattr(table, "_rows_of"):
        # Row positions index the filtered frame now: recompute them, or building a task that
        # was not built before the restriction reads the wrong rows (or none).
        view._rows_of = view._runs.groupby("dataset", sort=False).indices
    return view


def fold_contexts(table: CurveTable, n_folds: int, cache_dir: Path) -> dict[str, FoldContext]:
    """dataset -> the FoldContext of the fold that holds it out."""
    folds = make_folds(table.datasets, n_folds)
    out: dict[str, FoldContext] = {}
    for f, test in enumerate(folds):
        train = [d for d in table.datasets if d not in set(test)]
        # With a single fold there is nothing to train on: the view is empty of datasets.
        view = restrict_table(table, train)
        ctx = FoldContext(f, len(folds), view, tuple(train), tuple(test), Path(cache_dir))
        out.update({d: ctx for d in test})
    return out
