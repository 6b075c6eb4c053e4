"""metadataset/campaign/campaign_v2.py: its configs are valid recipes that vary the new dimensions,
and it refuses to collect into the repository."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from quicktune.collect import make_configs
from quicktune.finetune.recipe import Recipe

REPO = Path(__file__).resolve().parents[1]
CAMPAIGN = REPO / "metadataset" / "campaign"


@pytest.fixture(scope="module")
def v2():
    sys.path.insert(0, str(CAMPAIGN))
    try:
        spec = importlib.util.spec_from_file_location("campaign_v2", CAMPAIGN / "campaign_v2.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.path.remove(str(CAMPAIGN))


def recipes(v2, phase):
    configs, models = v2.phase_configs(phase)
    return [(c, Recipe.from_config(c)) for c in make_configs(models, configs)]


def test_every_phase_config_is_a_valid_recipe_whose_extras_take_effect(v2):
    for phase in [*v2.PHASES, "random"]:
        for config, r in recipes(v2, phase):
            # timm's defaults would never act within the 5-epoch horizon, and v1's cosine has no warm-up
            assert r.sched is not None or r.warmup_epochs == 0, config
            if r.sched == "step":
                assert r.decay_epochs < v2.v1.EPOCHS, config
            if r.sched == "plateau":
                assert r.patience_epochs < v2.v1.EPOCHS - 1, config


def test_core_phase_varies_each_new_dimension_on_every_cheap_model(v2):
    seen: dict[str, set[str]] = {}
    for config, r in recipes(v2, "core"):
        dims = seen.setdefault(config.model, set())
        if r.optimizer == "adamw":
            dims.add("adamw")
        if r.optimizer == "sgd" and config.momentum == 0:
            dims.add("plain-sgd")
        if r.freeze_embedding:
            dims.add("freeze_embedding")
        if r.sched:
            dims.add(r.sched)
        if r.warmup_epochs:
            dims.add("warmup")
        if r.sp_reg:
            dims.add("sp_reg")
    want = {"adamw", "plain-sgd", "freeze_embedding", "step", "plateau", "cosine", "warmup", "sp_reg"}
    assert set(seen) == set(v2.CHEAP) and all(dims == want for dims in seen.values()), seen


def test_random_configs_are_seeded_and_cover_the_optimizer_families(v2):
    a, b = v2.random_configs(12), v2.random_configs(12)
    assert a == b and v2.random_configs(12, seed=3) != a
    families = {(c.get("optimizer", "sgd"), c["momentum"] > 0) for c in a}
    assert {("adamw", True), ("sgd", True), ("sgd", False)} <= families


def test_refuses_a_store_or_work_dir_inside_the_repository(v2, tmp_path, capsys):
    rc = v2.main(["--out", str(REPO / "metadataset" / "v2-tmp"), "--work-dir", str(tmp_path), "--phases", "status"])
    assert rc == 2 and "inside the repository" in capsys.readouterr().err
    rc = v2.main(["--out", str(tmp_path / "s"), "--work-dir", str(REPO / ".work"), "--phases", "status"])
    assert rc == 2
    assert not (REPO / "metadataset" / "v2-tmp").exists()


def test_publish_needs_a_compacted_store(v2, tmp_path):
    from quicktune.metadataset.storage import MetaDatasetStore

    store = MetaDatasetStore(tmp_path / "store")
    store.append_features([{"dataset": "d", "model": "", "name": "n_samples", "value": 1.0}])
    with pytest.raises(SystemExit, match="compact"):
        v2.publish(tmp_path / "store", tmp_path / "dest")


def test_seed_copies_the_committed_metadataset_into_an_empty_store_once(v2, tmp_path):
    from quicktune.metadataset.storage import MetaDatasetStore

    source = v2.V2 if (v2.V2 / "manifest.json").is_file() else v2.V1
    v2.seed(tmp_path / "s")
    got, want = MetaDatasetStore(tmp_path / "s").read(), MetaDatasetStore(source, create=False).read()
    assert sorted(got["run_key"].unique()) == sorted(want["run_key"].unique()) and len(got) == len(want)
    v2.seed(tmp_path / "s")  # a second call adds nothing
    assert len(list((tmp_path / "s" / "runs").glob("*.parquet"))) == 1
