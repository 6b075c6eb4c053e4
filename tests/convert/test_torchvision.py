import pytest
import torch

from quicktune import hub
from quicktune.convert.torchvision import positional_state_dict


def test_torchvision_mobilenet_v2_maps_onto_timm(tmp_path):
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    tv = torchvision.models.mobilenet_v2().eval()
    # Non-trivial BN statistics, so a misplaced tensor would show in the outputs.
    for m in tv.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
    torch.save(tv.state_dict(), tmp_path / "mobilenet_v2-b0353104.pth")
    assert "mobilenetv2_100.tv_in1k" in hub.list_models(tmp_path)
    model = hub.create_model("mobilenetv2_100.tv_in1k", weights_dir=tmp_path).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(x), tv(x), atol=1e-4, rtol=1e-4)


def test_shape_mismatch_is_rejected():
    src = {"a": torch.zeros(3), "b": torch.zeros(2, 2)}
    with pytest.raises(ValueError, match="does not fit"):
        positional_state_dict(src, torch.nn.Linear(2, 3))
    with pytest.raises(ValueError, match="not the same architecture"):
        positional_state_dict({"a": torch.zeros(3)}, torch.nn.Linear(2, 3))
