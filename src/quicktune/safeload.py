"""Reading torch files that someone else could have written, without running their code.

quicktune's own files (run checkpoints, the decoded-data cache, converted weights, surrogates)
hold only tensors and plain values (dicts, lists, tuples, str, int, float, bool, None), so they
are read with `torch.load(weights_only=True)`: torch's restricted unpickler, which refuses any
other object instead of constructing it. A checkpoint or cache sits in a folder that another user
or process may be able to write; with a full unpickler a planted file would run code.

Everything that goes wrong comes out as one `SafeLoadError` (a ValueError) with a one-line
message naming the file: callers treat a cache or checkpoint that fails as absent (rebuild or
retrain), never as a reason to crash or to retry with the full unpickler.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import Any


class SafeLoadError(ValueError):
    """A file is not a readable tensors-and-plain-values torch file."""


def load_tensors(path: str | os.PathLike[str]) -> Any:
    """The content of a torch file of tensors and plain values, loaded on the CPU.

    Raises SafeLoadError (never torch's multi-line advice to pass weights_only=False) when the
    file is missing, truncated, not a torch file, or holds any other object.
    """
    import torch

    p = Path(path)
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise SafeLoadError(f"{p}: no such file") from None
    except pickle.UnpicklingError as e:
        # torch's message: "Weights only load failed ... Unsupported global: GLOBAL x.y ..."
        found = re.search(r"GLOBAL ([\w.]+)", str(e))
        what = f" ({found.group(1)})" if found else ""
        raise SafeLoadError(f"{p}: holds objects other than tensors and plain values{what}; refused, "
                            "since loading it could run code") from None
    except Exception as e:  # truncated zip, not a torch file, ...
        first = str(e).splitlines()[0].split(". ")[0] if str(e) else ""
        raise SafeLoadError(f"{p}: not a readable torch file ({type(e).__name__}{': ' + first if first else ''})") from None


__all__ = ["SafeLoadError", "load_tensors"]
