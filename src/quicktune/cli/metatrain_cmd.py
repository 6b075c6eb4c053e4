"""`quicktune metatrain`: meta-train the deep-kernel GP surrogate on a meta-dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from quicktune.cli._common import fail, load_metadataset


def metatrain(
    metadataset: Annotated[Path, typer.Option("--metadataset", help="A meta-dataset store or a Quick-Tune-format folder.")],
    out: Annotated[Path, typer.Option("--out", help="Checkpoint file to write (one torch.save'd dict).")],
    steps: Annotated[int, typer.Option("--steps", help="Gradient steps (one dataset per batch).")] = 4000,
    seed: Annotated[int, typer.Option("--seed", help="Seed: the same seed and data give the same weights.")] = 0,
    holdout: Annotated[Optional[str], typer.Option("--holdout", help="Comma-separated validation datasets (never trained on).")] = None,
    val_fraction: Annotated[float, typer.Option("--val-fraction", help="Share of datasets held out for validation when --holdout is not given.")] = 0.2,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Rows per batch.")] = 64,
    lr: Annotated[float, typer.Option("--lr", help="Adam learning rate (cosine-decayed).")] = 3e-3,
    threads: Annotated[int, typer.Option("--threads", help="torch intra-op threads.")] = 1,
    weights_dir: Annotated[Optional[Path], typer.Option("--weights-dir", help="Hub weights directory, for the descriptors of models the hub knows (default: $QUICKTUNE_WEIGHTS_DIR).")] = None,
) -> None:
    """Meta-train the surrogate (deep-kernel GP + cost model) and write its checkpoint; keeps the
    weights with the best validation NLL on the held-out datasets."""
    if steps < 1:
        fail(f"--steps must be >= 1, but got {steps}")
    if batch_size < 2:
        fail(f"--batch-size must be >= 2, but got {batch_size}")
    if not 0.0 <= val_fraction < 1.0:
        fail(f"--val-fraction must satisfy 0 <= val_fraction < 1, but got {val_fraction}")
    if not lr > 0:
        fail(f"--lr must be positive, but got {lr}")
    if threads < 1:
        fail(f"--threads must be >= 1, but got {threads}")
    if not metadataset.exists():
        fail(f"--metadataset {metadataset}: no such file or directory")
    if out.exists() and out.is_dir():
        fail(f"--out {out}: is a directory; give a file name such as {out / 'surrogate.pt'}")
    held = [s.strip() for s in (holdout or "").split(",") if s.strip()]

    import torch
    from rich.console import Console

    from quicktune.surrogate.fit import meta_train

    torch.set_num_threads(threads)
    console = Console()
    table, runs = load_metadataset(metadataset, console)
    horizons = runs.groupby("max_epochs")["run_key"].nunique()
    if len(horizons) > 1:
        # The surrogate's budget feature is epoch / horizon and its curve input has one length:
        # runs with different horizons would be read as the same budget at different epochs.
        counts = ", ".join(f"{int(h)} epochs ({int(n)} runs)" for h, n in horizons.items())
        fail(f"--metadataset {metadataset}: meta-training needs one epoch horizon, but the runs mix {counts}; "
             "collect with one --epochs value or use a store per horizon")
    unknown = [d for d in held if d not in table.datasets]
    if unknown:
        fail(f"--holdout: unknown dataset(s) {', '.join(unknown)}; known: {', '.join(table.datasets)}")
    if held and len(set(held)) >= len(table.datasets):
        fail(f"--holdout leaves no dataset to train on (the meta-dataset has {len(table.datasets)})")

    from quicktune.hub import model_descriptors
    from quicktune.metadataset.schema import FinetuneSetting

    descriptors = model_descriptors(table.models, weights_dir)
    try:
        result = meta_train(table, steps=steps, batch_size=batch_size, lr=lr, seed=seed, holdout=held or None,
                            val_fraction=val_fraction, model_descriptors=descriptors or None, progress=True)
    except ValueError as e:
        fail(str(e))
    setting = FinetuneSetting.from_runs(runs).to_dict()
    if setting:
        result.surrogate.info["finetune"] = setting
    result.surrogate.info["metadataset"] = str(metadataset)
    # `suggest` computes the target's domain features with exactly these settings.
    from quicktune.metadataset.loading import is_store_dir
    from quicktune.metadataset.storage import MetaDatasetStore

    feature_settings = MetaDatasetStore(metadataset, create=False).feature_settings() if is_store_dir(metadataset) else None
    if feature_settings is not None:
        result.surrogate.info["features"] = feature_settings.to_dict()
    try:
        path = result.surrogate.save(out)
    except OSError as e:
        fail(f"--out {out}: cannot write the checkpoint ({e.strerror})")

    m, u = result.val_metrics, result.untrained_metrics
    console.print(f"trained on {len(result.train_datasets)} dataset(s): {', '.join(result.train_datasets)}",
                  highlight=False, soft_wrap=True)
    if result.val_datasets:
        console.print(f"validated on {', '.join(result.val_datasets)}: best step {result.best_step}/{steps}", highlight=False)
        console.print(
            f"  next-epoch NLL {m['nll']:.3f} (untrained {u['nll']:.3f}), Spearman {m['spearman']:.3f} "
            f"(untrained {u['spearman']:.3f}), cost RMSE {m['cost_rmse']:.3f} log-seconds",
            highlight=False,
        )
    else:
        console.print("no validation dataset (one dataset, or --val-fraction 0): kept the last weights", highlight=False)
    if descriptors:
        console.print(f"hub descriptors for {len(descriptors)}/{len(table.models)} model(s)", highlight=False)
    if setting:
        console.print(f"fine-tuning setting recorded for `suggest`: {setting}", highlight=False)
    console.print(f"wrote {path} ({result.seconds:.0f} s)", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("metatrain")(metatrain)
