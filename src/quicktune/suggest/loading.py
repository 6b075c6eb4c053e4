"""The surrogate checkpoint, the training setting its runs used, and the models to consider."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from quicktune.suggest.errors import SuggestError

DEFAULT_SURROGATE_PATH = Path(__file__).resolve().parents[1] / "assets" / "surrogate_v1.pt"
# Surrogates shipped in the package, by the name `load_surrogate` accepts.
SHIPPED_SURROGATES = {
    "v1": DEFAULT_SURROGATE_PATH,
    "quicktune": Path(__file__).resolve().parents[1] / "assets" / "surrogate_quicktune.pt",
}
# The v1 campaign trained with batch 32 at each model's input size capped at 64 px. A surrogate
# may record its own training setting in info["finetune"]; these are the fallbacks.
FALLBACK_BATCH_SIZE = 32


# ------------------------------------------------------------------------------------------------
# Surrogate and training settings
# ------------------------------------------------------------------------------------------------
def load_surrogate(path: str | os.PathLike[str] | None = None):
    """The surrogate checkpoint at `path`, or a shipped one by name ("v1": the embedded CPU
    meta-dataset's, the default; "quicktune": the Quick-Tune timm zoo's)."""
    from quicktune.surrogate.gp import Surrogate

    shipped = isinstance(path, str) and path in SHIPPED_SURROGATES and not Path(path).exists()
    if shipped:
        p = SHIPPED_SURROGATES[str(path)]
    else:
        p = Path(path).expanduser() if path is not None else DEFAULT_SURROGATE_PATH
    if not p.is_file():
        if path is None or shipped:
            raise SuggestError(
                f"the default surrogate {p} is missing from this installation; reinstall quicktune or pass "
                f"--surrogate FILE (a checkpoint written by `quicktune metatrain`)"
            )
        raise SuggestError(f"{p}: no such surrogate checkpoint (--surrogate expects a file written by `quicktune metatrain` "
                           f"or a shipped name: {', '.join(SHIPPED_SURROGATES)})")
    try:
        return Surrogate.load(p)
    except FileNotFoundError as e:
        raise SuggestError(str(e)) from None
    except (ValueError, KeyError, TypeError, RuntimeError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        if not msg.startswith(str(p)):
            msg = f"{p}: not a compatible surrogate checkpoint ({msg})"
        raise SuggestError(msg) from None


def finetune_settings(surrogate: Any) -> dict[str, Any]:
    """How the runs the surrogate learned from were trained: {"batch_size", "max_image_size"}.

    Read from `surrogate.info["finetune"]` when meta-training recorded it, else the v1 campaign's
    setting (batch 32; no resolution cap is assumed, so a GPU user trains at full resolution).
    """
    info = dict(getattr(surrogate, "info", {}) or {}).get("finetune") or {}
    return {
        "batch_size": int(info.get("batch_size", FALLBACK_BATCH_SIZE)),
        "max_image_size": (int(info["max_image_size"]) if info.get("max_image_size") else None),
    }


# ------------------------------------------------------------------------------------------------
# Models and candidates
# ------------------------------------------------------------------------------------------------
def resolve_models(models: Sequence[str] | None, weights_dir: str | os.PathLike[str] | None) -> list[str]:
    """The models to consider: `models` (checked: each must load offline from the weights dir),
    or every model available offline when None."""
    from quicktune import hub

    wd = Path(weights_dir).expanduser() if weights_dir is not None else hub.default_weights_dir()
    available = hub.list_models(wd)
    if not available:
        raise SuggestError(
            f"no model weights found in {wd}; point --weights-dir (or $QUICKTUNE_WEIGHTS) at a folder of hub "
            f"checkpoints or published weights (see `quicktune hub list`)"
        )
    if models is None:
        return available
    chosen = list(dict.fromkeys(m.strip() for m in models if m.strip()))
    if not chosen:
        raise SuggestError("--models is empty; give comma-separated hub model names")
    unknown = [m for m in chosen if m not in available]
    if unknown:
        raise SuggestError(
            f"unknown model(s) {', '.join(unknown)}; models available offline in {wd}: {', '.join(available)}"
        )
    return chosen
