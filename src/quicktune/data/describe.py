"""The dataset descriptors of an image folder from a scan of its files and image headers.

A zero-shot ranking over a model zoo needs only what can be computed without a model: the
meta-dataset's dataset descriptors (schema.DATASET_DESCRIPTORS: n_samples, n_classes, image_size,
channels). Decoding every image to get them would cost minutes on a large folder; counting files
and reading a sample of headers takes seconds, and gives the same numbers as
`TaskData.descriptors()` for the task the spec derives (n_samples: training + validation images
after the class / shot options; image_size: the spec's size, else the most common longer side of
the originals; channels: 1 when most originals are grayscale, else 3).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from quicktune.data.scan import _GRAY_MODES, _common_side, _layout, _scan_split, check_class_options
from quicktune.data.spec import DataError, TaskSpec

_HEADER_SAMPLE = 256  # images whose header is read for the size and channels


def describe_folder(spec: TaskSpec | str) -> dict[str, float]:
    """{n_samples, n_classes, image_size, channels} of the task `spec` (a TaskSpec or its string
    form), without decoding images. Raises DataError (one line) for a folder breaking the rules."""
    if not isinstance(spec, TaskSpec):
        spec = TaskSpec.parse(str(spec))
    root = Path(spec.path).expanduser()
    train_dir, val_dir, _ = _layout(root)  # test/ serves as validation without a val/, as in load_task
    train = _scan_split(train_dir)
    val = _scan_split(val_dir) if val_dir is not None else None
    if val is not None and set(val) != set(train):
        raise DataError(f"{val_dir}: the validation split must have the same class folders as {train_dir}")
    classes = list(train)
    check_class_options(root, spec, classes)
    if spec.class_names is not None:
        classes = list(spec.class_names)
    elif spec.classes is not None:
        classes = classes[: spec.classes]  # which ones does not change the counts' order of magnitude
    n_train = {c: len(train[c]) for c in classes}
    n_val = {c: len(val[c]) for c in classes} if val is not None else None
    if n_val is None:  # an unsplit folder: load_task holds out val_fraction of each class
        n_val = {c: max(1, round(spec.val_fraction * n)) for c, n in n_train.items()}
        n_train = {c: n - n_val[c] for c, n in n_train.items()}
    if spec.shots is not None:
        n_train = {c: min(n, spec.shots) for c, n in n_train.items()}
    if spec.val_shots is not None:
        n_val = {c: min(n, spec.val_shots) for c, n in n_val.items()}
    kept = {c: train[c] for c in classes}
    side = int(spec.size) if spec.size is not None else _common_side(kept, _HEADER_SAMPLE)
    return {
        "n_samples": float(sum(n_train.values()) + sum(n_val.values())),
        "n_classes": float(len(classes)),
        "image_size": float(side),
        "channels": float(_channels(kept)),
    }


def _channels(files: dict[str, list[Path]]) -> int:
    """1 when most sampled originals are grayscale, else 3 (as the decoder counts channels)."""
    from PIL import Image

    paths = [p for ps in files.values() for p in ps]
    step = max(1, len(paths) // _HEADER_SAMPLE)
    gray = []
    for p in paths[::step]:
        try:
            with Image.open(p) as im:
                gray.append(im.mode in _GRAY_MODES)
        except (OSError, ValueError):  # unreadable: the decoder reports it with its rules
            continue
    return 1 if gray and float(np.mean(gray)) > 0.5 else 3


__all__ = ["describe_folder"]
