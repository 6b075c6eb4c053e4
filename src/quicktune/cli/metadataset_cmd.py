"""`quicktune metadataset`: import the published Quick-Tune meta-dataset, inspect, merge and compact stores."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from quicktune.cli._common import fail

# Imported copies of published data live here by default; .gitignore keeps them out of commits.
DEFAULT_IMPORT_ROOT = Path("metadataset") / "imported"

metadataset_app = typer.Typer(
    name="metadataset",
    help="Import, inspect, merge and compact meta-datasets of learning curves.",
    no_args_is_help=True,
)


@metadataset_app.command("import-quicktune")
def import_quicktune_cmd(
    path: Annotated[Path, typer.Argument(help="A Quick-Tune meta-dataset version folder (table.csv, curves/, meta/).")],
    out: Annotated[Optional[Path], typer.Option("--out", help="Store directory [default: metadataset/imported/<folder name>].")] = None,
) -> None:
    """Import a published Quick-Tune meta-dataset (micro, mini or extended) into a store."""
    from rich.console import Console

    from quicktune.metadataset import MetaDatasetStore, StoreError, import_quicktune

    out = out if out is not None else DEFAULT_IMPORT_ROOT / path.resolve().name
    if out.exists() and not out.is_dir():
        fail(f"--out {out}: exists and is not a directory")
    console = Console()
    try:
        with console.status(f"importing {path} ..."):
            store = MetaDatasetStore(out)
            summary = import_quicktune(path, store)
    except StoreError as e:
        fail(str(e))
    except OSError as e:
        fail(f"{out}: cannot write the store ({e.strerror})")
    console.print(
        f"imported {summary['source']}: {summary['datasets']} datasets, {summary['models']} models, "
        f"{summary['runs']} runs, {summary['epochs']} epochs, {summary['total_hours']:.1f} h of recorded compute "
        f"-> {out} ({summary['seconds']:.1f} s)",
        highlight=False, soft_wrap=True,
    )


@metadataset_app.command("info")
def info_cmd(
    path: Annotated[Path, typer.Argument(help="A meta-dataset store or a Quick-Tune meta-dataset folder.")] = Path("metadataset"),
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Datasets, models, runs, epochs and recorded compute of a meta-dataset."""
    from rich.console import Console
    from rich.table import Table

    from quicktune.cli._common import note
    from quicktune.metadataset import MetaDatasetStore, StoreError, load_rows, summarize
    from quicktune.metadataset.loading import is_store_dir

    try:
        runs, features = load_rows(path)
        # The manifest vouches for the compacted content: a snapshot changed since is an error.
        store = MetaDatasetStore(path, create=False) if is_store_dir(path) else None
        notes = store.verify_manifest() if store is not None else []
    except StoreError as e:
        fail(str(e))
    for n in notes:
        note(n)
    s = summarize(runs, features)
    verified = store is not None and store.manifest() is not None and not any("not verified" in n for n in notes)
    if as_json:
        typer.echo(json.dumps({"path": str(path), **s, "manifest_verified": verified}, indent=2))
        return
    console = Console()
    console.print(
        f"{path}: {s['datasets']} datasets, {s['models']} models, {s['runs']} runs, {s['epochs']} epochs "
        f"(up to {s['max_epochs']} per run), {s['total_hours']:.1f} h of recorded compute",
        highlight=False, soft_wrap=True,
    )
    console.print(f"sources: {', '.join(s['sources'])}; statuses: "
                  + ", ".join(f"{k} {v}" for k, v in s["statuses"].items()), highlight=False, soft_wrap=True)
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("dataset", no_wrap=True)
    for col in ("runs", "models", "epochs", "hours", "best acc", "samples", "classes"):
        table.add_column(col, justify="right", no_wrap=True)
    for d in s["per_dataset"]:
        f = d["features"]
        table.add_row(
            d["dataset"], str(d["runs"]), str(d["models"]), str(d["epochs"]), f"{d['hours']:.1f}",
            f"{d['best_acc']:.3f}",
            f"{f['n_samples']:.0f}" if "n_samples" in f else "-", f"{f['n_classes']:.0f}" if "n_classes" in f else "-",
        )
    console.print(table)
    if verified:
        console.print("manifest.json: content hash verified", highlight=False)


@metadataset_app.command("compact")
def compact_cmd(
    store_dir: Annotated[Path, typer.Argument(metavar="STORE", help="A meta-dataset store directory.")],
) -> None:
    """Fold a store's part files into one snapshot and write manifest.json (rows, content hash)."""
    from quicktune.metadataset import MetaDatasetStore, StoreError
    from quicktune.metadataset.loading import is_store_dir

    if not is_store_dir(store_dir):
        fail(f"{store_dir}: not a meta-dataset store (no runs/ folder)")
    try:
        manifest = MetaDatasetStore(store_dir, create=False).compact()
    except StoreError as e:
        fail(str(e))
    runs = manifest["runs"]
    typer.echo(
        f"compacted {store_dir}: {runs['rows']} rows ({runs['n_runs']} runs), "
        f"{manifest['features']['rows']} feature rows; content hash {runs['content_hash']}"
    )


@metadataset_app.command("merge")
def merge_cmd(
    sources: Annotated[list[Path], typer.Argument(
        metavar="SOURCE...", help="Meta-datasets to merge: stores or Quick-Tune-format folders (e.g. metadataset/v1 and yours).")],
    out: Annotated[Path, typer.Option("--out", help="The store that receives every source's rows (created if missing; "
                                      "it may be one of the sources, which then keeps its rows).")],
) -> None:
    """Merge meta-datasets into one store, e.g. the embedded one and your collected runs, then
    `quicktune metatrain --metadataset OUT` learns from both."""
    from quicktune.metadataset import StoreError, merge_metadatasets

    try:
        s = merge_metadatasets(sources, out)
    except StoreError as e:
        fail(str(e))
    except OSError as e:
        fail(f"{out}: cannot write the store ({e.strerror})")
    typer.echo(f"merged {len(s['sources'])} meta-dataset(s) into {out}: {s['datasets']} datasets, {s['runs']} runs, "
               f"{s['epochs']} epochs")


def register(app: typer.Typer) -> None:
    app.add_typer(metadataset_app, name="metadataset")
