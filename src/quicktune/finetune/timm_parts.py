"""The training parts a `Recipe` asks for, built by timm's factories.

- optimizer: `timm.optim.create_optimizer_v2`, always with explicit arguments that reproduce v1:
  our "sgd"/"momentum" is timm's `momentum` (heavy-ball, nesterov=False; timm's own `sgd` is
  Nesterov), our "nesterov" is timm's `sgd`; the trainable parameters are passed as one list, so
  weight decay applies to every parameter as in v1 (given a module, timm would split off 1-d
  parameters and the model's `no_weight_decay()` names even with filter_bias_and_bn=False);
- schedule: `timm.scheduler.create_scheduler_v2`, stepped once per epoch with the epoch index
  (timm train.py's convention; plateau watches validation accuracy, mode "max"). A config without
  `sched` keeps v1's per-update cosine (`V1Cosine`) verbatim: timm's cosine computes
  pi * (t / T) where v1 computed (pi * t) / T, which differs in the last bit and would change the
  recorded v1 curves;
- `timm.data.Mixup` (+ label smoothing in its soft targets), else cross-entropy with torch's label
  smoothing (0 = exactly v1's loss);
- augmentation: `timm.data.create_transform(is_training=True, auto_augment=...)`, applied per image
  (TrivialAugment: torchvision's TrivialAugmentWide inside timm's pipeline).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from quicktune.finetune.recipe import Recipe
from quicktune.space import ADAPTIVE_OPTIMIZERS, Config

if TYPE_CHECKING:
    from PIL import Image
    from timm.data import Mixup
    from timm.scheduler.scheduler import Scheduler

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Transform = Callable[["Image.Image"], torch.Tensor]  # a PIL image -> a normalised (3 x S x S) float tensor


def timm_optimizer_name(config: Config) -> str:
    """timm's registry name for the config's optimizer (see the module docstring)."""
    opt = config.optimizer
    if opt in ADAPTIVE_OPTIMIZERS:
        return opt
    if opt == "nesterov" and config.momentum > 0:  # torch refuses Nesterov without momentum (v1: plain SGD)
        return "sgd"
    return "momentum"


def make_optimizer(model: nn.Module, config: Config, recipe: Recipe) -> torch.optim.Optimizer:
    """The optimizer over the model's trainable parameters, lr from `config.lr` (the ELR rule)."""
    from timm.optim import create_optimizer_v2

    kw: dict[str, Any] = {}
    if recipe.opt_betas is not None and config.optimizer in ADAPTIVE_OPTIMIZERS:
        kw["betas"] = recipe.opt_betas
    if recipe.layer_decay is not None:
        # timm builds the layer-wise groups from the module (frozen parameters are skipped).
        return create_optimizer_v2(model, opt=timm_optimizer_name(config), lr=config.lr,
                                   weight_decay=config.weight_decay, momentum=config.momentum,
                                   filter_bias_and_bn=False, layer_decay=recipe.layer_decay, **kw)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"{config.describe()}: every parameter is frozen, nothing to train")
    return create_optimizer_v2(params, opt=timm_optimizer_name(config), lr=config.lr,
                               weight_decay=config.weight_decay, momentum=config.momentum, **kw)


class V1Cosine(torch.optim.lr_scheduler.LambdaLR):
    """v1's schedule: cosine decay per update over `total` updates, no warm-up (kept bit-exact)."""

    def __init__(self, optimizer: torch.optim.Optimizer, total: int) -> None:
        super().__init__(optimizer, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total)))


def make_scheduler(
    optimizer: torch.optim.Optimizer, recipe: Recipe, max_epochs: int, steps_per_epoch: int
) -> V1Cosine | Scheduler:
    """v1's `V1Cosine` (stepped per update) when the config names no schedule, else timm's scheduler
    (stepped per epoch: `scheduler.step(epoch, metric)`)."""
    if recipe.sched is None:
        return V1Cosine(optimizer, max_epochs * steps_per_epoch)
    from timm.scheduler import create_scheduler_v2

    with warnings.catch_warnings():
        # timm deprecates plateau because it does not checkpoint its state; the trainer rebuilds
        # that state by replaying the recorded validation accuracies, so resumption is exact.
        warnings.simplefilter("ignore", FutureWarning)
        sched, _ = create_scheduler_v2(
            optimizer, sched=recipe.sched, num_epochs=max_epochs, decay_epochs=recipe.decay_epochs,
            decay_rate=recipe.decay_rate, patience_epochs=recipe.patience_epochs, warmup_lr=recipe.warmup_lr,
            warmup_epochs=recipe.warmup_epochs, plateau_mode="max",
        )
    out: Scheduler = sched
    return out


def make_mixup(recipe: Recipe, num_classes: int) -> Mixup | None:
    """timm's Mixup/CutMix (whole-batch mode, label smoothing folded into the soft targets), or None."""
    if not recipe.uses_mixup:
        return None
    from timm.data import Mixup

    # (timm leaves Mixup.__init__ unannotated)
    return Mixup(mixup_alpha=recipe.mixup, cutmix_alpha=recipe.cutmix, prob=recipe.mixup_prob,  # type: ignore[no-untyped-call]
                 mode="batch", label_smoothing=recipe.smoothing, num_classes=num_classes)


def loss_fn(recipe: Recipe) -> Loss:
    """(logits (n x k), targets: (n,) labels or (n x k) soft targets) -> mean loss."""
    if recipe.uses_mixup:
        from timm.loss import SoftTargetCrossEntropy

        return SoftTargetCrossEntropy()  # type: ignore[no-untyped-call]  # (unannotated __init__ in timm)
    smoothing = recipe.smoothing

    def ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if smoothing == 0:
            return nn.functional.cross_entropy(logits, y)  # v1's call, unchanged
        return nn.functional.cross_entropy(logits, y, label_smoothing=smoothing)

    return ce


def make_train_transform(
    recipe: Recipe, size: int, mean: tuple[float, ...], std: tuple[float, ...]
) -> Transform | None:
    """timm's training transform for the recipe's augmentation (PIL image -> normalised (3 x S x S)
    float tensor), or None for v1's crop + flip on the uint8 tensors."""
    aa = recipe.timm_auto_augment
    if aa is None:
        return None
    from timm.data import create_transform

    if aa == "trivial":
        from torchvision import transforms

        primary, _, final = create_transform(input_size=size, is_training=True, mean=mean, std=std, separate=True)
        transform: Transform = transforms.Compose([primary, transforms.TrivialAugmentWide(), final])
        return transform
    transform = create_transform(input_size=size, is_training=True, auto_augment=aa, mean=mean, std=std)
    return transform


def apply_transform(transform: Transform, images: torch.Tensor) -> torch.Tensor:
    """Apply a PIL transform to each image. images: (n x 3 x S x S) uint8 -> (n x 3 x S x S) float."""
    from torchvision.transforms.functional import to_pil_image

    return torch.stack([transform(to_pil_image(img)) for img in images])


__all__ = ["V1Cosine", "apply_transform", "loss_fn", "make_mixup", "make_optimizer", "make_scheduler",
           "make_train_transform", "timm_optimizer_name"]
