"""The converted Coral MobileNets against what they are known to say: labels and TFLite's logits.

tflite_reference.json holds the TFLite interpreter's own top-10 logits on the three Coral test
pictures (made by make_tflite_reference.py); the float conversion differs from the quantised
interpreter only by activation rounding, so top-1 must agree and logits stay within ~1.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from quicktune import hub
from tests.helpers import shared_path

REFERENCE = json.loads((Path(__file__).with_name("tflite_reference.json")).read_text())
FILES = {
    "mobilenetv1_025.coral_in1k": "mobilenet_v1_0.25_128_quant.tflite",
    "mobilenetv1_050.coral_in1k": "mobilenet_v1_0.5_160_quant.tflite",
    "mobilenetv1_075.coral_in1k": "mobilenet_v1_0.75_192_quant.tflite",
    "mobilenetv1_100.coral_embedding": "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite",
    "mobilenetv2_100.coral_in1k": "mobilenet_v2_1.0_224_quant.tflite",
    "mobilenetv2_100.coral_inat_birds": "mobilenet_v2_1.0_224_inat_bird_quant.tflite",
    "mobilenetv2_100.coral_inat_insects": "mobilenet_v2_1.0_224_inat_insect_quant.tflite",
}


def _picture(name: str, size: int, info: hub.ModelInfo) -> torch.Tensor:
    """The picture as the reference saw it (PIL bilinear resize to uint8), normalised per `info`:
    a (1 x 3 x size x size) tensor."""
    from PIL import Image

    img = Image.open(shared_path("weights", "coral", f"{name}.bmp")).convert("RGB").resize((size, size), Image.BILINEAR)
    x = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).float()[None] / 255.0
    return (x - torch.tensor(info.mean)[:, None, None]) / torch.tensor(info.std)[:, None, None]


def _outputs(name: str, picture: str) -> torch.Tensor:
    weights = shared_path("weights")
    model = hub.create_model(name, weights_dir=weights).eval()
    info = hub.model_info(name, weights)
    with torch.no_grad():
        x = _picture(picture, info.input_size, info)
        if not info.num_source_classes:  # the embedding extractor: compare pooled features
            return model.forward_head(model.forward_features(x), pre_logits=True)[0]
        return model(x)[0]


def _top1(name: str, picture: str) -> str:
    labels = hub.labels(name, shared_path("weights"))
    return labels[int(_outputs(name, picture).argmax())]


def test_mobilenetv2_classifies_the_cat(converted_cache):
    label = _top1("mobilenetv2_100.coral_in1k", "cat")
    assert "cat" in label or "tabby" in label, label


def test_mobilenetv2_classifies_grace_hopper(converted_cache):
    assert _top1("mobilenetv2_100.coral_in1k", "grace_hopper") == "military uniform"


def _check_reference(name: str) -> None:
    ref = REFERENCE[FILES[name]]
    for picture, r in ref.items():
        y = _outputs(name, picture).double().numpy()
        assert int(y.argmax()) == r["top10"][0], (name, picture)
        np.testing.assert_allclose(y[r["top10"]], r["values"], atol=1.0, err_msg=f"{name} on {picture}")


@pytest.mark.parametrize("name", list(FILES))
def test_logits_agree_with_the_tflite_interpreter(name, converted_cache):
    _check_reference(name)


def test_inat_bird_model_names_the_chickadee(converted_cache):
    label = _top1("mobilenetv2_100.coral_inat_birds", "bird")
    assert "Chickadee" in label, label
    assert _top1("mobilenetv2_100.coral_inat_birds", "cat") == "background"


def test_mobilenet_v1_has_1001_classes_with_background_first(converted_cache):
    weights = shared_path("weights")
    info = hub.model_info("mobilenetv1_025.coral_in1k", weights)
    labels = hub.labels("mobilenetv1_025.coral_in1k", weights)
    model = hub.create_model("mobilenetv1_025.coral_in1k", weights_dir=weights)
    assert info.num_source_classes == 1001 == len(labels) == model.get_classifier().out_features
    assert labels[0] == "background"


def test_conversion_is_cached_and_reused(converted_cache, monkeypatch):
    weights = shared_path("weights")
    name = "mobilenetv1_025.coral_in1k"
    first = hub.converted_state_dict(name, weights)
    cached = list(converted_cache.glob(f"{name}-*.pth"))
    assert len(cached) == 1

    def fail(*_args, **_kwargs):
        raise AssertionError("converted again although a cached conversion exists")

    monkeypatch.setitem(hub.REGISTRY, name, _replace(hub.REGISTRY[name], convert=fail))
    again = hub.converted_state_dict(name, weights)
    assert all(torch.equal(first[k], again[k]) for k in first)


def _replace(entry, **changes):
    import dataclasses

    return dataclasses.replace(entry, **changes)


def test_wrong_architecture_is_rejected():
    from quicktune.convert.coral import build_tf_mobilenet, coral_state_dict

    path = shared_path("weights", "coral", "mobilenet_v1_0.25_128_quant.tflite")
    with pytest.raises(ValueError, match="wrong MobileNet version or width|does not fit"):
        coral_state_dict(path, build_tf_mobilenet(2, 1.0, 1001))
    with pytest.raises(ValueError, match="does not fit"):
        coral_state_dict(path, build_tf_mobilenet(1, 0.5, 1001))


def test_eval_mode_unchanged_by_bn_calibration():
    from quicktune.convert.coral import build_tf_mobilenet, coral_state_dict

    path = shared_path("weights", "coral", "mobilenet_v1_0.25_128_quant.tflite")
    pictures = sorted(path.parent.glob("*.bmp"))
    folded, calibrated = build_tf_mobilenet(1, 0.25, 1001), build_tf_mobilenet(1, 0.25, 1001)
    folded.load_state_dict(coral_state_dict(path, folded))
    calibrated.load_state_dict(coral_state_dict(path, calibrated, calibration_images=pictures))
    torch.manual_seed(0)
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        a, b = folded.eval()(x), calibrated.eval()(x)
    assert torch.allclose(a, b, atol=1e-3, rtol=1e-3)
    assert not torch.allclose(folded.bn1.weight, calibrated.bn1.weight)  # it did recalibrate


def test_hub_leaves_folded_batchnorm_as_identity(converted_cache):
    # The fine-tuner recognises folded BNs by identity statistics and recalibrates them on the
    # target data; keep that contract.
    model = hub.create_model("mobilenetv1_025.coral_in1k", weights_dir=shared_path("weights"))
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bns) == 27
    for bn in bns:
        assert (bn.running_mean == 0).all() and ((bn.running_var - 1).abs() < 1e-3).all()
        assert (bn.weight == 1).all()
