"""The task-spec grammar: a folder plus a class subset, shots, resolution and seed."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

DEFAULT_VAL_FRACTION = 0.2


class DataError(ValueError):
    """The data folder breaks a rule (missing, malformed, unreadable images, bad task options)."""


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
        if self.seed < 0:
            raise DataError(f"{self.path}: `seed >= 0` must hold, but got seed={self.seed}")
        # The name becomes part of store names and of the default work dir (./.quicktune/<name>):
        # one path component of ordinary characters, never "." or ".." or a path.
        if self.name is not None and not re.fullmatch(r"[\w+-][\w.+-]*", self.name):
            raise DataError(f"{self.path}: `name` must be letters, digits, '_', '-', '+' or '.' (not starting with "
                            f"'.'), but got name={self.name!r}")
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
        if self.seed != 0 and (self.classes is not None or self.shots is not None or self.val_shots is not None
                               or self.val_fraction != DEFAULT_VAL_FRACTION):
            parts.append(f"s{self.seed}")
        return self.base_name + ("/" + "-".join(parts) if parts else "")

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
