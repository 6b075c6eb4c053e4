"""`quicktune benchmark`: replay methods on a recorded meta-dataset and measure regret over time."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from quicktune.cli._common import fail, load_metadataset, parse_duration


def _split(text: str | None) -> list[str]:
    return [s.strip() for s in (text or "").split(",") if s.strip()]


def benchmark(
    metadataset: Annotated[Optional[Path], typer.Option(
        "--metadataset", help="A meta-dataset store or a Quick-Tune-format folder (default: the embedded CPU meta-dataset).")] = None,
    out: Annotated[Path, typer.Option("--out", help="Directory for the CSVs, the JSON summary and the PNGs.")] = Path("benchmark-results"),
    budget: Annotated[str, typer.Option("--budget", help="Simulated wall-clock budget of recorded compute per run, e.g. 30m, 4h, 16h.")] = "4h",
    methods: Annotated[str, typer.Option("--methods", help="Comma-separated method names: random, grid, hyperband, sh, asha, hyperband-async, quicktune, or any registered in quicktune.benchmark.methods.")] = "random,grid,hyperband",
    seeds: Annotated[int, typer.Option("--seeds", help="Seeds per (method, dataset): 0 .. N-1.")] = 5,
    datasets: Annotated[Optional[str], typer.Option("--datasets", help="Comma-separated datasets (default: all).")] = None,
    folds: Annotated[int, typer.Option("--folds", help="Leave-datasets-out folds (meta-learned methods train on the others).")] = 5,
    workers: Annotated[int, typer.Option("--workers", help="Parallel worker processes (jobs replayed at once on this machine).")] = 1,
    workers_simulated: Annotated[int, typer.Option(
        "--workers-simulated", help="Asynchronous workers of each search on the simulated clock (an event queue on recorded epoch times).")] = 1,
    cache_dir: Annotated[Optional[Path], typer.Option("--cache-dir", help="Per-fold artefacts of meta-learned methods (default: OUT/cache).")] = None,
    grid_points: Annotated[int, typer.Option("--grid-points", help="Log-spaced times regret is recorded at.")] = 100,
    report_at: Annotated[Optional[str], typer.Option(
        "--report-at", help="Comma-separated times to report regret at (default 1h,4h,16h; e.g. 1m,4m,16m for a small meta-dataset).")] = None,
) -> None:
    """Replay METHODS on recorded learning curves under a simulated time budget; write regret CSVs and a plot."""
    from quicktune.benchmark.methods import METHODS

    try:
        budget_s = parse_duration(budget)
    except ValueError as e:
        fail(f"--budget: {e}")
    if not budget_s > 0:
        fail(f"--budget must be positive, but got {budget!r}")
    report_s = None
    if report_at is not None:
        try:
            report_s = [parse_duration(t) for t in _split(report_at)]
        except ValueError as e:
            fail(f"--report-at: {e}")
        if not report_s or min(report_s) <= 0:
            fail(f"--report-at: give positive times such as 1m,4m,16m, but got {report_at!r}")
    names = _split(methods)
    if not names:
        fail("--methods: give at least one method, e.g. random,grid,hyperband")
    unknown = [m for m in names if m not in METHODS]
    if unknown:
        fail(f"--methods: unknown method(s) {', '.join(unknown)}; known: {', '.join(METHODS)}")
    names = list(dict.fromkeys(names))
    for flag, value in (("--seeds", seeds), ("--folds", folds), ("--workers", workers), ("--workers-simulated", workers_simulated),
                        ("--grid-points", grid_points)):
        if value < 1:
            fail(f"{flag} must be >= 1, but got {value}")
    if metadataset is None:
        from quicktune.metadataset import StoreError, embedded_metadataset

        try:
            metadataset = embedded_metadataset()
        except StoreError as e:
            fail(str(e))
    if not metadataset.exists():
        fail(f"--metadataset {metadataset}: no such file or directory")
    if out.exists() and not out.is_dir():
        fail(f"--out {out}: exists and is not a directory")

    from rich.console import Console
    from rich.table import Table

    from quicktune.cli._progress import StageProgress

    from quicktune.benchmark.experiment import run_benchmark, summarize, write_outputs

    console = Console()
    table, _ = load_metadataset(metadataset, console)
    chosen = _split(datasets) or None
    if chosen is not None:
        missing = [d for d in chosen if d not in table.datasets]
        if missing:
            fail(f"--datasets: unknown dataset(s) {', '.join(missing)}; known: {', '.join(table.datasets)}")
        chosen = list(dict.fromkeys(chosen))

    with StageProgress(console, {"prepare": "preparing folds", "run": "replaying jobs"}) as stages:
        result = run_benchmark(
            table, names, budget_s, datasets=chosen, seeds=range(seeds), n_folds=folds, workers=workers,
            cache_dir=cache_dir if cache_dir is not None else out / "cache", grid_points=grid_points,
            progress=stages.update, report_at=report_s, workers_simulated=workers_simulated,
        )
    try:
        paths = write_outputs(result, out, prefix="benchmark")
    except OSError as e:
        fail(f"--out {out}: cannot write results ({e.strerror})")

    summary, doc = summarize(result)
    avg = summary[summary["dataset"] == "ALL"]
    labels = list(dict.fromkeys(avg["time"]))
    sim = f", {workers_simulated} simulated workers" if workers_simulated > 1 else ""
    t = Table(title=f"mean normalized regret over {len(result.datasets)} dataset(s) x {seeds} seed(s){sim} [95% CI]")
    t.add_column("method")
    for lab in labels:
        t.add_column(f"@{lab}", justify="right")
    t.add_column("overhead/step", justify="right")
    t.add_column("held-out-epoch regret", justify="right")
    held = doc.get("heldout_epoch", {}).get("methods", {})
    for m in result.methods:
        row = avg[avg["method"] == m].set_index("time")
        cells = [f"{row.loc[lab, 'mean']:.3f} [{row.loc[lab, 'ci_low']:.3f}, {row.loc[lab, 'ci_high']:.3f}]" for lab in labels]
        oh = float(row["median_overhead_s"].iloc[0])
        h = held.get(m)
        hcell = f"{h['heldout_regret']:.3f} [{h['heldout_regret_ci95'][0]:.3f}, {h['heldout_regret_ci95'][1]:.3f}]" if h else "-"
        t.add_row(m, *cells, f"{oh * 1e3:.3g} ms", hcell)
    console.print(t)
    console.print("held-out-epoch regret: the selected config's recorded accuracy at the epoch after the one it was "
                  "selected at (before, at its last epoch), at the budget - a number the selection did not maximise",
                  highlight=False)
    for key in ("long", "summary_csv", "summary_json", "png"):
        console.print(f"{key:>12}: {paths[key]}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("benchmark")(benchmark)
