"""Plots of a replay benchmark: mean normalized regret vs simulated wall-clock (log time axis).

Both functions take the output of `experiment.aggregate` (columns method, dataset, time_s, mean,
ci_low, ci_high; dataset == "ALL" holds the average over datasets) and write a PNG.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from matplotlib.axes import Axes

ALL = "ALL"


def _pyplot() -> ModuleType:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display here, and none needed
    import matplotlib.pyplot as plt

    return plt


# Round wall-clock ticks (seconds) a reader can place at a glance.
_TICKS = (1, 10, 60, 600, 3600, 4 * 3600, 16 * 3600, 64 * 3600, 256 * 3600)


def _label(x: float) -> str:
    if x >= 3600:
        return f"{x / 3600:g}h"
    if x >= 60:
        return f"{x / 60:g}m"
    return f"{x:g}s"


def _time_axis(ax: Axes, lo: float, hi: float) -> None:
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    ax.set_xscale("log")
    ax.set_xlim(lo, hi * 1.05)
    ax.xaxis.set_major_locator(FixedLocator([t for t in _TICKS if lo <= t <= hi * 1.05]))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: _label(x)))
    ax.xaxis.set_minor_locator(NullLocator())


def _draw(ax: Axes, agg: pd.DataFrame, dataset: str, colors: dict[str, str], report: Mapping[str, float], legend: bool) -> None:
    sub = agg[agg["dataset"] == dataset]
    for method, dm in sub.groupby("method", sort=False):
        dm = dm.sort_values("time_s")
        # Regret is a step function of time: it changes only when an epoch ends.
        ax.plot(dm["time_s"], dm["mean"], color=colors[method], lw=2 if legend else 1.3, label=method,
                drawstyle="steps-post")
        ax.fill_between(dm["time_s"], dm["ci_low"], dm["ci_high"], color=colors[method], alpha=0.18, lw=0, step="post")
    for label, t in report.items():
        ax.axvline(t, color="0.5", ls=":", lw=1)
        if legend:
            ax.text(t, 1.02, label, transform=ax.get_xaxis_transform(), ha="center", va="bottom", fontsize=9, color="0.35")
    _time_axis(ax, float(sub["time_s"].min()), float(sub["time_s"].max()))
    ax.set_ylim(-0.02, 1.02)
    ax.grid(True, which="major", alpha=0.3)


def _colors(methods: list[str]) -> dict[str, str]:
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#17becf"]
    return {m: palette[i % len(palette)] for i, m in enumerate(methods)}


def plot_regret(agg: pd.DataFrame, path: Path | str, report: Mapping[str, float] | None = None,
                title: str | None = None) -> Path:
    """Mean regret over datasets vs time, one line per method with its shaded 95% CI."""
    plt = _pyplot()
    methods = list(dict.fromkeys(agg["method"]))
    n_datasets = agg.loc[agg["dataset"] != ALL, "dataset"].nunique()
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    _draw(ax, agg, ALL, _colors(methods), report or {}, legend=True)
    ax.set_xlabel("simulated wall-clock (recorded compute)")
    ax.set_ylabel("mean normalized regret")
    ax.set_title(title or f"Replay benchmark: mean over {n_datasets} datasets (95% bootstrap CI)", fontsize=11, pad=18)
    ax.legend(loc="lower left", frameon=True)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_per_dataset(agg: pd.DataFrame, path: Path | str, report: Mapping[str, float] | None = None) -> Path:
    """A grid of small panels, one per dataset, same axes as `plot_regret`."""
    plt = _pyplot()
    methods = list(dict.fromkeys(agg["method"]))
    datasets = sorted(d for d in agg["dataset"].unique() if d != ALL)
    cols = min(5, max(1, len(datasets)))
    rows = max(1, math.ceil(len(datasets) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 2.4 * rows), dpi=100, sharex=True, sharey=True,
                             squeeze=False)
    colors = _colors(methods)
    for ax, d in zip(axes.flat, datasets):
        _draw(ax, agg, d, colors, report or {}, legend=False)
        ax.set_title(d, fontsize=9)
    for ax in list(axes.flat)[len(datasets):]:
        ax.set_visible(False)
    handles = [plt.Line2D([], [], color=colors[m], lw=2, label=m) for m in methods]
    fig.legend(handles=handles, loc="upper center", ncol=len(methods), frameon=False)
    fig.supxlabel("simulated wall-clock (recorded compute)", fontsize=10)
    fig.supylabel("mean normalized regret", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / (2.4 * rows)))  # leave the top strip to the legend
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
