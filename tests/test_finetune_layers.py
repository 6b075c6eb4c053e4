from __future__ import annotations

import pytest
import timm
import torch

from quicktune.finetune.layers import L2SP, apply_freezing, embedding_modules, embedding_parameters, gradient_norms

# (tiny timm model built with pretrained=False, the embedding's top-level module names)
EMBEDDINGS = [
    ("test_vit", ["patch_embed"]),
    ("test_convnext", ["stem"]),
    ("test_resnet", ["conv1", "bn1"]),
    ("test_efficientnet", ["conv_stem", "bn1"]),
]


@pytest.mark.parametrize(("arch", "names"), EMBEDDINGS)
def test_embedding_rule_per_architecture(arch: str, names: list[str]) -> None:
    model = timm.create_model(arch, pretrained=False, num_classes=3)
    assert [n for n, _ in embedding_modules(model)] == names
    n_emb = sum(p.numel() for _, p in embedding_parameters(model))
    assert 0 < n_emb < 0.2 * sum(p.numel() for p in model.parameters())  # (< 1% in full-size models)


def test_embedding_rule_without_timm_metadata() -> None:
    from quicktune.models.cifar_resnet import CifarResNet

    model = CifarResNet(depth=8, num_classes=3)
    model.pretrained_cfg = {}  # no first_conv: the first child with parameters, then its norm
    assert [n for n, _ in embedding_modules(model)] == ["conv1", "bn1"]


def test_freezing_modes() -> None:
    model = timm.create_model("test_vit", pretrained=False, num_classes=3)
    frozen = apply_freezing(model, freeze_embedding=True)
    assert frozen and all(n.startswith("patch_embed.") for n in frozen)
    assert not model.patch_embed.proj.weight.requires_grad and model.pos_embed.requires_grad

    model = timm.create_model("test_vit", pretrained=False, num_classes=3)
    apply_freezing(model, linear_probing=True)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {"head.weight", "head.bias"}

    model = timm.create_model("test_vit", pretrained=False, num_classes=3)
    n_backbone = sum(1 for n, _ in model.named_parameters() if not n.startswith("head."))
    frozen = apply_freezing(model, pct_to_freeze=0.5)
    assert len(frozen) == round(0.5 * n_backbone)
    names = [n for n, _ in model.named_parameters()]
    assert frozen == names[: len(frozen)]  # input side first


def test_l2sp_pulls_towards_the_reference_and_ignores_the_head() -> None:
    model = timm.create_model("test_convnext", pretrained=False, num_classes=3)
    penalty = L2SP(model, alpha=0.5)
    assert float(penalty().detach()) == 0.0
    with torch.no_grad():
        model.get_classifier().weight.add_(1.0)  # the head has no reference: no penalty
        assert float(penalty().detach()) == 0.0
        w = model.stem[0].weight
        w.add_(0.1)
    expected = 0.5 * 0.5 * (0.1**2) * w.numel()
    assert float(penalty().detach()) == pytest.approx(expected, rel=1e-4)
    penalty().backward()
    assert torch.allclose(w.grad, torch.full_like(w, 0.5 * 0.1), atol=1e-6)


def test_gradient_norms_separate_the_embedding() -> None:
    model = timm.create_model("test_vit", pretrained=False, num_classes=3)
    x = torch.randn(2, 3, *model.pretrained_cfg["input_size"][1:])
    model(x).sum().backward()
    emb, rest = gradient_norms(model)
    assert emb > 0 and rest > 0
    with torch.no_grad():
        model.patch_embed.proj.weight.grad.mul_(10)
        model.patch_embed.proj.bias.grad.mul_(10)
    emb10, rest10 = gradient_norms(model)
    assert emb10 == pytest.approx(10 * emb, rel=1e-5) and rest10 == rest
