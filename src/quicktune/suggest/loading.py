"""The surrogate checkpoint, the training setting its runs used, and the models to consider."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from quicktune.metadataset.schema import FeatureSettings, FinetuneSetting
from quicktune.suggest.errors import SuggestError
from quicktune.surrogate.shipped import DEFAULT_SURROGATE_PATH as DEFAULT_SURROGATE_PATH

if TYPE_CHECKING:
    from quicktune.surrogate.gp import Surrogate

# The v1 campaign trained with batch 32 at each model's input size capped at 64 px. A surrogate
# may record its own training setting in info["finetune"]; these are the fallbacks.
FALLBACK_BATCH_SIZE = 32


# ------------------------------------------------------------------------------------------------
# Surrogate and training settings
# ------------------------------------------------------------------------------------------------
def load_surrogate(path: str | os.PathLike[str] | None = None) -> Surrogate:
    """The surrogate checkpoint at `path`, or a shipped one by name (default: the one shipped in
    the package); SuggestError with one line when it is missing or foreign."""
    from quicktune.surrogate.shipped import load_surrogate as load

    if path is None and not DEFAULT_SURROGATE_PATH.is_file():
        raise SuggestError(f"the default surrogate {DEFAULT_SURROGATE_PATH} is missing from this installation; "
                           f"reinstall quicktune or give a checkpoint written by `quicktune metatrain`")
    try:
        return load(DEFAULT_SURROGATE_PATH if path is None else path)
    except ValueError as e:
        raise SuggestError(str(e)) from None


def finetune_settings(surrogate: object) -> FinetuneSetting:
    """How the runs the surrogate learned from were trained (batch size, largest image size).

    Read from `surrogate.info["finetune"]` when meta-training recorded it, else the v1 campaign's
    batch size (no resolution cap is assumed, so a GPU user trains at full resolution).
    """
    info = dict(getattr(surrogate, "info", {}) or {})
    setting = FinetuneSetting.from_dict(info.get("finetune"))
    return FinetuneSetting(setting.batch_size or FALLBACK_BATCH_SIZE, setting.max_image_size)


def feature_settings(surrogate: object) -> FeatureSettings:
    """How the domain features the surrogate learned from were computed (`surrogate.info["features"]`,
    recorded by meta-training; surrogates from before that record the v1 campaign's defaults)."""
    return FeatureSettings.from_dict(dict(getattr(surrogate, "info", {}) or {}).get("features"))


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
            f"no model weights found in {wd}; point the weights dir (or $QUICKTUNE_WEIGHTS) at a folder of hub "
            f"checkpoints or published weights (see `quicktune hub list`)"
        )
    if models is None:
        return available
    chosen = list(dict.fromkeys(m.strip() for m in models if m.strip()))
    if not chosen:
        raise SuggestError("the model list is empty; give hub model names")
    unknown = [m for m in chosen if m not in available]
    if unknown:
        raise SuggestError(
            f"unknown model(s) {', '.join(unknown)}; models available offline in {wd}: {', '.join(available)}"
        )
    return chosen
