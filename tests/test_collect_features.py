"""`collect` computes and stores the per-(model, task) domain features, equal to the rows the v1
campaign script's feature phase (metadataset/campaign/campaign_v1.py) writes for the same tasks."""

from __future__ import annotations

import argparse
import importlib.util
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from quicktune.collect import plan_collection, run_collection
from quicktune.features import FEATURE_NAMES
from quicktune.metadataset.schema import FeatureSettings
from quicktune.metadataset.storage import MetaDatasetStore, StoreError
from tests.helpers import make_image_folder

REPO = Path(__file__).resolve().parents[1]
MODEL = "tiny_feat"


def _campaign():
    spec = importlib.util.spec_from_file_location("campaign_v1", REPO / "metadataset" / "campaign" / "campaign_v1.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from quicktune import hub

    monkeypatch.setenv("QUICKTUNE_CACHE", str(tmp_path / "cache"))
    weights = tmp_path / "weights"
    torch.manual_seed(0)
    model = hub.create_model("test_resnet", pretrained=False)
    hub.save_checkpoint(model, replace(hub.model_info("test_resnet"), name=MODEL, input_size=16), weights)
    folder = make_image_folder(tmp_path / "colours", classes=3, per_class=12, val_per_class=4, split=True, size=16)
    return tmp_path, weights, [str(folder), f"{folder}:classes=2,seed=1"]


def _pairs(store: Path) -> dict[tuple[str, str, str], float]:
    df = MetaDatasetStore(store).read_features()
    return {(r.dataset, r.model, r.name): float(r.value) for r in df.itertuples() if r.model}


def test_collected_features_equal_the_campaign_route(env, monkeypatch: pytest.MonkeyPatch) -> None:
    root, weights, specs = env
    campaign = _campaign()
    monkeypatch.setattr(campaign, "MODELS", [MODEL])
    # Separate feature caches: both routes really compute.
    monkeypatch.setenv("QUICKTUNE_FEATURES_CACHE", str(root / "fc-campaign"))
    campaign.domain_features(argparse.Namespace(out=root / "campaign", weights=weights), specs)
    monkeypatch.setenv("QUICKTUNE_FEATURES_CACHE", str(root / "fc-collect"))
    plan = plan_collection(specs, [MODEL], [{"elr": 0.1}], 1, root / "collected", weights_dir=weights, batch_size=8,
                           max_image_size=campaign.MAX_IMAGE_SIZE)
    summary = run_collection(plan, threads=1)
    assert summary.failed == [] and summary.features == 2
    want, got = _pairs(root / "campaign"), _pairs(root / "collected")
    assert len(want) == 2 * len(FEATURE_NAMES) and set(got) == set(want)
    for k, v in want.items():
        assert got[k] == pytest.approx(v, rel=1e-9) or (math.isnan(v) and math.isnan(got[k])), k
    # A rerun computes nothing; a store refuses features of another setting.
    assert run_collection(plan, threads=1).features == 0
    with pytest.raises(StoreError, match="one setting"):
        run_collection(plan, threads=1, feature_settings=FeatureSettings(n_samples=10))
    assert MetaDatasetStore(root / "collected").feature_settings() == FeatureSettings()
