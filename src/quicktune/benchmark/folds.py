"""Leave-datasets-out folds and the meta-training table of each."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

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
    """`table.restrict(datasets)` (kept for callers of the old name)."""
    return table.restrict(datasets)


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
