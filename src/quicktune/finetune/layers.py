"""Which parameters a fine-tuning run trains, and how they are regularised.

The one rule for what the "embedding" is (Kumar et al., "How to Fine-Tune Vision Models with SGD"):
the model's first layer, which maps pixels to features - a ViT / DeiT / Swin / BEiT patch
embedding, a ConvNeXt stem, a ResNet or MobileNet stem convolution:

    the top-level child of the model that holds timm's `first_conv` (pretrained_cfg; without it, the
    first top-level child holding parameters), plus the normalisation layers that directly follow it
    as top-level children (ResNet's conv1 -> bn1, EfficientNet/MobileNet's conv_stem -> bn1).

So ViT -> patch_embed (pos_embed and cls_token are not part of it), ConvNeXt -> stem (conv + norm),
ResNet -> conv1 + bn1, MobileNet/EfficientNet -> conv_stem + bn1, the CIFAR ResNet -> conv1 + bn1.
It is < 1% of the parameters of the models Kumar et al. study.

The classifier is `model.get_classifier()` (timm's contract); everything else is the backbone.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

_NORMS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)


def embedding_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The (name, module) pairs that form the model's embedding layer (rule in the module docstring)."""
    children = list(model.named_children())
    first_conv = str((getattr(model, "pretrained_cfg", None) or {}).get("first_conv") or "")
    top = first_conv.split(".", 1)[0]
    start = next((i for i, (n, _) in enumerate(children) if n == top), None) if top else None
    if start is None:
        start = next((i for i, (_, m) in enumerate(children) if any(True for _ in m.parameters())), None)
    if start is None:
        raise ValueError(f"{type(model).__name__} has no child module with parameters, so it has no embedding layer")
    picked = [children[start]]
    for name, m in children[start + 1 :]:
        if not isinstance(m, _NORMS):
            break
        picked.append((name, m))
    return picked


def embedding_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """(full name, parameter) of the embedding layer."""
    return [(f"{prefix}.{n}", p) for prefix, m in embedding_modules(model) for n, p in m.named_parameters()]


def classifier_parameter_ids(model: nn.Module) -> set[int]:
    """ids of the classifier's parameters (`model.get_classifier()`; none when the model has no such method)."""
    # (getattr: nn.Module types unknown attributes as Tensor | Module; timm models define the method)
    head = getattr(model, "get_classifier")() if hasattr(model, "get_classifier") else None
    return {id(p) for p in head.parameters()} if isinstance(head, nn.Module) else set()


def backbone_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """(name, parameter) of every parameter outside the classifier, in definition order (input side first)."""
    head = classifier_parameter_ids(model)
    return [(n, p) for n, p in model.named_parameters() if id(p) not in head]


def apply_freezing(model: nn.Module, *, freeze_embedding: bool = False, linear_probing: bool = False,
                   pct_to_freeze: float = 0.0) -> list[str]:
    """Set requires_grad=False on the frozen parameters; returns their names.

    freeze_embedding: the embedding layer (see `embedding_modules`);
    linear_probing:   the whole backbone (only the classifier trains);
    pct_to_freeze:    the first round(pct * n) of the backbone's n parameter tensors, input side first
                      (Quick-Tune's partial freezing; 1.0 is linear probing).
    Frozen BatchNorm layers still update their running statistics in train mode; only their affine
    parameters stay fixed.
    """
    frozen: dict[str, nn.Parameter] = {}
    backbone = backbone_parameters(model)
    if freeze_embedding:
        frozen.update(embedding_parameters(model))
    if linear_probing:
        frozen.update(backbone)
    if pct_to_freeze > 0:
        frozen.update(backbone[: round(pct_to_freeze * len(backbone))])
    for p in frozen.values():
        p.requires_grad_(False)
    return list(frozen)


class L2SP:
    """Li et al.'s L2-SP penalty, alpha/2 * sum_i ||w_i - w0_i||^2, over the pretrained backbone.

    w0 is a detached copy of the backbone's trainable parameters at construction: build it from the
    pretrained model before any step (a resumed run rebuilds the pretrained model first, so no copy is
    checkpointed); the freshly initialised classifier has no reference and is left to the
    ordinary weight decay, as in the paper. Memory: one extra copy of the backbone.
    """

    def __init__(self, model: nn.Module, alpha: float) -> None:
        self.alpha = float(alpha)
        self.params = [p for _, p in backbone_parameters(model) if p.requires_grad]
        self.reference = [p.detach().clone() for p in self.params]

    def __call__(self) -> torch.Tensor:
        """The penalty, a 0-dim tensor on the parameters' device (differentiable)."""
        total = sum(((p - r) ** 2).sum() for p, r in zip(self.params, self.reference))
        return 0.5 * self.alpha * total  # type: ignore[return-value]


def gradient_norms(model: nn.Module) -> tuple[float, float]:
    """(embedding gradient norm, median gradient norm of the other weight tensors) after a backward pass.

    Kumar et al. explain AdamW's edge over SGD by the embedding layer's gradients being much larger
    than the rest's; the ratio of these two numbers is that diagnostic. "Other weight tensors": every
    parameter with >= 2 dimensions outside the embedding and the classifier (biases and norm scales
    are excluded so the median is over layers, not over bookkeeping). Parameters without a gradient
    (frozen) count as 0 for the embedding and are skipped for the rest.
    """
    emb = embedding_parameters(model)
    emb_ids = {id(p) for _, p in emb}
    head = classifier_parameter_ids(model)
    e = torch.sqrt(sum((p.grad.detach().float() ** 2).sum() for _, p in emb if p.grad is not None)
                   + torch.zeros(()))
    rest = [p.grad.detach().float().norm() for p in model.parameters()
            if p.grad is not None and p.dim() >= 2 and id(p) not in emb_ids and id(p) not in head]
    med = torch.stack(rest).median() if rest else torch.tensor(float("nan"))
    return float(e), float(med)


def trainable(params: Iterable[nn.Parameter]) -> list[nn.Parameter]:
    return [p for p in params if p.requires_grad]


__all__ = ["L2SP", "apply_freezing", "backbone_parameters", "classifier_parameter_ids", "embedding_modules",
           "embedding_parameters", "gradient_norms", "trainable"]
