import json

import pandas as pd

from quicktune.surrogate.provenance import finetune_setting, hub_descriptors


def _rows(versions):
    return pd.DataFrame({"versions": [json.dumps(v) for v in versions]})


def test_finetune_setting_takes_the_common_batch_and_the_largest_image():
    rows = _rows([{"batch_size": 32, "image_size": 32}] * 3 + [{"batch_size": 16, "image_size": 64}])
    assert finetune_setting(rows) == {"batch_size": 32, "max_image_size": 64}


def test_finetune_setting_is_empty_for_imported_rows():
    assert finetune_setting(_rows([{"schema": 1, "quicktune_version": "extended"}])) == {}
    assert finetune_setting(pd.DataFrame({"x": [1]})) == {}


def test_hub_descriptors_knows_registered_models_and_skips_unknown(tmp_path):
    d = hub_descriptors(["resnet20.cifar10", "no-such-model-xyz"], tmp_path)
    assert set(d) == {"resnet20.cifar10"}
    assert d["resnet20.cifar10"]["num_source_classes"] == 10.0
    assert 5.0 < d["resnet20.cifar10"]["log10_params"] < 6.0  # ~0.27 M parameters
