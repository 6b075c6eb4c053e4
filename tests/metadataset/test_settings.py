import json

import pandas as pd
import pytest

from quicktune.hub import model_descriptors
from quicktune.metadataset.schema import FeatureSettings, FinetuneSetting, RunSetting

finetune_setting = FinetuneSetting.from_runs


def _rows(versions):
    return pd.DataFrame({"versions": [json.dumps(v) for v in versions]})


def test_finetune_setting_takes_the_common_batch_and_the_largest_image():
    rows = _rows([{"batch_size": 32, "image_size": 32}] * 3 + [{"batch_size": 16, "image_size": 64}])
    assert finetune_setting(rows).to_dict() == {"batch_size": 32, "max_image_size": 64}


def test_finetune_setting_is_empty_for_imported_rows():
    assert finetune_setting(_rows([{"schema": 1, "quicktune_version": "extended"}])).to_dict() == {}
    assert finetune_setting(pd.DataFrame({"x": [1]})).to_dict() == {}


def test_model_descriptors_knows_registered_models_and_skips_unknown(tmp_path):
    d = model_descriptors(["resnet20.cifar10", "no-such-model-xyz"], tmp_path)
    assert set(d) == {"resnet20.cifar10"}
    assert d["resnet20.cifar10"]["num_source_classes"] == 10.0
    assert 5.0 < d["resnet20.cifar10"]["log10_params"] < 6.0  # ~0.27 M parameters


def test_run_setting_round_trips_through_the_versions_json_and_reads_old_rows():
    s = RunSetting(image_size=32, batch_size=16, pretrained=False)
    assert RunSetting.from_versions(json.dumps({"schema": 1, "timm": "1.0", **s.to_dict()})) == s
    # rows written before the typed setting: the same keys, plain JSON
    assert RunSetting.from_versions('{"batch_size": 32, "image_size": 64, "pretrained": true, "torch": "2"}') == RunSetting(64, 32)
    assert RunSetting.from_versions('{"schema": 1}') is None and RunSetting.from_versions("not json") is None


def test_feature_settings_round_trip_and_check():
    assert FeatureSettings.from_dict(FeatureSettings(12, 3).to_dict()) == FeatureSettings(12, 3)
    assert FeatureSettings.from_dict(None) == FeatureSettings(500, 0)
    with pytest.raises(ValueError, match="n_samples >= 1"):
        FeatureSettings(0)
