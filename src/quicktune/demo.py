"""A tiny real demo task that needs no download: scikit-learn's bundled handwritten digits
(UCI ML hand-written digits, 1,797 8x8 grayscale images, 10 classes; BSD-3 with scikit-learn),
written once as an ImageFolder (train/ and val/, PNG) into the quicktune cache, not shipped as
files. `quicktune suggest --data demo` uses it when no folder named `demo` exists."""

from __future__ import annotations

import os
from pathlib import Path

DEMO_NAME = "demo"


def digits_folder(root: str | os.PathLike[str] | None = None, val_fraction: float = 0.2, seed: int = 0) -> Path:
    """The digits ImageFolder under `root` (default: `<cache>/demo/digits`), written on first use."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    from quicktune.cachedir import cache_dir

    out = Path(root) if root is not None else cache_dir("demo") / "digits"
    done = out / ".complete"
    if done.is_file():
        return out
    digits = load_digits()
    images = (digits.images * (255.0 / 16.0)).round().astype(np.uint8)  # 0..16 -> 0..255
    order = np.random.default_rng(seed).permutation(len(images))
    n_val = int(round(val_fraction * len(images)))
    for rank, i in enumerate(order):
        split = "val" if rank < n_val else "train"
        d = out / split / str(int(digits.target[i]))
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(images[i], mode="L").save(d / f"{int(i):04d}.png")
    done.write_text("sklearn.datasets.load_digits\n")  # last: a half-written folder is rewritten
    return out


def resolve_data(text: str) -> str:
    """`text`, or the demo folder's path when `text` is "demo" (optionally with task options,
    "demo:shots=20") and no such folder exists here."""
    path, sep, opts = text.partition(":")
    if path == DEMO_NAME and not Path(path).exists():
        return str(digits_folder()) + (sep + opts if sep else "")
    return text
