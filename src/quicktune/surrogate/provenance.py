"""What a meta-trained surrogate records about the data it learned from.

`suggest` must fine-tune the way the meta-dataset's curves were recorded (batch size, image
size), else the surrogate's predictions are about a different training procedure; and models are
described by the hub's numeric descriptors so that similar models share statistical strength.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from typing import Any, Iterable

import pandas as pd


def finetune_setting(runs: pd.DataFrame) -> dict[str, Any]:
    """The fine-tuning setting recorded in the rows' `versions` JSON: the most common batch size
    and the largest image size ({} when the rows were not collected by `quicktune collect`)."""
    if "versions" not in runs.columns or runs.empty:
        return {}
    batch: Counter = Counter()
    sizes: list[int] = []
    for text in runs["versions"].dropna().unique():
        try:
            v = json.loads(text)
        except (TypeError, ValueError):
            continue
        if "batch_size" in v:
            batch[int(v["batch_size"])] += 1
        if v.get("image_size"):
            sizes.append(int(v["image_size"]))
    out: dict[str, Any] = {}
    if batch:
        out["batch_size"] = batch.most_common(1)[0][0]
    if sizes:
        out["max_image_size"] = max(sizes)
    return out


def hub_descriptors(models: Iterable[str], weights_dir: str | os.PathLike | None = None) -> dict[str, dict[str, float]]:
    """{model: descriptors} for the models the hub can describe without downloading anything;
    models it does not know (e.g. those of an imported meta-dataset) are left out."""
    from quicktune.hub import model_info

    out: dict[str, dict[str, float]] = {}
    for m in models:
        try:
            out[m] = model_info(m, weights_dir).descriptors()
        except Exception:  # unknown name, or a timm model that would need the network
            continue
    return out
