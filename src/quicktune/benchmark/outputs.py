"""The benchmark's output files: CSVs, the summary JSON and the plots."""

from __future__ import annotations

import json
from pathlib import Path

from quicktune.benchmark.stats import BenchmarkResult, aggregate, summarize


def write_outputs(result: BenchmarkResult, out_dir: Path | str, prefix: str = "benchmark", plots: bool = True) -> dict[str, Path]:
    """Write `<prefix>.csv` (long), `<prefix>_runs.csv`, `<prefix>_summary.csv/.json` and the PNGs."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "long": out / f"{prefix}.csv",
        "runs": out / f"{prefix}_runs.csv",
        "summary_csv": out / f"{prefix}_summary.csv",
        "summary_json": out / f"{prefix}_summary.json",
    }
    long = result.long.copy()
    long["regret"] = long["regret"].round(6)
    long.to_csv(paths["long"], index=False)
    result.runs.to_csv(paths["runs"], index=False, float_format="%.6g")
    summary, doc = summarize(result)
    summary.to_csv(paths["summary_csv"], index=False, float_format="%.6g")
    paths["summary_json"].write_text(json.dumps(doc, indent=2, default=float) + "\n")
    if plots:
        from quicktune.benchmark.plots import plot_per_dataset, plot_regret

        agg = aggregate(result.long)
        paths["png"] = plot_regret(agg, out / f"{prefix}.png", report=result.report)
        paths["png_per_dataset"] = plot_per_dataset(agg, out / f"{prefix}_per_dataset.png", report=result.report)
    return paths
