"""A config as the equivalent command-line flags of timm's `train.py`.

The flags say what quicktune's fine-tuner runs (`quicktune.finetune.recipe.Recipe`, built with
timm's factories), so a user with their own timm set-up can reproduce a suggestion. Options timm's
train.py has no flag for (TrivialAugment, linear probing, freezing a share of the backbone, L2-SP)
are returned separately as `quicktune_only`.
"""

from __future__ import annotations

from typing import Any

from quicktune.space import ADAPTIVE_OPTIMIZERS, Config


def _num(v: float) -> str:
    return f"{float(v):g}"


def train_py_flags(config: Config, epochs: int, image_size: int | None = None) -> tuple[list[str], dict[str, Any]]:
    """(flags for timm's train.py, {option: value} of what only quicktune runs) for `config`
    trained for `epochs` epochs (at `image_size` px when given)."""
    from quicktune.finetune.recipe import Recipe
    from quicktune.finetune.timm_parts import timm_optimizer_name

    r = Recipe.from_config(config)
    f = ["--model", config.model, "--pretrained", "--epochs", str(int(epochs))]
    if image_size:
        f += ["--img-size", str(int(image_size))]
    bs = config.extra("batch_size")
    if bs is not None:
        f += ["--batch-size", str(int(bs))]
    f += ["--opt", timm_optimizer_name(config), "--lr", _num(config.lr), "--weight-decay", _num(config.weight_decay)]
    if config.optimizer not in ADAPTIVE_OPTIMIZERS:
        f += ["--momentum", _num(config.momentum)]
    elif r.opt_betas is not None:
        f += ["--opt-betas", _num(r.opt_betas[0]), _num(r.opt_betas[1])]
    if r.sched is not None:
        f += ["--sched", r.sched]
        if r.sched == "step":
            f += ["--decay-epochs", _num(r.decay_epochs), "--decay-rate", _num(r.decay_rate)]
        elif r.sched == "multistep":
            f += ["--decay-rate", _num(r.decay_rate)]
        elif r.sched == "plateau":
            f += ["--patience-epochs", str(r.patience_epochs), "--decay-rate", _num(r.decay_rate)]
        f += ["--warmup-epochs", str(r.warmup_epochs), "--warmup-lr", _num(r.warmup_lr)]
    if r.smoothing:
        f += ["--smoothing", _num(r.smoothing)]
    if r.uses_mixup:
        f += ["--mixup", _num(r.mixup), "--cutmix", _num(r.cutmix), "--mixup-prob", _num(r.mixup_prob)]
    if r.drop:
        f += ["--drop", _num(r.drop)]
    only: dict[str, Any] = {}
    aa = r.timm_auto_augment
    if aa == "trivial":
        only["data_augmentation"] = "trivial_augment"
    elif aa is not None:
        f += ["--aa", aa]
    if r.clip_grad is not None:
        f += ["--clip-grad", _num(r.clip_grad)]
    if r.layer_decay is not None:
        f += ["--layer-decay", _num(r.layer_decay)]
    if r.amp:
        f += ["--amp"]
    if r.linear_probing:
        only["linear_probing"] = True
    if r.pct_to_freeze:
        only["pct_to_freeze"] = r.pct_to_freeze
    if r.freeze_embedding:
        only["freeze_embedding"] = True
    if r.sp_reg:
        only["sp_reg"] = r.sp_reg
    return f, only


__all__ = ["train_py_flags"]
