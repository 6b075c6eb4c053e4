"""Image classification data: ImageFolder loading, splits, derived tasks, validation, caching.

Layouts accepted (class folders hold the images; every sub-folder of a split is one class):

    ROOT/train/<class>/*.jpg  [+ ROOT/val/<class>/*  or  ROOT/test/<class>/*]   (given split)
    ROOT/<class>/*.jpg                                                          (split here)

Without a validation folder, the images are split reproducibly by `seed`, stratified per class
(`val_fraction` of each class, at least one image, goes to validation).

A test split (`test_fraction` set, as `quicktune suggest` does): ROOT/test/ when it exists (then
it is never the validation split: validation is ROOT/val/ or a split of train), else
`test_fraction` of each class of the training images (at least one; seeded by `seed`, drawn
before the validation split and the shots), so the search never sees it and the chosen model's
test accuracy is an unbiased estimate. `test_fraction=None` (collect, the meta-dataset) keeps
the layout above.

Images may come in mixed sizes and modes: they are normalised here — every image is converted to
3-channel RGB (grayscale repeated, alpha dropped, palettes expanded) and resized, not cropped,
to a `size x size` square (bilinear, antialiased), so no content is cut away. The decoded uint8
tensors are kept in memory and cached on disk, keyed by the folder's file list (names, mtimes
and byte sizes) and the target size, so a second load of an unchanged folder is fast.

Derived tasks (for the meta-dataset) are described by a `TaskSpec`: a class subset (a count
drawn with the seed, or explicit names), fewer shots (k training images per class, drawn with
the seed) and another resolution. A spec has a deterministic name, e.g.
"cifar10-small/c5-k50-32px", and a compact string form for the command line:

    PATH[:classes=5,shots=50,vshots=30,size=32,seed=1,names=cat+dog,val=0.2,name=NAME]

Bad input raises `DataError` (a ValueError) with one line naming the path and the rule broken.
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from quicktune.atomic import atomic_write

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
)
VAL_DIR_NAMES = ("val", "test")  # tried in this order when ROOT/train exists
DEFAULT_VAL_FRACTION = 0.2
# Bump when decoding/resizing changes, so stale caches are not reused.
_CACHE_VERSION = 1
# PIL modes whose pixels carry no colour: reported as 1 original channel.
_GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F", "La"})


class DataError(ValueError):
    """The data folder breaks a rule (missing, malformed, unreadable images, bad task options)."""


def default_cache_dir() -> Path:
    """$QUICKTUNE_CACHE/data if set, else ~/.cache/quicktune/data."""
    root = os.environ.get("QUICKTUNE_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "quicktune") / "data"


# ------------------------------------------------------------------------------------------------
# Task specification
# ------------------------------------------------------------------------------------------------
_OPTION_KEYS = ("classes", "names", "shots", "vshots", "size", "seed", "val", "test", "name")
_OPTS_RE = re.compile(r"^(?P<path>.*?):(?P<opts>[A-Za-z_]+=[^:]*)$")


@dataclass(frozen=True)
class TaskSpec:
    """A dataset folder plus the options that derive a task from it.

    classes:     keep this many classes, drawn with `seed` (None: all)
    class_names: keep exactly these classes (exclusive with `classes`)
    shots:       keep k training images per class, drawn with `seed` (None: all)
    val_shots:   keep at most k validation images per class, drawn with `seed` (None: all);
                 cheaper evaluation after every epoch on a CPU
    size:        side of the square images (None: chosen by the caller, e.g. the model's input)
    seed:        seeds the class draw, the shot draw and the split of an unsplit folder
    val_fraction: fraction of each class held out when the folder has no val/ or test/ split
    test_fraction: hold out a test split: ROOT/test/ if present, else this fraction of each
                 class of train (None: no test split; 0: none either, said explicitly)
    name:        the base name (default: the folder's name)
    """

    path: str
    classes: int | None = None
    class_names: tuple[str, ...] | None = None
    shots: int | None = None
    val_shots: int | None = None
    size: int | None = None
    seed: int = 0
    val_fraction: float = DEFAULT_VAL_FRACTION
    test_fraction: float | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", str(self.path))
        if self.class_names is not None:
            names = tuple(sorted(str(n) for n in self.class_names))
            object.__setattr__(self, "class_names", names)
            if self.classes is not None:
                raise DataError(f"{self.path}: give either `classes` (a count) or `names`, not both")
            if len(names) < 2 or len(set(names)) != len(names):
                raise DataError(f"{self.path}: `names` must list at least 2 distinct classes, but got {list(names)}")
        if self.classes is not None and self.classes < 2:
            raise DataError(f"{self.path}: `classes >= 2` must hold, but got classes={self.classes}")
        if self.shots is not None and self.shots < 1:
            raise DataError(f"{self.path}: `shots >= 1` must hold, but got shots={self.shots}")
        if self.val_shots is not None and self.val_shots < 1:
            raise DataError(f"{self.path}: `vshots >= 1` must hold, but got vshots={self.val_shots}")
        if self.size is not None and not 4 <= self.size <= 4096:
            raise DataError(f"{self.path}: `4 <= size <= 4096` must hold, but got size={self.size}")
        if not 0.0 < self.val_fraction < 1.0:
            raise DataError(f"{self.path}: `0 < val < 1` must hold, but got val={self.val_fraction}")
        if self.test_fraction is not None and not 0.0 <= self.test_fraction < 1.0:
            raise DataError(f"{self.path}: `0 <= test < 1` must hold, but got test={self.test_fraction}")

    @property
    def holds_out_test(self) -> bool:
        return bool(self.test_fraction is not None and self.test_fraction > 0)

    # -- naming -------------------------------------------------------------------------------
    @property
    def base_name(self) -> str:
        return self.name or Path(self.path).resolve().name or "data"

    @property
    def task_name(self) -> str:
        """A deterministic name for this task: the base name, then "/" and the options, e.g.
        "cifar10-small/c5-k50-32px" (no options: just the base name)."""
        parts = []
        if self.classes is not None:
            parts.append(f"c{self.classes}")
        if self.class_names is not None:
            joined = "+".join(self.class_names)
            if len(joined) <= 40 and re.fullmatch(r"[\w+.-]+", joined):
                parts.append(f"c[{joined}]")
            else:  # long or awkward names: a short, stable digest instead
                parts.append(f"c{len(self.class_names)}x" + hashlib.sha1(joined.encode()).hexdigest()[:6])
        if self.shots is not None:
            parts.append(f"k{self.shots}")
        if self.val_shots is not None:
            parts.append(f"vk{self.val_shots}")
        if self.size is not None:
            parts.append(f"{self.size}px")
        if self.val_fraction != DEFAULT_VAL_FRACTION:
            parts.append(f"v{self.val_fraction:g}")
        if self.holds_out_test:  # other training images than the same folder without a test split
            parts.append(f"t{self.test_fraction:g}")
        if self.seed != 0 and (self.classes is not None or self.shots is not None or self.val_shots is not None
                               or self.val_fraction != DEFAULT_VAL_FRACTION or self.holds_out_test):
            parts.append(f"s{self.seed}")
        return self.base_name + ("/" + "-".join(parts) if parts else "")

    @property
    def is_derived(self) -> bool:
        return self.task_name != self.base_name

    def with_size(self, size: int | None) -> TaskSpec:
        """This spec with `size` filled in when it has none (an explicit size wins)."""
        return self if self.size is not None or size is None else replace(self, size=int(size))

    # -- the compact string form --------------------------------------------------------------
    @classmethod
    def parse(cls, text: str) -> TaskSpec:
        """Parse `PATH[:key=value,...]` (keys: classes, names, shots, vshots, size, seed, val, test, name).

        `names` separates class names with '+'. Raises DataError for unknown keys or bad values.
        """
        text = text.strip()
        m = _OPTS_RE.match(text)
        path, opts = (m["path"], m["opts"]) if m else (text, "")
        if not path:
            raise DataError(f"a dataset spec looks like PATH[:classes=5,shots=50,size=32], but got {text!r}")
        kw: dict[str, Any] = {}
        for item in filter(None, (s.strip() for s in opts.split(","))):
            key, _, value = item.partition("=")
            key = key.strip().lower()
            if key not in _OPTION_KEYS:
                raise DataError(f"{path}: unknown dataset option {key!r}; options are {', '.join(_OPTION_KEYS)}")
            try:
                if key in ("classes", "shots", "size", "seed"):
                    kw[key] = int(value)
                elif key == "vshots":
                    kw["val_shots"] = int(value)
                elif key == "val":
                    kw["val_fraction"] = float(value)
                elif key == "test":
                    kw["test_fraction"] = float(value)
                elif key == "names":
                    kw["class_names"] = tuple(n for n in value.split("+") if n)
                else:
                    kw["name"] = value
            except ValueError:
                raise DataError(f"{path}: dataset option {key} must be a number, but got {value!r}") from None
        return cls(path, **kw)

    def to_string(self) -> str:
        """The compact string form (inverse of `parse`)."""
        opts = []
        if self.classes is not None:
            opts.append(f"classes={self.classes}")
        if self.class_names is not None:
            opts.append("names=" + "+".join(self.class_names))
        if self.shots is not None:
            opts.append(f"shots={self.shots}")
        if self.val_shots is not None:
            opts.append(f"vshots={self.val_shots}")
        if self.size is not None:
            opts.append(f"size={self.size}")
        if self.seed != 0:
            opts.append(f"seed={self.seed}")
        if self.val_fraction != DEFAULT_VAL_FRACTION:
            opts.append(f"val={self.val_fraction:g}")
        if self.test_fraction is not None:
            opts.append(f"test={self.test_fraction:g}")
        if self.name is not None:
            opts.append(f"name={self.name}")
        return self.path + (":" + ",".join(opts) if opts else "")


def parse_task_specs(text: str) -> list[TaskSpec]:
    """Parse a comma-separated list of specs, e.g. "a,b:classes=5,shots=10,c:size=32".

    A comma followed by `key=value` continues the previous spec's options; otherwise it starts
    a new spec.
    """
    chunks: list[str] = []
    for token in text.split(","):
        token = token.strip()
        if not token:
            continue
        if chunks and re.fullmatch(r"[A-Za-z_]+=[^:/\\]*", token) and ":" in chunks[-1]:
            chunks[-1] += "," + token
        else:
            chunks.append(token)
    if not chunks:
        raise DataError("no dataset given: expected PATH[:classes=5,shots=50,size=32][,PATH...]")
    return [TaskSpec.parse(c) for c in chunks]


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


# ------------------------------------------------------------------------------------------------
# Folder scanning and validation
# ------------------------------------------------------------------------------------------------
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
            try:
                return torch.load(cache_file, weights_only=False)
            except Exception:  # a damaged cache is rebuilt, never trusted
                pass
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
                torch.save(out, f)
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
            f"(--skip-unreadable) to skip such files"
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
    if spec.class_names is not None:
        unknown = sorted(set(spec.class_names) - set(all_classes))
        if unknown:
            raise DataError(f"{root}: `names` lists classes that are not folders here: {unknown[:5]}")
        keep = list(spec.class_names)
    elif spec.classes is not None:
        if spec.classes > len(all_classes):
            raise DataError(f"{root}: `classes <= {len(all_classes)}` (the folder's classes) must hold, but got classes={spec.classes}")
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
        warnings.warn(f"skipped {len(skipped)} unreadable image(s): {', '.join(skipped)}", stacklevel=2)

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


def describe(spec: TaskSpec | str, size: int | None = None, **kwargs: Any) -> dict[str, float]:
    """`load_task(spec, size).descriptors()`."""
    return load_task(spec, size, **kwargs).descriptors()


def derived_specs(spec: TaskSpec, classes: Sequence[int] = (), shots: Sequence[int] = (), sizes: Sequence[int] = ()) -> list[TaskSpec]:
    """Convenience: one derived spec per given class count, shot count and size (not crossed)."""
    out = [replace(spec, classes=c) for c in classes]
    out += [replace(spec, shots=k) for k in shots]
    out += [replace(spec, size=s) for s in sizes]
    return out


__all__ = [
    "DataError",
    "Split",
    "TaskData",
    "TaskSpec",
    "default_cache_dir",
    "derived_specs",
    "describe",
    "load_task",
    "parse_task_specs",
]
