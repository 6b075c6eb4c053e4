"""The surrogates shipped in the package (`quicktune/assets/surrogate_<name>.pt`), loaded by name,
or any checkpoint written by `quicktune metatrain`, loaded by path."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch and gpytorch load only when a surrogate does
    from quicktune.surrogate.gp import Surrogate

ASSETS = Path(__file__).resolve().parents[1] / "assets"
# The one place that names the default surrogate (suggest's and the public API's): the CPU
# surrogate of the most complete embedded meta-dataset.
DEFAULT_SURROGATE = "v2"
DEFAULT_SURROGATE_PATH = ASSETS / f"surrogate_{DEFAULT_SURROGATE}.pt"


def shipped_surrogates() -> dict[str, Path]:
    """{name: checkpoint} of the surrogates in the package, e.g. {"v1": .../surrogate_v1.pt}."""
    return {p.stem.removeprefix("surrogate_"): p for p in sorted(ASSETS.glob("surrogate_*.pt"))}


def load_surrogate(name_or_path: str | os.PathLike[str] | None = None) -> Surrogate:
    """A shipped surrogate by name (default "v2", meta-trained on metadataset/v2: v1 plus the optimizer,
    schedule, frozen-embedding and L2-SP runs; "v1", "quicktune") or a
    checkpoint file. ValueError, one line naming the file, when it is missing or not a surrogate."""
    from quicktune.surrogate.gp import Surrogate

    shipped = shipped_surrogates()
    if name_or_path is None:
        name_or_path = DEFAULT_SURROGATE
    if isinstance(name_or_path, str) and name_or_path in shipped and not Path(name_or_path).exists():
        p = shipped[name_or_path]
    else:
        p = Path(name_or_path).expanduser()
    if not p.is_file():
        known = ", ".join(shipped) or "none in this installation"
        raise ValueError(f"{p}: no such surrogate checkpoint (shipped surrogates: {known}; or a file written by "
                         f"`quicktune metatrain`)")
    try:
        return Surrogate.load(p)
    except FileNotFoundError as e:
        raise ValueError(str(e)) from None
    except (ValueError, KeyError, TypeError, RuntimeError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        if not msg.startswith(str(p)):
            msg = f"{p}: not a compatible surrogate checkpoint ({msg})"
        raise ValueError(msg) from None
