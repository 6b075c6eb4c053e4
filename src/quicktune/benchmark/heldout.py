"""The selected config's held-out-epoch accuracy: a replay's answer to "is the best validation
accuracy the only number?".

A search selects the (config, epoch) with the best validation accuracy it observed; that maximum
of many noisy measurements is biased upwards. Recorded curves have no test split, so the replay
reports a second measurement the selection did not maximise: the recorded accuracy of the selected
config at its *held-out epoch*, the epoch after the selected one (the one before when the selected
epoch is the recording's last). Its normalized regret (`TaskCurves.regret`) and the optimism
(selected minus held-out accuracy) are summarised per method with 95% bootstrap CIs over datasets.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from quicktune.metadataset.tabular import TaskCurves

HELDOUT_COLUMNS = ["selected_config", "selected_epoch", "selected_acc", "heldout_epoch", "heldout_acc", "heldout_regret"]
DEFINITION = ("held-out epoch: the recorded accuracy of the selected (best-validation) config at the epoch after the "
              "selected one (the one before when the selected epoch is its last recorded epoch)")


def heldout_epoch(task: TaskCurves, config_id: int, epoch: int) -> tuple[int, float] | None:
    """(epoch, accuracy) of the held-out epoch of run `config_id` selected at `epoch` (1-based);
    None when the run has a single recorded epoch."""
    length = int(min(task.lengths[config_id], task.max_epochs))
    other = epoch + 1 if epoch < length else epoch - 1
    if other < 1:
        return None
    return other, float(task.perf[config_id, other - 1])


def heldout_row(task: TaskCurves, selected: tuple[int, int] | None) -> dict[str, float]:
    """The HELDOUT_COLUMNS of one job (NaN when nothing was selected or no other epoch exists)."""
    row = dict.fromkeys(HELDOUT_COLUMNS, math.nan)
    if selected is None:
        return row
    cid, epoch = selected
    row.update(selected_config=cid, selected_epoch=epoch, selected_acc=float(task.perf[cid, epoch - 1]))
    other = heldout_epoch(task, cid, epoch)
    if other is not None and math.isfinite(other[1]):
        row.update(heldout_epoch=other[0], heldout_acc=other[1], heldout_regret=float(task.regret(other[1])))
    return row


def _ci(values: np.ndarray, n_boot: int = 1000, seed: int = 0) -> list[float]:
    """95% percentile bootstrap CI of the mean over datasets."""
    if len(values) == 0:
        return [math.nan, math.nan]
    rng = np.random.default_rng(seed)
    boot = values[rng.integers(0, len(values), size=(n_boot, len(values)))].mean(axis=1)
    return [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))]


def summarize_heldout(runs: pd.DataFrame) -> dict[str, dict[str, object]]:
    """Per method (at the budget): mean selected and held-out accuracy, the optimism and the
    held-out regret, each a mean over datasets (of the mean over seeds) with a 95% CI over datasets."""
    out: dict[str, dict[str, object]] = {}
    if "heldout_acc" not in runs.columns:
        return out
    for method, dm in runs.groupby("method", sort=False):
        per = dm.groupby("dataset")[["selected_acc", "heldout_acc", "heldout_regret"]].mean().dropna()
        optimism = (per["selected_acc"] - per["heldout_acc"]).to_numpy()
        out[str(method)] = {
            "datasets": int(len(per)),
            "selected_acc": float(per["selected_acc"].mean()) if len(per) else math.nan,
            "heldout_acc": float(per["heldout_acc"].mean()) if len(per) else math.nan,
            "optimism": float(optimism.mean()) if len(per) else math.nan, "optimism_ci95": _ci(optimism),
            "heldout_regret": float(per["heldout_regret"].mean()) if len(per) else math.nan,
            "heldout_regret_ci95": _ci(per["heldout_regret"].to_numpy()),
        }
    return out


__all__ = ["DEFINITION", "HELDOUT_COLUMNS", "heldout_epoch", "heldout_row", "summarize_heldout"]
