"""`quicktune collect`: fine-tune datasets x models x configs and append the curves to a store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from quicktune.cli._common import fail


def register(app: typer.Typer) -> None:
    app.command("collect")(collect_cmd)


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def collect_cmd(
    datasets: Annotated[str, typer.Option(
        "--datasets", help="Comma-separated ImageFolder paths, each optionally with task options: "
        "PATH[:classes=5,shots=50,size=32,seed=1,names=a+b,val=0.2,name=NAME].")],
    models: Annotated[str, typer.Option("--models", help="Comma-separated hub model names.")],
    out: Annotated[Path, typer.Option("--out", help="The meta-dataset store to append to (created if missing).")],
    configs: Annotated[Optional[int], typer.Option(
        "--configs", help="Hyperparameter configs sampled per model from the default space "
        "(ELR log-uniform 1e-3..1, weight decay log-uniform 1e-6..1e-2 or 0, momentum 0/0.5/0.9).")] = None,
    grid: Annotated[Optional[Path], typer.Option(
        "--grid", help="A JSON file of configs instead of --configs: a list of {elr, weight_decay, momentum[, model]} "
        "or one {elr: [...], weight_decay: [...], momentum: [...]} grid.")] = None,
    epochs: Annotated[int, typer.Option("--epochs", help="Epoch horizon of every run (its cosine schedule).")] = 3,
    workers: Annotated[int, typer.Option("--workers", help="Runs trained at once.")] = 1,
    executor: Annotated[str, typer.Option("--executor", help="local (process pool) or ray.")] = "local",
    seed: Annotated[int, typer.Option("--seed", help="Seeds the config sample and every run.")] = 0,
    image_size: Annotated[Optional[int], typer.Option(
        "--image-size", help="Train every task at this square resolution (default: each model's input size).")] = None,
    max_image_size: Annotated[Optional[int], typer.Option(
        "--max-image-size", help="Train each model at its input size capped at this many pixels "
        "(e.g. 64 on a CPU); the task keeps one name for every model.")] = None,
    weights_dir: Annotated[Optional[Path], typer.Option(
        "--weights-dir", help="Where the hub finds model weights (default: $QUICKTUNE_WEIGHTS).")] = None,
    work_dir: Annotated[Optional[Path], typer.Option(
        "--work-dir", help="Where run checkpoints live (default: <out>/../.checkpoints/<out name>-<hash of its path>, one per store).")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Training batch size.")] = 64,
    threads: Annotated[Optional[int], typer.Option(
        "--threads", help="Torch threads per run (default: cores // workers).")] = None,
    retries: Annotated[int, typer.Option("--retries", help="Ray: retries of a failed run.")] = 2,
    pretrained: Annotated[bool, typer.Option(
        "--pretrained/--random-init", help="Start from the pretrained weights (--random-init: random weights).")] = True,
    skip_unreadable: Annotated[bool, typer.Option(
        "--skip-unreadable", help="Skip unreadable images (listed) instead of stopping.")] = False,
    features: Annotated[bool, typer.Option(
        "--features/--no-features", help="After training, compute each (model, task)'s domain features "
        "(EMD similarity, LogME, LEEP) the store lacks, as `suggest` computes them for a target.")] = True,
) -> None:
    """Fine-tune every dataset x model x config for --epochs epochs and store each epoch's result.

    Resumable: runs already complete in the store are skipped, partial ones continue from their
    checkpoint. Kill it at any time and run the same command again.
    """
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.table import Table

    from quicktune.collect import (
        CollectError,
        load_grid,
        plan_collection,
        run_collection,
        sample_hyperparameters,
    )
    from quicktune.data import DataError, parse_task_specs
    from quicktune.metadataset.storage import StoreError

    if (configs is None) == (grid is None):
        fail("give exactly one of --configs N (sampled configs) or --grid FILE.json")
    if configs is not None and configs < 1:
        fail(f"`--configs >= 1` must hold, but got {configs}")
    if epochs < 1:
        fail(f"`--epochs >= 1` must hold, but got {epochs}")
    if workers < 1:
        fail(f"`--workers >= 1` must hold, but got {workers}")
    if seed < 0:
        fail(f"`--seed >= 0` must hold, but got {seed}")
    if executor not in ("local", "ray"):
        fail(f"--executor must be local or ray, but got {executor!r}")
    if max_image_size is not None and not 4 <= max_image_size <= 4096:
        fail(f"`4 <= --max-image-size <= 4096` must hold, but got {max_image_size}")
    if image_size is not None and not 4 <= image_size <= 4096:
        fail(f"`4 <= --image-size <= 4096` must hold, but got {image_size}")
    if out.exists() and not out.is_dir():
        fail(f"--out {out}: exists and is not a directory")
    if executor == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            fail("--executor ray needs Ray, which is not installed: pip install 'quicktune[ray]' (or use --executor local)")
    console = Console(stderr=True)
    try:
        specs = parse_task_specs(datasets)
        hyper = sample_hyperparameters(configs, seed) if configs is not None else load_grid(grid)  # type: ignore[arg-type]
        with console.status("checking and caching the datasets ..."):
            plan = plan_collection(
                specs, _split(models), hyper, epochs, out, seed=seed, image_size=image_size, max_image_size=max_image_size, work_dir=work_dir,
                weights_dir=weights_dir, batch_size=batch_size, pretrained=pretrained, skip_unreadable=skip_unreadable,
            )
    except (DataError, CollectError, StoreError) as e:
        fail(str(e))
    except ValueError as e:  # HubError and Config's own checks
        fail(str(e))
    except OSError as e:
        fail(f"{e.filename or out}: {e.strerror}")

    console.print(
        f"{plan.n_runs} runs planned ({len(plan.descriptors)} tasks): {plan.n_complete} already complete, "
        f"{len(plan.jobs)} to train ({plan.epochs_to_train} epochs) with {workers} worker(s), {executor} executor; "
        f"checkpoints in {plan.work_dir}",
        highlight=False, soft_wrap=True,
    )
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("epochs"),
        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), TextColumn("{task.fields[last]}"),
        console=console, transient=False,
    )
    bar = progress.add_task("collecting", total=plan.epochs_to_train, last="")

    def on_event(ev: dict[str, Any]) -> None:
        if ev["kind"] == "epoch":
            progress.update(bar, advance=1,
                            last=f"{ev['model']} epoch {ev['epoch']}: acc {ev['val_acc']:.3f} ({ev['seconds']:.1f}s)")
        elif ev["kind"] == "job" and not console.is_terminal:  # a pipe or log: rich draws no bar there
            res = ev["result"]
            progress.console.print(f"run done: {ev['job'].describe()}: {res.status}, final acc {res.final_acc:.3f}",
                                   highlight=False, soft_wrap=True)
        elif ev["kind"] == "features":
            progress.console.print(f"domain features {ev['index'] + 1}/{ev['total']}: {ev['model']} on {ev['dataset']}",
                                   highlight=False, soft_wrap=True)
        elif ev["kind"] == "failed":
            progress.console.print(f"[red]failed:[/] {ev['job'].describe()}: {ev['error']}", highlight=False,
                                   soft_wrap=True)

    try:
        with progress:
            summary = run_collection(plan, workers=workers, executor=executor, threads=threads, max_retries=retries,
                                     on_event=on_event, features=features)
    except (CollectError, StoreError) as e:
        fail(str(e))
    except KeyboardInterrupt:
        console.print("interrupted: finished epochs are stored; run the same command again to continue")
        raise typer.Exit(130) from None

    out_console = Console()
    table = Table(title="seconds per epoch", show_edge=False)
    table.add_column("model")
    table.add_column("epochs", justify="right")
    table.add_column("mean s/epoch", justify="right")
    for m, secs in sorted(summary.seconds_per_epoch.items()):
        table.add_row(m, str(len(secs)), f"{sum(secs) / len(secs):.2f}")
    if summary.seconds_per_epoch:
        out_console.print(table)
    for task, acc in sorted(summary.best.items()):
        out_console.print(f"best final val_acc on {task}: {acc:.3f}", highlight=False)
    out_console.print(
        f"done in {summary.wall_seconds:.0f}s: {summary.finished} runs finished ({summary.diverged} diverged), "
        f"{len(summary.failed)} failed, {summary.epochs_trained} epochs stored in {out}; "
        f"{summary.n_complete_before} runs were already complete; domain features of {summary.features} "
        f"(model, task) pair(s) computed",
        highlight=False, soft_wrap=True,
    )
    if summary.failed:
        for desc, err in summary.failed:
            out_console.print(f"failed: {desc}: {err}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
