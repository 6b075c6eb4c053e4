import pytest
import torch
import torch.nn as nn

from quicktune.models.cifar_resnet import CifarResNet, PadShortcut


@pytest.mark.parametrize("depth, n_params", [(20, 269_722), (32, 464_154), (44, 658_586), (56, 853_018)])
def test_parameter_counts_match_the_paper(depth, n_params):
    # He et al. 2016, Table 6: 0.27M / 0.46M / 0.66M / 0.85M; option-A shortcuts add no parameters.
    assert sum(p.numel() for p in CifarResNet(depth).parameters()) == n_params


def test_timm_interface_shapes():
    torch.manual_seed(0)
    m = CifarResNet(20, num_classes=10).eval()
    x = torch.randn(3, 3, 32, 32)
    f = m.forward_features(x)
    assert f.shape == (3, 64, 8, 8)
    assert m.forward_head(f, pre_logits=True).shape == (3, m.num_features)
    assert torch.allclose(m.forward_head(f), m(x))
    assert m.get_classifier().out_features == 10
    assert m(torch.randn(2, 3, 64, 64)).shape == (2, 10)  # global pooling: any input size


def test_reset_classifier_keeps_backbone():
    torch.manual_seed(0)
    m = CifarResNet(20).eval()
    x = torch.randn(2, 3, 32, 32)
    before = m.forward_head(m.forward_features(x), pre_logits=True)
    m.reset_classifier(7)
    assert m(x).shape == (2, 7) and m.num_classes == 7
    assert torch.equal(before, m.forward_head(m.forward_features(x), pre_logits=True))
    m.reset_classifier(0)
    assert isinstance(m.get_classifier(), nn.Identity) and m(x).shape == (2, 64)


def test_option_a_shortcut_subsamples_and_zero_pads():
    x = torch.randn(1, 16, 8, 8)
    y = PadShortcut(8)(x)
    assert y.shape == (1, 32, 4, 4)
    assert torch.equal(y[:, 8:24], x[:, :, ::2, ::2])
    assert y[:, :8].abs().sum() == 0 and y[:, 24:].abs().sum() == 0


@pytest.mark.parametrize("depth", [0, 19, 21])
def test_bad_depth_is_rejected(depth):
    with pytest.raises(ValueError, match="6n \\+ 2"):
        CifarResNet(depth)
