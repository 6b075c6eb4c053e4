"""Loading a task: decoded, resized, split and cached images."""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from quicktune.atomic import atomic_write
from quicktune.data.scan import (
    _common_side,
    _decode,
    _fingerprint,
    _layout,
    _scan_split,
    check_class_options,
)
from quicktune.data.spec import DataError, TaskSpec


def default_cache_dir() -> Path:
    """`data/` in the quicktune cache root ($QUICKTUNE_CACHE, else $XDG_CACHE_HOME/quicktune, else
    ~/.cache/quicktune; see quicktune.cachedir)."""
    from quicktune.cachedir import cache_dir

    return cache_dir("data")


# ------------------------------------------------------------------------------------------------
# Loaded data
# ------------------------------------------------------------------------------------------------
@dataclass
class Split:
    """images: a (n x 3 x S x S) uint8 tensor; labels: a (n,) long tensor in [0, n_classes)."""

    images: Any  # torch.Tensor
    labels: Any  # torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass
class TaskData:
    """A loaded task: train and validation splits as uint8 tensors, plus what describes them."""

    spec: TaskSpec
    classes: list[str]
    train: Split
    val: Split
    size: int
    original_channels: int  # 1 when every image was grayscale, else 3
    original_size: int  # median of the original images' longer side
    skipped: list[str] = field(default_factory=list)  # unreadable files skipped (skip_unreadable)
    test: Split | None = None  # the held-out test split (spec.test_fraction), never trained or selected on
    test_source: str = ""  # where the test split came from, in words (empty: no test split)

    @property
    def name(self) -> str:
        """The task name (`spec.task_name`; it names the resolution only when the spec sets one)."""
        return self.spec.task_name

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def descriptors(self) -> dict[str, float]:
        """Dataset meta-features: n_samples (train + val), n_classes, image_size (the task's
        resolution if it sets one, else the originals' median side), channels (of the originals,
        before the RGB conversion)."""
        return {
            "n_samples": float(len(self.train) + len(self.val)),
            "n_classes": float(self.n_classes),
            "image_size": float(self.spec.size if self.spec.size is not None else self.original_size),
            "channels": float(self.original_channels),
        }


def _read_cache(path: Path, classes: list[str], size: int) -> dict[str, Any] | None:
    """The decoded split cached at `path`, or None when it must be rebuilt: unreadable, not plain
    tensors (a planted pickle is refused by weights_only=True, never run), or not what this split
    decodes to (other classes, other image size, inconsistent lengths)."""
    import torch

    from quicktune.safeload import SafeLoadError, load_tensors

    try:
        c = load_tensors(path)
    except SafeLoadError:
        return None
    try:
        images, labels = c["images"], c["labels"]
        n = int(labels.shape[0])
        ok = (isinstance(images, torch.Tensor) and images.dtype == torch.uint8
              and tuple(images.shape) == (n, 3, size, size) and labels.dtype == torch.long
              and list(c["classes"]) == classes and (n == 0 or 0 <= int(labels.min()) <= int(labels.max()) < len(classes))
              and c["channels"].shape == (n,) and c["sides"].shape == (n,))
        if not ok:
            return None
        return {"images": images, "labels": labels, "classes": list(c["classes"]),
                "channels": c["channels"].numpy().astype(np.uint8), "sides": c["sides"].numpy().astype(np.int32),
                "unreadable": [(str(a), str(b)) for a, b in c["unreadable"]]}
    except (KeyError, TypeError, AttributeError, ValueError, RuntimeError):
        return None


def _load_split(
    folder: Path, files: dict[str, list[Path]], size: int, cache_dir: Path | None
) -> dict[str, Any]:
    """Decode (or read from cache) every image of one split folder.

    Returns {"images": (n x 3 x S x S) uint8 tensor, "labels": (n,) long (index into the sorted
    class names of this folder), "classes", "channels": (n,) uint8, "sides": (n,) int32,
    "unreadable": [(path, reason)]}.
    """
    import torch

    key = _fingerprint(folder, files, size)
    cache_file = None
    if cache_dir is not None:
        slug = re.sub(r"[^\w.-]+", "_", str(folder.resolve()).strip("/"))[-80:]
        cache_file = cache_dir / f"{slug}-{size}px-{key}.pt"
        if cache_file.exists():
            cached = _read_cache(cache_file, list(files), size)
            if cached is not None:
                return cached
    classes = list(files)
    images, labels, channels, sides, unreadable = [], [], [], [], []
    for ci, cls in enumerate(classes):
        for p in files[cls]:
            try:
                arr, ch, side = _decode(p, size)
            except Exception as e:  # PIL raises many types for corrupt files
                # PIL often repeats the path in its message; the error names it once already.
                reason = (str(e).splitlines()[0] if str(e) else type(e).__name__).replace(f" {str(p)!r}", "")
                unreadable.append((str(p), reason))
                continue
            images.append(arr)
            labels.append(ci)
            channels.append(ch)
            sides.append(side)
    out = {
        "images": torch.from_numpy(np.stack(images)) if images else torch.zeros((0, 3, size, size), dtype=torch.uint8),
        "labels": torch.tensor(labels, dtype=torch.long),
        "classes": classes,
        "channels": np.asarray(channels, dtype=np.uint8),
        "sides": np.asarray(sides, dtype=np.int32),
        "unreadable": unreadable,
    }
    if cache_file is not None:
        try:
            with atomic_write(cache_file) as f:
                # Tensors and plain values only, so the cache is read with weights_only=True.
                torch.save({**out, "channels": torch.from_numpy(out["channels"]),
                            "sides": torch.from_numpy(out["sides"]),
                            "unreadable": [list(u) for u in unreadable]}, f)
        except OSError as e:  # a read-only cache only costs speed
            warnings.warn(f"could not write the data cache {cache_file}: {e}", stacklevel=2)
    return out


# ------------------------------------------------------------------------------------------------
# Loading a task
# ------------------------------------------------------------------------------------------------
def _stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, val indices): per class, round(fraction * n) (>= 1, <= n - 1) to val."""
    rng = np.random.default_rng([seed, 0x5EED])
    train_idx, val_idx = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        n_val = min(max(1, int(round(fraction * len(idx)))), len(idx) - 1)
        val_idx.append(idx[:n_val])
        train_idx.append(idx[n_val:])
    return np.sort(np.concatenate(train_idx)), np.sort(np.concatenate(val_idx))


def _check_unreadable(bad: list[tuple[str, str]], skip_unreadable: bool) -> list[str]:
    if bad and not skip_unreadable:
        path, reason = bad[0]
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise DataError(
            f"{path}: unreadable or corrupt image ({reason}){more}; fix or remove it, or pass skip_unreadable "
            f"to skip such files"
        )
    return [p for p, _ in bad]


def load_task(
    spec: TaskSpec | str | os.PathLike[str],
    size: int | None = None,
    *,
    skip_unreadable: bool = False,
    cache_dir: str | os.PathLike[str] | None | bool = True,
) -> TaskData:
    """Load the task `spec` (a TaskSpec, a spec string or a folder path).

    size: the square side to resize to when the spec sets none (the spec's own `size` wins);
          with neither, the originals' most common longer side is used.
    skip_unreadable: skip unreadable/corrupt images (all are reported in `TaskData.skipped` and
          by a warning) instead of raising DataError on the first one.
    cache_dir: where decoded tensors are cached (True: `default_cache_dir()`; None/False: off).
    """
    import torch

    if not isinstance(spec, TaskSpec):
        spec = TaskSpec.parse(str(spec)) if isinstance(spec, str) else TaskSpec(str(spec))
    root = Path(spec.path).expanduser()
    cache = default_cache_dir() if cache_dir is True else (Path(cache_dir) if cache_dir else None)

    train_dir, val_dir, test_dir = _layout(root, holdout=spec.holds_out_test)
    train_files = _scan_split(train_dir)
    val_files = _scan_split(val_dir) if val_dir is not None else None
    test_files = _scan_split(test_dir) if test_dir is not None else None
    for other_dir, other, what in ((val_dir, val_files, "validation"), (test_dir, test_files, "test")):
        if other is not None and set(other) != set(train_files):
            raise DataError(
                f"{other_dir}: the {what} split must have the same class folders as {train_dir}, but "
                f"missing in {what}: {sorted(set(train_files) - set(other))[:5]}, missing in train: "
                f"{sorted(set(other) - set(train_files))[:5]}"
            )

    # Which classes to keep (before decoding, so derived tasks decode only what they use).
    all_classes = list(train_files)
    check_class_options(root, spec, all_classes)
    if spec.class_names is not None:
        keep = list(spec.class_names)
    elif spec.classes is not None:
        rng = np.random.default_rng([spec.seed, 0xC1A55])
        keep = sorted(all_classes[i] for i in rng.choice(len(all_classes), spec.classes, replace=False))
    else:
        keep = all_classes

    target = spec.size or size
    if target is None:
        target = _common_side(train_files)
    target = int(target)

    # Decode whole split folders (the cache is per folder and size, shared by every derived task).
    train_raw = _load_split(train_dir, train_files, target, cache)
    val_raw = None
    if val_dir is not None and val_files is not None:
        val_raw = _load_split(val_dir, val_files, target, cache)
    test_raw = _load_split(test_dir, test_files, target, cache) if test_dir is not None and test_files else None
    skipped = _check_unreadable(train_raw["unreadable"] + (val_raw["unreadable"] if val_raw else [])
                                + (test_raw["unreadable"] if test_raw else []), skip_unreadable)
    if skipped:
        from quicktune.notice import notice

        notice(f"skipped {len(skipped)} unreadable image(s): {', '.join(skipped)}")

    def select(raw: dict[str, Any], where: Path) -> tuple[Any, Any, np.ndarray, np.ndarray]:
        pos = {c: i for i, c in enumerate(raw["classes"])}
        new_label = torch.full((len(raw["classes"]),), -1, dtype=torch.long)
        for j, c in enumerate(keep):
            new_label[pos[c]] = j
        lab = new_label[raw["labels"]]
        mask = lab >= 0
        counts = torch.bincount(lab[mask], minlength=len(keep))
        empty = [keep[j] for j in range(len(keep)) if counts[j] == 0]
        if empty:
            raise DataError(f"{where / empty[0]}: class folder has no readable images (every class needs at least one)")
        m = mask.numpy()
        return raw["images"][mask], lab[mask], raw["channels"][m], raw["sides"][m]

    tr_x, tr_y, tr_ch, tr_side = select(train_raw, train_dir)
    test: Split | None = None
    test_source = ""
    if test_raw is not None:
        te_x, te_y, _, _ = select(test_raw, test_dir)  # type: ignore[arg-type]
        test, test_source = Split(te_x.contiguous(), te_y.contiguous()), f"the {test_dir.name}/ folder"  # type: ignore[union-attr]
    elif spec.holds_out_test:
        # Drawn first, so the validation split and the shots never touch it.
        need = 3 if val_raw is None else 2
        for j, c in enumerate(keep):
            if int((tr_y == j).sum()) < need:
                raise DataError(
                    f"{train_dir / c}: holding out a test split needs at least {need} images a class (test, "
                    f"{'validation, ' if need == 3 else ''}train), but it has {int((tr_y == j).sum())}; "
                    f"add a test/ folder or pass test=0"
                )
        rest_idx, te_idx = _stratified_split(tr_y.numpy(), float(spec.test_fraction), spec.seed + 0x7E57)  # type: ignore[arg-type]
        test = Split(tr_x[te_idx].contiguous(), tr_y[te_idx].contiguous())
        test_source = f"{spec.test_fraction:.0%} of each class of {train_dir.name}/ held out (seed {spec.seed})"
        tr_x, tr_y, tr_ch, tr_side = tr_x[rest_idx], tr_y[rest_idx], tr_ch[rest_idx], tr_side[rest_idx]
    if val_raw is not None:
        va_x, va_y, va_ch, va_side = select(val_raw, val_dir)  # type: ignore[arg-type]
    else:
        for j, c in enumerate(keep):
            if int((tr_y == j).sum()) < 2:
                raise DataError(
                    f"{train_dir / c}: with no val/ or test/ folder each class needs at least 2 images "
                    f"(one to train, one to validate), but it has {int((tr_y == j).sum())}"
                )
        tr_idx, va_idx = _stratified_split(tr_y.numpy(), spec.val_fraction, spec.seed)
        va_x, va_y, va_ch, va_side = tr_x[va_idx], tr_y[va_idx], tr_ch[va_idx], tr_side[va_idx]
        tr_x, tr_y, tr_ch, tr_side = tr_x[tr_idx], tr_y[tr_idx], tr_ch[tr_idx], tr_side[tr_idx]

    if spec.shots is not None:
        counts = torch.bincount(tr_y, minlength=len(keep))
        smallest = int(counts.min())
        if spec.shots > smallest:
            c = keep[int(counts.argmin())]
            raise DataError(
                f"{root}: `shots <= {smallest}` (training images of the smallest class, {c!r}) must hold, "
                f"but got shots={spec.shots}"
            )
        rng = np.random.default_rng([spec.seed, 0x5407])
        y = tr_y.numpy()
        idx = np.sort(np.concatenate([rng.choice(np.flatnonzero(y == j), spec.shots, replace=False) for j in range(len(keep))]))
        tr_x, tr_y, tr_ch, tr_side = tr_x[idx], tr_y[idx], tr_ch[idx], tr_side[idx]

    if spec.val_shots is not None:
        rng = np.random.default_rng([spec.seed, 0x7A15])
        y = va_y.numpy()
        idx = np.sort(np.concatenate([
            rng.choice(where, min(spec.val_shots, len(where)), replace=False)
            for where in (np.flatnonzero(y == j) for j in range(len(keep)))
        ]))
        va_x, va_y, va_ch, va_side = va_x[idx], va_y[idx], va_ch[idx], va_side[idx]

    channels = np.concatenate([tr_ch, va_ch])
    sides = np.concatenate([tr_side, va_side])
    return TaskData(
        spec=spec,
        classes=keep,
        train=Split(tr_x.contiguous(), tr_y.contiguous()),
        val=Split(va_x.contiguous(), va_y.contiguous()),
        size=target,
        original_channels=3 if (channels == 3).any() else 1,
        original_size=int(np.median(sides)) if len(sides) else target,
        skipped=skipped,
        test=test,
        test_source=test_source,
    )


