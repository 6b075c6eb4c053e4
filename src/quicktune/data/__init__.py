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

from quicktune.data.scan import (  # noqa: F401
    _CACHE_VERSION,
    _GRAY_MODES,
    IMAGE_EXTENSIONS,
    VAL_DIR_NAMES,
    _class_dirs,
    _common_side,
    _decode,
    _fingerprint,
    _is_image,
    _layout,
    _scan_split,
)
from quicktune.data.spec import (  # noqa: F401
    _OPTION_KEYS,
    _OPTS_RE,
    DEFAULT_VAL_FRACTION,
    DataError,
    TaskSpec,
    parse_task_specs,
)
from quicktune.data.tasks import (  # noqa: F401
    Split,
    TaskData,
    _check_unreadable,
    _load_split,
    _stratified_split,
    default_cache_dir,
    load_task,
)

__all__ = [
    "DataError",
    "Split",
    "TaskData",
    "TaskSpec",
    "default_cache_dir",
    "load_task",
    "parse_task_specs",
]
