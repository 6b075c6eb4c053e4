"""`quicktune hub`: which pretrained models the hub knows and which load offline here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from quicktune.cli._common import fail

hub_app = typer.Typer(
    name="hub",
    help="List and describe the pretrained models of the model hub.",
    no_args_is_help=True,
)

WeightsDir = Annotated[
    Optional[Path],
    typer.Option("--weights-dir",
                 help="Weights directory [default: $QUICKTUNE_WEIGHTS, else ~/.cache/quicktune/weights]."),
]


def _check_dir(weights_dir: Optional[Path]) -> None:
    if weights_dir is not None and not weights_dir.is_dir():
        fail(f"--weights-dir {weights_dir}: not a directory")


@hub_app.command("list")
def list_cmd(
    weights_dir: WeightsDir = None,
    available_only: Annotated[bool, typer.Option("--available", help="Only models whose weights are present.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the table as JSON.")] = False,
) -> None:
    """Every model the hub can convert or load, with its descriptors and whether its weights are here."""
    from rich.console import Console
    from rich.table import Table

    from quicktune import hub

    _check_dir(weights_dir)
    wd = weights_dir if weights_dir is not None else hub.default_weights_dir()
    available = set(hub.list_models(wd))
    names = sorted(available if available_only else available | set(hub.registered_models()))
    rows = []
    for name in names:
        info = hub.model_info(name, wd)
        rows.append({**info.to_json(), "available": name in available})
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"models of the hub (weights dir: {wd})")
    table.add_column("name", no_wrap=True)  # names are what users copy: never truncate them
    for col, justify in (("source dataset", "left"), ("classes", "right"), ("params", "right"),
                         ("features", "right"), ("input px", "right"), ("available", "center")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for r in rows:
        table.add_row(r["name"], r["source_dataset"], str(r["num_source_classes"]), f"{r['n_params'] / 1e6:.2f}M",
                      str(r["num_features"]), str(r["input_size"]), "yes" if r["available"] else "[dim]no[/]")
    console = Console()
    if not console.is_terminal:  # piped: do not squeeze the table into 80 columns
        console = Console(width=140)
    console.print(table)
    console.print(f"{len(available)} of {len(names)} available offline; any timm architecture name also works online.",
                  highlight=False)


@hub_app.command("info")
def info_cmd(
    name: Annotated[str, typer.Argument(help="A hub name (see `quicktune hub list`) or a timm architecture name.")],
    weights_dir: WeightsDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Descriptors of one model: architecture, source dataset, parameters, input size, normalisation."""
    from quicktune import hub

    _check_dir(weights_dir)
    try:
        info = hub.model_info(name, weights_dir)
    except hub.HubError as e:
        fail(str(e))
    try:
        source: str | None = str(hub.weights_file(name, weights_dir))
    except hub.HubError:
        source = None if name in hub.registered_models() else "timm / Hugging Face hub (online)"
    names = hub.labels(name, weights_dir)
    out = {**info.to_json(), "weights_file": source, "descriptors": info.descriptors(),
           "labels": len(names) if names else None}
    if as_json:
        typer.echo(json.dumps(out, indent=2))
        return
    for k, v in out.items():
        if k == "weights_file" and v is None:
            v = "missing (not in the weights dir)"
        typer.echo(f"{k:>18}: {v}")


def register(app: typer.Typer) -> None:
    app.add_typer(hub_app, name="hub")
