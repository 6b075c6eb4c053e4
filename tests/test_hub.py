"""The model hub: discovery, descriptors, heads, local checkpoints, timm names -- all offline."""

from __future__ import annotations

import os
import socket

os.environ["HF_HUB_OFFLINE"] = "1"  # before anything imports huggingface_hub

import pytest
import torch
import torch.nn as nn

from quicktune import hub
from tests.helpers import shared_path


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """Nothing here may reach the network: HF offline, and any internet connection attempt fails."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    try:
        import huggingface_hub.constants as hf_constants

        monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    except (ImportError, AttributeError):
        pass
    real_connect = socket.socket.connect

    def guarded(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise AssertionError(f"a hub test tried to open a network connection to {address}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture
def partial_weights(tmp_path):
    """A weights dir with only ResNet20 and the MobileNetV1 x0.25 (symlinks, nothing copied)."""
    r20 = next(shared_path("weights", "cifar10-resnet").glob("resnet20-*.th"))
    v1 = shared_path("weights", "coral", "mobilenet_v1_0.25_128_quant.tflite")
    (tmp_path / "sub").mkdir()
    (tmp_path / r20.name).symlink_to(r20)
    (tmp_path / "sub" / v1.name).symlink_to(v1)  # one level down is searched too
    return tmp_path


def test_list_models_lists_only_what_is_present(partial_weights, tmp_path_factory):
    assert hub.list_models(partial_weights) == ["mobilenetv1_025.coral_in1k", "resnet20.cifar10"]
    assert hub.list_models(tmp_path_factory.mktemp("empty")) == []
    assert hub.list_models(partial_weights / "does-not-exist") == []


def test_list_models_on_the_shared_weights():
    names = hub.list_models(shared_path("weights"))
    for expected in ("resnet20.cifar10", "resnet56.cifar10", "mobilenetv1_050.coral_in1k",
                     "mobilenetv2_100.coral_in1k", "mobilenetv2_100.coral_inat_birds",
                     "mobilenetv2_100.coral_inat_insects", "mobilenetv1_100.coral_embedding"):
        assert expected in names


def test_unknown_name_lists_the_options(partial_weights):
    with pytest.raises(hub.HubError, match="unknown model 'no_such_net'") as e:
        hub.create_model("no_such_net", weights_dir=partial_weights)
    assert "resnet20.cifar10" in str(e.value) and "mobilenetv1_025.coral_in1k" in str(e.value)
    with pytest.raises(hub.HubError, match="unknown model"):
        hub.model_info("no_such_net", weights_dir=partial_weights)


def test_missing_weights_name_the_file_and_the_options(partial_weights):
    with pytest.raises(hub.HubError, match=r"resnet56-\*\.th.*resnet20\.cifar10"):
        hub.create_model("resnet56.cifar10", weights_dir=partial_weights)


def test_fresh_head_keeps_the_backbone(partial_weights):
    src = hub.create_model("resnet20.cifar10", weights_dir=partial_weights).eval()
    torch.manual_seed(0)
    new = hub.create_model("resnet20.cifar10", num_classes=7, weights_dir=partial_weights).eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert new(x).shape == (4, 7)
        assert torch.equal(src.forward_features(x), new.forward_features(x))
    assert new.get_classifier().out_features == 7 and src.get_classifier().out_features == 10


def test_coral_fresh_head_keeps_the_backbone(partial_weights, tmp_path, monkeypatch):
    monkeypatch.setenv("QUICKTUNE_CONVERTED_CACHE", str(tmp_path / "converted"))
    name = "mobilenetv1_025.coral_in1k"
    src = hub.create_model(name, weights_dir=partial_weights).eval()
    new = hub.create_model(name, num_classes=7, weights_dir=partial_weights).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert new(x).shape == (2, 7)
        assert torch.equal(src.forward_features(x), new.forward_features(x))


@pytest.mark.parametrize("name", hub.registered_models())
def test_pre_logits_width_is_num_features(name, tmp_path):
    # pretrained=False builds the registered architecture with no weights file at all.
    info = hub.model_info(name, tmp_path)
    model = hub.create_model(name, weights_dir=tmp_path, pretrained=False).eval()
    with torch.no_grad():
        feats = model.forward_head(model.forward_features(torch.randn(2, 3, 32, 32)), pre_logits=True)
    assert feats.shape == (2, info.num_features) == (2, model.num_features)
    assert info.n_params == sum(p.numel() for p in model.parameters())
    if info.num_source_classes:
        assert model.get_classifier().out_features == info.num_source_classes
    else:
        assert isinstance(model.get_classifier(), nn.Identity)


def test_model_info_descriptors(tmp_path):
    info = hub.model_info("mobilenetv2_100.coral_in1k", tmp_path)
    assert (info.arch, info.source_dataset, info.input_size, info.num_features) == (
        "mobilenetv2_100", "imagenet-1k", 224, 1280)
    d = info.descriptors()
    assert set(d) == {"log10_params", "input_size", "num_features", "num_source_classes"}
    assert 6.5 < d["log10_params"] < 6.6 and d["num_source_classes"] == 1001
    r20 = hub.model_info("resnet20.cifar10", tmp_path)
    assert (r20.source_dataset, r20.input_size, r20.num_source_classes, r20.n_params) == ("cifar10", 32, 10, 269_722)


def test_timm_names_without_weights(tmp_path):
    model = hub.create_model("resnet10t", num_classes=5, pretrained=False, weights_dir=tmp_path)
    assert model.get_classifier().out_features == 5
    info = hub.model_info("resnet10t.c3_in1k", tmp_path)
    assert info.arch == "resnet10t" and info.source_dataset == "imagenet-1k" and info.num_source_classes == 1000
    assert info.num_features == model.num_features


def test_timm_pretrained_path_loads_through_timm(tmp_path):
    """The online path, pointed at a local file through timm's own pretrained machinery."""
    import timm

    torch.manual_seed(1)
    reference = timm.create_model("resnet10t", pretrained=False).eval()
    path = tmp_path / "resnet10t.pth"
    torch.save(reference.state_dict(), path)
    overlay = dict(file=str(path))
    model = hub.create_model("resnet10t", pretrained=True, pretrained_cfg_overlay=overlay).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(x), reference(x))
        fresh = hub.create_model("resnet10t", num_classes=7, pretrained=True, pretrained_cfg_overlay=overlay).eval()
        assert fresh(x).shape == (2, 7)
        assert torch.allclose(fresh.forward_features(x), reference.forward_features(x))


def test_timm_pretrained_offline_is_a_hub_error(tmp_path):
    with pytest.raises(hub.HubError, match="timm could not load pretrained weights"):
        hub.create_model("resnet10t.c3_in1k", pretrained=True, weights_dir=tmp_path)


@pytest.mark.parametrize("name, size", [("resnet20.cifar10", 32), ("mobilenetv1_025.coral_in1k", 64)])
def test_local_checkpoint_round_trip(name, size, tmp_path):
    torch.manual_seed(0)
    model = hub.create_model(name, num_classes=3, pretrained=False, weights_dir=tmp_path).eval()
    info = hub.model_info(name, tmp_path)
    mine = hub.ModelInfo(**{**info.to_json(), "name": "my-finetuned", "mean": info.mean, "std": info.std})
    hub.save_checkpoint(model, mine, tmp_path, note="test")
    assert hub.list_models(tmp_path) == ["my-finetuned"]
    loaded = hub.create_model("my-finetuned", weights_dir=tmp_path).eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x))
    assert hub.model_info("my-finetuned", tmp_path).num_source_classes == 3


def test_local_checkpoint_json_must_be_complete(tmp_path):
    torch.save({}, tmp_path / "broken.pth")
    (tmp_path / "broken.json").write_text('{"arch": "resnet10t"}')
    with pytest.raises(hub.HubError, match="missing"):
        hub.model_info("broken", tmp_path)


def test_default_weights_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("QUICKTUNE_WEIGHTS", str(tmp_path))
    assert hub.default_weights_dir() == tmp_path
    monkeypatch.delenv("QUICKTUNE_WEIGHTS")
    monkeypatch.delenv("QUICKTUNE_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert hub.default_weights_dir().parts[-3:] == (".cache", "quicktune", "weights")


def test_converted_cache_is_the_user_cache_whatever_the_weights_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("QUICKTUNE_CONVERTED_CACHE", raising=False)
    monkeypatch.setenv("QUICKTUNE_CACHE", str(tmp_path / "cache"))
    assert hub.converted_cache_dir(tmp_path) == hub.converted_cache_dir(tmp_path / "ro") == tmp_path / "cache" / "converted"


def test_labels(tmp_path):
    assert hub.labels("resnet20.cifar10", tmp_path)[:3] == ["airplane", "automobile", "bird"]
    assert hub.labels("mobilenetv2_100.coral_in1k", tmp_path) is None  # label file not there
    assert hub.labels("resnet10t", tmp_path) is None


def test_cli_list_and_info(partial_weights):
    from typer.testing import CliRunner

    from quicktune.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["hub", "list", "--weights-dir", str(partial_weights), "--json"])
    assert res.exit_code == 0, res.output
    import json

    rows = {r["name"]: r for r in json.loads(res.output)}
    assert rows["resnet20.cifar10"]["available"] and not rows["resnet56.cifar10"]["available"]
    assert set(rows) == set(hub.registered_models())
    res = runner.invoke(app, ["hub", "list", "--weights-dir", str(partial_weights)])
    assert res.exit_code == 0 and "resnet20.cifar10" in res.output and "2 of" in res.output
    res = runner.invoke(app, ["hub", "info", "resnet20.cifar10", "--weights-dir", str(partial_weights)])
    assert res.exit_code == 0 and "269722" in res.output and "resnet20-" in res.output
    res = runner.invoke(app, ["hub", "info", "no_such_net", "--weights-dir", str(partial_weights)])
    assert res.exit_code == 2 and "unknown model" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["hub", "list", "--weights-dir", str(partial_weights / "nope")])
    assert res.exit_code == 2 and "not a directory" in res.output
