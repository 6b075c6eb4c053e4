"""Scanning and decoding an image folder: layouts, class folders, images."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from quicktune.data.spec import DataError, TaskSpec

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
)
VAL_DIR_NAMES = ("val", "test")  # tried in this order when ROOT/train exists
# Bump when decoding/resizing changes, so stale caches are not reused.
_CACHE_VERSION = 1
# PIL modes whose pixels carry no colour: reported as 1 original channel.
_GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F", "La"})


# ------------------------------------------------------------------------------------------------
# Folder scanning and validation
# ------------------------------------------------------------------------------------------------
def check_class_options(root: Path, spec: TaskSpec, classes: list[str]) -> None:
    """Refuse `names` / `classes` options the folder's class folders `classes` cannot satisfy (one
    line each). The rule for the task loader and the header-only descriptor scan alike."""
    if spec.class_names is not None:
        unknown = sorted(set(spec.class_names) - set(classes))
        if unknown:
            raise DataError(f"{root}: `names` lists classes that are not folders here: {unknown[:5]}")
    elif spec.classes is not None and spec.classes > len(classes):
        raise DataError(f"{root}: `classes <= {len(classes)}` (the folder's classes) must hold, but got classes={spec.classes}")


def _is_image(p: Path) -> bool:
    return p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")


def _class_dirs(folder: Path) -> list[Path]:
    return sorted((d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")), key=lambda d: d.name)


def _scan_split(folder: Path) -> dict[str, list[Path]]:
    """class name -> sorted image files; checks the class-folder rules."""
    classes = _class_dirs(folder)
    if not classes:
        raise DataError(f"{folder}: no class folders (expected one sub-folder of images per class)")
    if len(classes) < 2:
        raise DataError(f"{folder}: only one class folder ({classes[0].name!r}); classification needs at least 2")
    files: dict[str, list[Path]] = {}
    for d in classes:
        imgs = sorted((p for p in d.rglob("*") if p.is_file() and _is_image(p)), key=lambda p: str(p))
        if not imgs:
            raise DataError(
                f"{d}: class folder has no images (every class needs at least one "
                f"{'/'.join(sorted(e.lstrip('.') for e in IMAGE_EXTENSIONS))} file)"
            )
        files[d.name] = imgs
    return files


def _layout(root: Path, holdout: bool = False) -> tuple[Path, Path | None, Path | None]:
    """(train folder, validation folder or None, test folder or None) for ROOT. Without
    `holdout`, test/ serves as the validation split when there is no val/ (and no test folder)."""
    if not root.exists():
        raise DataError(f"{root}: no such directory")
    if not root.is_dir():
        raise DataError(f"{root}: not a directory (expected an ImageFolder: one sub-folder of images per class)")
    train = root / "train"
    if not train.is_dir():
        return root, None, None
    if holdout:
        val, test = root / "val", root / "test"
        return train, (val if val.is_dir() else None), (test if test.is_dir() else None)
    for name in VAL_DIR_NAMES:
        if (root / name).is_dir():
            return train, root / name, None
    return train, None, None


# ------------------------------------------------------------------------------------------------
# Decoding with an on-disk cache
# ------------------------------------------------------------------------------------------------
def _fingerprint(folder: Path, files: dict[str, list[Path]], size: int) -> str:
    h = hashlib.sha256(f"v{_CACHE_VERSION}|{size}|".encode())
    for cls, paths in files.items():
        for p in paths:
            st = p.stat()
            h.update(f"{cls}/{p.relative_to(folder)}|{st.st_mtime_ns}|{st.st_size}\n".encode())
    return h.hexdigest()[:24]


def _decode(path: Path, size: int) -> tuple[np.ndarray, int, int]:
    """(3 x size x size) uint8 array, original channels (1 or 3), original longer side."""
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        channels = 1 if im.mode in _GRAY_MODES else 3
        side = max(im.size)
        if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
            # 16-bit / float grayscale: scale to 8 bits before RGB, or convert() would clip.
            arr = np.asarray(im, dtype=np.float64)
            lo, hi = float(arr.min()), float(arr.max())
            arr = np.zeros_like(arr) if hi <= lo else (arr - lo) / (hi - lo) * 255.0
            im = Image.fromarray(arr.astype(np.uint8), mode="L")
        rgb = im.convert("RGB")
        if rgb.size != (size, size):
            rgb = rgb.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=None)
        arr = np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1)
    return np.ascontiguousarray(arr), channels, side


def _common_side(files: dict[str, list[Path]], sample: int = 256) -> int:
    """The most common longer side among (a deterministic sample of) the images' headers."""
    from PIL import Image

    paths = [p for ps in files.values() for p in ps]
    step = max(1, len(paths) // sample)
    sides: list[int] = []
    for p in paths[::step]:
        try:
            with Image.open(p) as im:
                sides.append(max(im.size))
        except Exception:
            continue  # reported by the decoder with the rules for unreadable files
    if not sides:
        raise DataError(f"{paths[0].parent.parent}: no readable image to take the image size from")
    values, counts = np.unique(sides, return_counts=True)
    return int(values[np.argmax(counts)])
