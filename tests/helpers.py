"""Factories for small synthetic test data (importable as `tests.helpers`)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quicktune.metadataset.schema import FINETUNE_VERSION, run_key
from quicktune.space import Config

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("QUICKTUNE_SHARED", REPO.parent / "shared"))


def shared_path(*parts: str) -> Path:
    """A path under ../shared, or skip the test when that development data is not on this machine."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"development data not available: {p}")
    return p


def synthetic_runs(
    datasets=("d0", "d1", "d2"),
    models=("m_small", "m_large"),
    elrs=(1e-3, 1e-2, 1e-1),
    weight_decays=(0.0, 1e-4),
    max_epochs: int = 8,
    seed: int = 0,
) -> pd.DataFrame:
    """Long-format run rows with learning curves that depend smoothly on the config.

    The best ELR differs per dataset and the large model costs more per epoch, so optimizers and
    surrogates have something real to find.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for di, d in enumerate(datasets):
        best_log_elr = -3.0 + di * 0.8
        for m in models:
            big = m.endswith("large")
            for e in elrs:
                for wd in weight_decays:
                    c = Config(m, e, wd, 0.9)
                    key = run_key(d, c, 0, max_epochs)
                    final = 0.9 - 0.12 * (np.log10(e) - best_log_elr) ** 2 + (0.05 if big else 0.0) - 200 * wd
                    rate = 0.5 + 0.3 * rng.random()
                    for t in range(1, max_epochs + 1):
                        acc = float(np.clip(final * (1 - np.exp(-rate * t)) + 0.01 * rng.standard_normal(), 0, 1))
                        rows.append(
                            dict(run_key=key, dataset=d, model=m, elr=c.elr, lr=c.lr, momentum=c.momentum,
                                 weight_decay=c.weight_decay, optimizer=c.optimizer, extras=c.extras_json(),
                                 seed=0, max_epochs=max_epochs, epoch=t, val_acc=acc, val_loss=float("nan"),
                                 train_loss=float("nan"), seconds=(20.0 if big else 5.0) * (1 + 0.1 * rng.random()),
                                 status="ok", source="synthetic",
                                 versions=json.dumps({"finetune": FINETUNE_VERSION}), written_at=time.time())
                        )
    return pd.DataFrame(rows)


def make_image_folder(
    root: Path,
    classes: int = 3,
    per_class: int = 12,
    size: int = 16,
    split: bool = False,
    val_per_class: int = 4,
    seed: int = 0,
    mode: str = "RGB",
) -> Path:
    """Write a tiny ImageFolder of PNGs whose class is its colour (plus noise), so a small model
    learns it in an epoch or two. split=True writes train/ and val/ sub-folders."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    palette = rng.uniform(30, 225, size=(classes, 3))
    # Spread the class colours apart so even a random-init model separates them quickly.
    for c in range(classes):
        palette[c, c % 3] = 255.0
    parts = [("train", per_class), ("val", val_per_class)] if split else [("", per_class)]
    for sub, n in parts:
        for c in range(classes):
            d = (root / sub / f"class_{c}") if sub else (root / f"class_{c}")
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                px = np.clip(palette[c] + rng.normal(0, 20, size=(size, size, 3)), 0, 255).astype(np.uint8)
                im = Image.fromarray(px, mode="RGB")
                if mode != "RGB":
                    im = im.convert(mode)
                im.save(d / f"{i:03d}.png")
    return root
