"""The report of a `quicktune suggest` search: a JSON file and a PNG, from the report dict that
`quicktune.suggest.Search.report()` builds (this module only writes files; it trains nothing).

PNG, two panels:
  left:  the best config, its validation accuracy (selected on) and the chosen model's test
         accuracy with its 95% interval (the unbiased estimate); the learning curve (validation accuracy per epoch) of every run, coloured by model, the
         best run drawn thick;
  right: the incumbent (best accuracy so far) over the search's wall-clock, a step function
         that moves only when an epoch ends.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from quicktune.atomic import atomic_write
from quicktune.durations import format_duration

REPORT_JSON = "report.json"
REPORT_PNG = "report.png"


def _jsonable(x: Any) -> Any:
    """NaN/inf -> None so the file is strict JSON any tool can read."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def to_json(report: Mapping[str, Any]) -> str:
    return json.dumps(_jsonable(report), indent=1, allow_nan=False)


def write_json(report: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write `report` as strict JSON (atomically: temp file + rename)."""
    path = Path(path)
    with atomic_write(path, "w") as f:
        f.write(to_json(report))
    return path


def _pyplot() -> ModuleType:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    return plt


def plot(report: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Draw the two panels of `report` into the PNG `path`."""
    plt = _pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    runs = list(report.get("runs", []))
    best = report.get("best") or {}
    models = sorted({r["model"] for r in runs})
    cmap = plt.get_cmap("tab10" if len(models) <= 10 else "tab20")
    colour = {m: cmap(i % cmap.N) for i, m in enumerate(models)}

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8))
    seen: set[str] = set()
    for r in runs:
        curve = [v if v is not None and math.isfinite(v) else math.nan for v in r["curve"]]
        if not curve:
            continue
        is_best = r["config_id"] == best.get("config_id")
        label = r["model"] if r["model"] not in seen else None
        seen.add(r["model"])
        ax1.plot(range(1, len(curve) + 1), curve, color=colour[r["model"]], lw=2.8 if is_best else 1.1,
                 alpha=1.0 if is_best else 0.65, marker="o", ms=3 if not is_best else 5, label=label, zorder=3 if is_best else 2)
    if best:
        test = report.get("test")
        chosen = report.get("chosen") or {}
        line = (f"\ntest acc {test['accuracy']:.3f} [{test['ci95'][0]:.3f}, {test['ci95'][1]:.3f}] (n={test['n']}, "
                f"epoch {chosen.get('epoch')}, unbiased)" if test else "\nno test split")
        ax1.text(0.02, 0.98, f"best: {best['model']}, ELR {best['elr']:.3g} (lr {best['lr']:.3g}, m {best['momentum']:g}, "
                 f"wd {best['weight_decay']:.2g})\nval acc {best['accuracy']:.3f} at epoch {best['epoch']} (selected on)"
                 + line, transform=ax1.transAxes, va="top", fontsize=8)
    from matplotlib.ticker import MaxNLocator

    ax1.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax1.set_xlabel(f"epoch (horizon {report.get('max_epochs')})")
    ax1.set_ylabel("validation accuracy")
    ax1.set_title(f"{len(runs)} runs on {report.get('task')}")
    ax1.set_xlim(0.8, max(2, int(report.get("max_epochs") or 1)) + 0.2)
    ax1.grid(alpha=0.3)
    if seen:
        ax1.legend(fontsize=7, loc="lower right")

    trace = list(report.get("trace", []))
    elapsed = float(report.get("elapsed_seconds") or 0.0)
    if trace:
        scale, unit = (60.0, "min") if max(elapsed, trace[-1]["elapsed"]) >= 120 else (1.0, "s")
        xs = [t["elapsed"] / scale for t in trace] + [max(elapsed, trace[-1]["elapsed"]) / scale]
        ys = [t["accuracy"] for t in trace] + [trace[-1]["accuracy"]]
        ax2.step(xs, ys, where="post", color="black", lw=2)
        for t in trace:
            ax2.plot(t["elapsed"] / scale, t["accuracy"], "o", color=colour.get(t["model"], "0.3"), ms=6)
        budget = report.get("budget_seconds")
        if budget:
            ax2.axvline(float(budget) / scale, color="0.5", ls=":", lw=1)
            ax2.text(float(budget) / scale, 1.01, "budget", transform=ax2.get_xaxis_transform(), ha="center",
                     fontsize=8, color="0.35")
        ax2.set_xlabel(f"wall-clock ({unit})")
        ax2.set_xlim(left=0)
    else:
        ax2.text(0.5, 0.5, "no epoch finished", ha="center", va="center", transform=ax2.transAxes)
    ax2.set_ylabel("incumbent accuracy")
    ax2.set_title(f"incumbent over {format_duration(elapsed)} ({report.get('epochs_trained', 0)} epochs trained)")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_write(path) as f:
        fig.savefig(f, dpi=110, format="png")
    plt.close(fig)
    return path


def write(report: Mapping[str, Any], directory: str | os.PathLike[str]) -> tuple[Path, Path]:
    """report.json and report.png in `directory`; returns their paths."""
    d = Path(directory)
    return write_json(report, d / REPORT_JSON), plot(report, d / REPORT_PNG)


__all__ = ["REPORT_JSON", "REPORT_PNG", "plot", "to_json", "write", "write_json"]
