"""Coral (quantised TFLite) MobileNet V1/V2 -> timm `mobilenetv1_*` / `mobilenetv2_*`.

The TFLite files hold BatchNorm folded into each convolution (weight * gamma / sigma, plus a bias),
quantised to uint8/int8. We dequantise the folded weights into timm's convs and turn every BN into
an affine map that reproduces the folded bias exactly in eval mode (see `_bn_from_folded_bias`).

A BN that is only "identity plus bias" is right in eval mode but wrong in train mode, where BN
normalises by batch statistics: the folded conv outputs have per-channel scale |gamma| rather than
1, so fine-tuning with model.train() from here would start from a scrambled network (measured:
cosine 0.02 between train- and eval-mode features of MobileNetV2 on CIFAR images). The fix needs
data: `quicktune.models.bn.recalibrate_bn` measures each conv output's per-channel mean m and std
s on some images and re-expresses the same eval-mode map z + bias as s (z - m) / s + (bias + m).
The hub leaves the BNs as identity (running stats 0 / 1 - eps, easy to detect) so the fine-tuner
recalibrates them on the target data (cosine 0.97 then); `calibration_images` here is for other
users (calibrating on the three Coral pictures gave only 0.36 on CIFAR: use target data).

TF's "SAME" padding puts the odd padding pixel of a stride-2 conv on the bottom/right, unlike
PyTorch's symmetric padding, so the timm model is built with pad_type="same" to match it.
The ImageNet classifiers have 1001 outputs: index 0 is TF-slim's "background" class, kept so the
publisher's label files (1001 lines) line up.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from quicktune.convert.tflite import TFLiteGraph, TFLiteOp, read_tflite
from quicktune.models.bn import recalibrate_bn


def build_tf_mobilenet(version: int, multiplier: float, num_classes: int, input_size: int = 224) -> nn.Module:
    """A timm MobileNet V1/V2 shaped like TF-slim's (width `multiplier`, TF "SAME" padding), with
    random weights and `num_classes` outputs (0: no classifier)."""
    from timm.models import efficientnet as effnet

    # (timm leaves its _gen_* builders unannotated)
    model: nn.Module
    if version == 1:
        model = effnet._gen_mobilenet_v1("mobilenetv1_100", multiplier, pad_type="same",  # type: ignore[no-untyped-call]
                                         num_classes=num_classes)
    elif version == 2:
        model = effnet._gen_mobilenet_v2("mobilenetv2_100", multiplier, pad_type="same",  # type: ignore[no-untyped-call]
                                         num_classes=num_classes)
    else:
        raise ValueError(f"MobileNet version must be 1 or 2, but got {version=}")
    # Lets a fine-tuned copy saved by quicktune.hub.save_checkpoint be rebuilt identically.
    # (nn.Module's __setattr__ is typed for tensors and modules; a plain attribute is fine at run time)
    model.quicktune_builder = dict(  # type: ignore[assignment]
        kind="tf_mobilenet", version=version, multiplier=multiplier, input_size=input_size
    )
    return model


def _conv_bn_pairs(model: nn.Module) -> list[tuple[str, nn.Conv2d, str, nn.BatchNorm2d]]:
    """Every conv of the backbone with the BatchNorm that follows it, in forward order (timm's
    MobileNet modules are registered in the order they run)."""
    pairs, pending = [], None
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            if pending is not None:
                raise ValueError(f"conv {pending[0]!r} is not followed by a BatchNorm")
            pending = (name, m)
        elif isinstance(m, nn.BatchNorm2d) and pending is not None:
            pairs.append((*pending, name, m))
            pending = None
    if pending is not None:
        raise ValueError(f"conv {pending[0]!r} is not followed by a BatchNorm")
    return pairs


def _split(graph: TFLiteGraph) -> tuple[list[TFLiteOp], TFLiteOp | None]:
    """Backbone convs (before the global average pool) and the classifier op (after it, if any)."""
    kinds = [op.kind for op in graph.ops]
    if "AVERAGE_POOL_2D" not in kinds:
        raise ValueError(f"expected a global AVERAGE_POOL_2D in a MobileNet graph, but the ops are {kinds}")
    cut = kinds.index("AVERAGE_POOL_2D")
    convs = [op for op in graph.ops[:cut] if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    heads = [op for op in graph.ops[cut + 1:] if op.kind in ("CONV_2D", "FULLY_CONNECTED")]
    if len(heads) > 1:
        raise ValueError(f"expected at most one classifier layer after the pool, but found {len(heads)}")
    return convs, (heads[0] if heads else None)


def _torch_conv_weight(op: TFLiteOp) -> np.ndarray:
    assert op.weight is not None  # (a conv's weight is a constant tensor of the file)
    if op.kind == "DEPTHWISE_CONV_2D":
        # (1 x kh x kw x C) -> (C x 1 x kh x kw)
        return np.ascontiguousarray(op.weight.transpose(3, 0, 1, 2))
    # (out x kh x kw x in) -> (out x in x kh x kw)
    return np.ascontiguousarray(op.weight.transpose(0, 3, 1, 2))


def _bn_from_folded_bias(bn: nn.BatchNorm2d, bias: np.ndarray) -> dict[str, torch.Tensor]:
    """BN parameters with BN(z) == z + bias in eval mode: weight 1, mean 0, var 1 - eps."""
    c = bias.shape[0]
    return {
        "weight": torch.ones(c),
        "bias": torch.from_numpy(bias.astype(np.float32)),
        "running_mean": torch.zeros(c),
        "running_var": torch.full((c,), 1.0 - bn.eps),
        "num_batches_tracked": torch.zeros((), dtype=torch.long),
    }


def _activation_of(bn: nn.Module) -> str | None:
    act = getattr(bn, "act", None)
    if act is None or isinstance(act, nn.Identity):
        return None
    return "RELU6" if isinstance(act, nn.ReLU6) else type(act).__name__.upper()


def coral_state_dict(
    path: str | Path, model: nn.Module, calibration_images: list[Path] | None = None
) -> dict[str, torch.Tensor]:
    """Map the TFLite MobileNet at `path` onto `model` (from `build_tf_mobilenet` with the file's
    width and number of classes) and return a state dict for a strict load.

    With `calibration_images` (picture files), the BNs are re-expressed with statistics measured on
    random crops of them (`recalibrate_bn`), so train-mode BN behaves; without, each BN is
    identity plus the folded bias (exact in eval mode only). `model`'s own weights are untouched.
    """
    sd = _folded_state_dict(read_tflite(path), model, Path(path).name)
    if not calibration_images:
        return sd
    import copy

    graph = read_tflite(path)
    calibrated = copy.deepcopy(model)
    calibrated.load_state_dict(sd, strict=True)
    mean, std = coral_input_normalisation(path)
    size = graph.input_shape[1]
    images = calibration_batch(list(calibration_images), size, (mean,) * 3, (std,) * 3)
    recalibrate_bn(calibrated, images)
    return {k: v.detach().clone() for k, v in calibrated.state_dict().items()}


def _folded_state_dict(graph: TFLiteGraph, model: nn.Module, fname: str) -> dict[str, torch.Tensor]:
    convs, head = _split(graph)
    pairs = _conv_bn_pairs(model)
    if len(convs) != len(pairs):
        raise ValueError(
            f"{fname} has {len(convs)} backbone convolutions but the model has {len(pairs)}: "
            "wrong MobileNet version or width"
        )
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    for op, (cname, conv, bname, bn) in zip(convs, pairs):
        w = _torch_conv_weight(op)
        if tuple(w.shape) != tuple(conv.weight.shape):
            raise ValueError(
                f"{op.name}: TFLite weight {tuple(w.shape)} does not fit {cname} {tuple(conv.weight.shape)}"
            )
        if (op.kind == "DEPTHWISE_CONV_2D") != (conv.groups > 1):
            raise ValueError(f"{op.name} is {op.kind} but {cname} has groups={conv.groups}")
        if tuple(op.stride) != tuple(conv.stride):
            raise ValueError(f"{op.name}: stride {op.stride} but {cname} has {conv.stride}")
        if op.padding != "SAME" and max(conv.kernel_size) > 1:
            raise ValueError(f"{op.name}: expected SAME padding, got {op.padding}")
        if op.activation != _activation_of(bn):
            raise ValueError(f"{op.name}: activation {op.activation} but {bname} applies {_activation_of(bn)}")
        if op.bias is None:
            raise ValueError(f"{op.name} has no folded bias")
        sd[f"{cname}.weight"] = torch.from_numpy(w)
        for k, v in _bn_from_folded_bias(bn, op.bias).items():
            sd[f"{bname}.{k}"] = v
    # (getattr: nn.Module types unknown attributes as Tensor | Module; timm models define the method)
    classifier = getattr(model, "get_classifier")()
    has_classifier = isinstance(classifier, nn.Linear)
    if head is None and has_classifier:
        raise ValueError(f"{fname} has no classifier but the model has {classifier}")
    if head is not None:
        assert head.weight is not None  # (a classifier's constant)
        w = head.weight.reshape(head.weight.shape[0], -1)
        if not has_classifier or tuple(w.shape) != tuple(classifier.weight.shape):
            raise ValueError(f"{fname}: classifier {tuple(w.shape)} does not fit the model's {classifier}")
        cls_name = next(n for n, m in model.named_modules() if m is classifier)
        sd[f"{cls_name}.weight"] = torch.from_numpy(np.ascontiguousarray(w))
        assert head.bias is not None  # (likewise)
        sd[f"{cls_name}.bias"] = torch.from_numpy(head.bias.astype(np.float32))
    return sd


def calibration_batch(image_paths: list[Path], input_size: int, mean: tuple[float, ...], std: tuple[float, ...],
                      crops_per_image: int = 8, seed: int = 0) -> torch.Tensor:
    """Random resized crops (area 25-100 %) and flips of the given pictures, normalised:
    a (len(image_paths) * crops_per_image x 3 x input_size x input_size) tensor. Deterministic."""
    from PIL import Image

    g = torch.Generator().manual_seed(seed)
    out = []
    for path in image_paths:
        img = torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1).float() / 255.0
        _, h, w = img.shape
        for _ in range(crops_per_image):
            area = float(torch.empty(1).uniform_(0.25, 1.0, generator=g)) * h * w
            ratio = float(torch.empty(1).uniform_(3 / 4, 4 / 3, generator=g))
            ch = min(h, max(8, round((area / ratio) ** 0.5)))
            cw = min(w, max(8, round((area * ratio) ** 0.5)))
            top = int(torch.randint(0, h - ch + 1, (1,), generator=g))
            left = int(torch.randint(0, w - cw + 1, (1,), generator=g))
            crop = img[:, top:top + ch, left:left + cw]
            if bool(torch.rand(1, generator=g) < 0.5):
                crop = crop.flip(2)
            crop = torch.nn.functional.interpolate(crop[None], size=(input_size, input_size), mode="bilinear",
                                                   align_corners=False, antialias=True)[0]
            out.append(crop)
    x = torch.stack(out)
    return (x - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]


def coral_input_normalisation(path: str | Path) -> tuple[float, float]:
    """(mean, std) on the 0-1 pixel scale equivalent to the file's input quantisation
    real = scale * (q - zero_point) with q = 255 x."""
    g = read_tflite(path)
    if g.input_scale is None:
        raise ValueError(f"{path} has a float input, no quantisation to express as mean/std")
    assert g.input_zero_point is not None  # (read with the scale)
    return g.input_zero_point / 255.0, 1.0 / (255.0 * g.input_scale)
