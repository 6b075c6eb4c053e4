"""The fine-tuning hyperparameters a `Config` may carry as extras, typed and validated.

Every hyperparameter beyond (model, ELR, weight decay, momentum) is a Config extra, named like the
column of the published Quick-Tune meta-dataset that records it (`cat:sched:cosine` -> extra
`sched="cosine"`), so an imported Quick-Tune config runs as it was recorded. An extra that is absent
means v1's behaviour, so a v1 config keeps its run key and its numerics:

    optimizer           sgd (v1: heavy-ball momentum SGD; momentum 0 = plain SGD) | momentum |
                        nesterov | adam | adamw | ... (space.ADAPTIVE_OPTIMIZERS)
    sched               absent: v1's per-update cosine over the horizon, no warm-up;
                        cosine | step | multistep | plateau: timm's scheduler, stepped per epoch
    warmup_epochs, warmup_lr, decay_epochs, decay_rate, patience_epochs   (timm's meanings)
    smoothing, mixup, cutmix, mixup_prob, drop, data_augmentation (+ auto_augment, ra_num_ops,
    ra_magnitude), opt_betas, layer_decay, clip_grad, amp
    freeze_embedding, linear_probing, pct_to_freeze, sp_reg (L2-SP strength)

`Recipe.from_config(config)` is the one place that reads them. Recorded Quick-Tune columns the
fine-tuner does not run (`UNSUPPORTED`) are accepted only at their "off" value (0 / False / None).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from quicktune.space import Config

SCHEDULES = ("cosine", "step", "multistep", "plateau")
AUGMENTATIONS = ("None", "auto_augment", "random_augment", "trivial_augment")
AUTO_AUGMENT_POLICIES = ("original", "v0")
# Recorded by Quick-Tune, not run here: accepted only when off.
UNSUPPORTED = ("bss_reg", "cotuning_reg", "delta_reg", "stoch_norm")
# Extras that are data or bookkeeping, not training hyperparameters of the recipe.
_OTHER = ("optimizer", "batch_size")


def _none(v: Any) -> bool:
    return v is None or (isinstance(v, str) and v.strip().lower() in ("none", "null", ""))


@dataclass(frozen=True)
class Recipe:
    """The typed training recipe of one config; defaults are v1's behaviour (None = not used)."""

    optimizer: str = "sgd"
    opt_betas: tuple[float, float] | None = None
    sched: str | None = None  # None: v1's per-update cosine, kept verbatim (see timm_parts.make_scheduler)
    warmup_epochs: int = 0
    warmup_lr: float = 1e-5
    decay_epochs: float = 90.0
    decay_rate: float = 0.1
    patience_epochs: int = 10
    smoothing: float = 0.0
    mixup: float = 0.0
    cutmix: float = 0.0
    mixup_prob: float = 1.0
    drop: float | None = None
    data_augmentation: str = "None"  # "None": v1's random crop + flip on the uint8 tensors
    auto_augment: str = "v0"
    ra_num_ops: int = 2
    ra_magnitude: int = 9
    layer_decay: float | None = None
    clip_grad: float | None = None
    amp: bool | None = None  # None: on with CUDA, off on the CPU
    freeze_embedding: bool = False
    linear_probing: bool = False
    pct_to_freeze: float = 0.0
    sp_reg: float = 0.0

    @classmethod
    def from_config(cls, config: Config) -> Recipe:
        """Read and validate `config`'s extras; ValueError (one line: the extra, the rule, the value)."""
        from quicktune.space import ADAPTIVE_OPTIMIZERS, SGD_OPTIMIZERS

        known = {f.name for f in fields(cls)}
        kw: dict[str, Any] = {}
        for name, value in config.extra_items():
            if name in UNSUPPORTED:
                if not (_none(value) or value in (0, 0.0, False)):
                    raise ValueError(f"the fine-tuner can not run extra {name}={value!r}; only its off value "
                                     f"(0) is accepted (supported: {', '.join(sorted(known))})")
                continue
            if name in known:
                kw[name] = value
            elif name not in _OTHER:
                # a typo or a hyperparameter this fine-tuner can not run: never silently ignored
                raise ValueError(f"the fine-tuner does not know extra `{name}`; it runs: "
                                 f"{', '.join(sorted(known | set(_OTHER)))}")
        r = cls(**{k: _coerce(cls, k, v) for k, v in kw.items()})
        opts = sorted(SGD_OPTIMIZERS | ADAPTIVE_OPTIMIZERS)
        _check(r.optimizer in opts, "optimizer", f"one of {opts}", r.optimizer)
        _check(r.sched is None or r.sched in SCHEDULES, "sched", f"one of {list(SCHEDULES)}", r.sched)
        _check(r.data_augmentation in AUGMENTATIONS, "data_augmentation", f"one of {list(AUGMENTATIONS)}",
               r.data_augmentation)
        _check(r.auto_augment in AUTO_AUGMENT_POLICIES, "auto_augment", f"one of {list(AUTO_AUGMENT_POLICIES)}",
               r.auto_augment)
        _check(r.warmup_epochs >= 0, "warmup_epochs", ">= 0", r.warmup_epochs)
        _check(r.warmup_lr >= 0, "warmup_lr", ">= 0", r.warmup_lr)
        _check(r.decay_epochs > 0, "decay_epochs", "> 0", r.decay_epochs)
        _check(0 < r.decay_rate <= 1, "decay_rate", "in (0, 1]", r.decay_rate)
        _check(r.patience_epochs >= 0, "patience_epochs", ">= 0", r.patience_epochs)
        _check(0 <= r.smoothing < 1, "smoothing", "in [0, 1)", r.smoothing)
        _check(r.mixup >= 0 and r.cutmix >= 0, "mixup/cutmix", ">= 0", (r.mixup, r.cutmix))
        _check(0 <= r.mixup_prob <= 1, "mixup_prob", "in [0, 1]", r.mixup_prob)
        _check(r.drop is None or 0 <= r.drop < 1, "drop", "in [0, 1)", r.drop)
        # timm's RandAugment posterizes to int(m / 10 * 4) bits: m < 3 would ask Pillow for 0 bits
        _check(r.ra_num_ops >= 1 and 3 <= r.ra_magnitude <= 30, "ra_num_ops/ra_magnitude", ">= 1 / in [3, 30]",
               (r.ra_num_ops, r.ra_magnitude))
        _check(r.layer_decay is None or 0 < r.layer_decay <= 1, "layer_decay", "in (0, 1]", r.layer_decay)
        _check(r.clip_grad is None or r.clip_grad > 0, "clip_grad", "> 0", r.clip_grad)
        _check(0 <= r.pct_to_freeze <= 1, "pct_to_freeze", "in [0, 1]", r.pct_to_freeze)
        _check(r.sp_reg >= 0, "sp_reg", ">= 0", r.sp_reg)
        _check(r.opt_betas is None or all(0 <= b < 1 for b in r.opt_betas), "opt_betas", "two numbers in [0, 1)",
               r.opt_betas)
        return r

    @property
    def is_v1(self) -> bool:
        """True when training is exactly v1's procedure (only optimizer and batch size vary)."""
        return self == Recipe(optimizer=self.optimizer)

    @property
    def uses_mixup(self) -> bool:
        return (self.mixup > 0 or self.cutmix > 0) and self.mixup_prob > 0

    @property
    def timm_auto_augment(self) -> str | None:
        """The `auto_augment` string for `timm.data.create_transform` (None: v1's crop + flip).

        "trivial": torchvision's TrivialAugmentWide between timm's crop/flip and its normalisation
        (timm has no TrivialAugment; its RandAugment with random magnitudes can ask PIL for a
        0-bit posterize, which current Pillow refuses).
        """
        return {
            "None": None,
            "auto_augment": self.auto_augment,
            "random_augment": f"rand-m{self.ra_magnitude}-n{self.ra_num_ops}",
            "trivial_augment": "trivial",
        }[self.data_augmentation]


def _check(ok: bool, name: str, rule: str, value: Any) -> None:
    if not ok:
        raise ValueError(f"extra `{name}` must be {rule}, but got {value!r}")


def _coerce(cls: type[Recipe], name: str, value: Any) -> Any:
    """Extras come as JSON scalars (or strings from an imported table): give them the field's type."""
    try:
        if name == "opt_betas":
            if _none(value):
                return None
            betas = json.loads(value) if isinstance(value, str) else list(value)
            if len(betas) != 2:
                raise ValueError
            return (float(betas[0]), float(betas[1]))
        if name in ("sched",):
            return None if _none(value) else str(value).lower()
        if name == "data_augmentation":
            return "None" if _none(value) else str(value).lower()
        if name in ("optimizer", "auto_augment"):
            return "v0" if (name == "auto_augment" and _none(value)) else str(value).lower()
        if name in ("drop", "layer_decay", "clip_grad"):
            # Quick-Tune records "off" as -1 for these (no clipping, no layer decay)
            if _none(value) or (name != "drop" and float(value) <= 0):
                return None
            return float(value)
        if name == "amp":
            return None if _none(value) else bool(value)
        if name in ("freeze_embedding", "linear_probing"):
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0"):
                    raise ValueError
                return value.lower() in ("true", "1")
            return bool(value)
        if name in ("warmup_epochs", "patience_epochs", "ra_num_ops", "ra_magnitude"):
            f = float(value)
            if not f.is_integer():
                raise ValueError
            return int(f)
        f = float(value)
        if not math.isfinite(f):
            raise ValueError
        return f
    except (TypeError, ValueError, json.JSONDecodeError):
        raise ValueError(f"extra `{name}` has an unreadable value {value!r}") from None


# How `describe_extras` names an extra (others go by their own name).
_LABELS = {"freeze_embedding": "frozen embedding", "linear_probing": "linear probing", "sp_reg": "L2-SP",
           "warmup_epochs": "warm-up", "smoothing": "label smoothing", "pct_to_freeze": "frozen share"}


def describe_extras(extras: Mapping[str, Any]) -> str:
    """A config's extras in one short line for a table, the optimizer first, e.g. "adamw, sched
    cosine, warm-up 1, frozen embedding, L2-SP 0.01"; "" for v1's recipe (no extras). A False flag
    is left out (it is the default)."""
    parts = [str(extras["optimizer"])] if "optimizer" in extras else []
    for name in sorted(set(extras) - {"optimizer"}):
        value = extras[name]
        label = _LABELS.get(name, name)
        if isinstance(value, bool):
            parts.extend([label] if value else [])
        elif isinstance(value, float):
            parts.append(f"{label} {value:g}")
        else:
            parts.append(f"{label} {value}")
    return ", ".join(parts)


def recipe_extras() -> list[str]:
    """Every extra name the fine-tuner reads (for search spaces and docs)."""
    return [f.name for f in fields(Recipe)] + [n for n in _OTHER if n != "optimizer"]


__all__ = ["AUGMENTATIONS", "AUTO_AUGMENT_POLICIES", "SCHEDULES", "UNSUPPORTED", "Recipe", "describe_extras", "recipe_extras"]
