import json
import shutil

import numpy as np
import pandas as pd
import pytest

from quicktune.metadataset import MetaDatasetStore, StoreError, import_quicktune, read_quicktune
from quicktune.metadataset.importers import QuickTuneFormatError
from quicktune.metadataset.schema import DATASET_DESCRIPTORS, FEATURE_COLUMNS, RUN_COLUMNS, config_from_row, run_key
from tests.helpers import shared_path
from tests.metadataset.tiny_quicktune import (
    DESCRIPTORS,
    EXPECTED_ELR,
    EXPECTED_OPTIMIZER,
    PERF,
    TABLE,
    cost_of,
    table_frame,
    write_quicktune_dir,
)


# -- a tiny hand-made directory ------------------------------------------------------------------
@pytest.fixture
def tiny(tmp_path):
    return write_quicktune_dir(tmp_path / "mini")


def _runs_by_id(runs: pd.DataFrame) -> dict[tuple[str, str], pd.DataFrame]:
    return {(d, k): g for (d, k), g in runs.groupby(["dataset", "run_key"])}


def test_tiny_directory_maps_every_column(tiny):
    runs, feats = read_quicktune(tiny)
    assert list(runs.columns) == RUN_COLUMNS and list(feats.columns) == FEATURE_COLUMNS
    n_epochs = sum(len(c) for d in PERF.values() for c in d.values())
    assert len(runs) == n_epochs and runs["run_key"].nunique() == 5  # run 11 on two datasets
    assert (runs["max_epochs"] == 4).all()  # the longest curve in the file
    assert (runs["source"] == "quicktune-mini").all()  # version from the `info` entry
    assert json.loads(runs["versions"].iat[0])["metadataset_version"] == "mini"
    assert "15" not in set(runs["extras"])  # the table row without a curve is not a run

    for d, curves in PERF.items():
        for rid, curve in curves.items():
            model, opt, lr, mom, wd, sched, betas, bs, drop = TABLE[rid]
            r = runs[(runs["dataset"] == d) & (runs["model"] == model) & (runs["lr"] == lr)]
            r = r[r["run_key"] == run_key(d, config_from_row(r.iloc[0]), seed=0, max_epochs=4, source_run_id=rid)]
            assert r["epoch"].tolist() == list(range(1, len(curve) + 1))
            assert r["elr"].iat[0] == pytest.approx(EXPECTED_ELR[rid])
            assert r["optimizer"].iat[0] == EXPECTED_OPTIMIZER[rid]
            assert r["momentum"].iat[0] == mom and r["weight_decay"].iat[0] == wd
            extras = json.loads(r["extras"].iat[0])
            assert extras == {"batch_size": bs, "drop": drop, "sched": sched, "opt_betas": betas,
                              "optimizer": EXPECTED_OPTIMIZER[rid]}
            assert isinstance(extras["batch_size"], int)
            expected = np.array([np.nan if v is None else v / 100 for v in curve])
            np.testing.assert_allclose(r["val_acc"].to_numpy(), expected)
            np.testing.assert_allclose(r["seconds"].to_numpy(), cost_of(PERF)[d][rid])
            assert r["status"].tolist() == ["diverged" if v is None else "ok" for v in curve]
            config = config_from_row(r.iloc[0])
            assert config.lr == pytest.approx(lr)  # our lr rule gives back what the optimizer got

    assert sorted(feats["dataset"].unique()) == ["d1", "d2"]  # only datasets with runs
    assert (feats["model"] == "").all()
    f = feats.set_index(["dataset", "name"])["value"]
    for d in ("d1", "d2"):
        assert [f[(d, n)] for n in DATASET_DESCRIPTORS] == DESCRIPTORS[d]


def test_distinct_recorded_runs_with_the_same_config_keep_distinct_keys(tmp_path):
    table = table_frame()
    table.loc[16] = table.loc[11]  # a repeat of run 11 under another id
    perf = {"d1": {"11": [10.0], "16": [12.0]}}
    runs, _ = read_quicktune(write_quicktune_dir(tmp_path / "x", table=table, perf=perf))
    assert runs["run_key"].nunique() == 2
    assert runs["extras"].nunique() == 1 and runs["elr"].nunique() == 1


def test_version_falls_back_to_the_folder_name(tmp_path):
    runs, _ = read_quicktune(write_quicktune_dir(tmp_path / "quicktune-micro", info={"metric": "%"}))
    assert set(runs["source"]) == {"quicktune-micro"}


def test_missing_table_values_and_groups_are_left_out_of_the_extras(tmp_path):
    table = table_frame().astype({"batch_size": float})
    table.loc[11, "batch_size"] = np.nan
    table.loc[11, ["cat:sched:cosine", "cat:sched:step"]] = 0
    runs, _ = read_quicktune(write_quicktune_dir(tmp_path / "x", table=table, perf={"d1": {"11": [1.0]}}))
    assert json.loads(runs["extras"].iat[0]) == {"drop": 0.1, "opt_betas": "None", "optimizer": "nesterov"}


def test_importing_twice_changes_nothing(tiny, tmp_path):
    store = MetaDatasetStore(tmp_path / "store")
    first = import_quicktune(tiny, store)
    assert first["runs"] == 5 and first["datasets"] == 2 and first["epochs"] == len(store.read())
    m1 = store.compact()
    second = import_quicktune(tiny, store)
    m2 = store.compact()
    assert {k: v for k, v in first.items() if k != "seconds"} == {k: v for k, v in second.items() if k != "seconds"}
    assert m1["runs"]["content_hash"] == m2["runs"]["content_hash"]
    assert m1["features"]["content_hash"] == m2["features"]["content_hash"]
    assert m2["runs"]["rows"] == first["epochs"] and m2["features"]["rows"] == 8


def _drop(name):
    def f(root):
        (root / name).unlink()
    return f


def _edit_json(name, change):
    def f(root):
        p = root / name
        p.write_text(json.dumps(change(json.loads(p.read_text()))))
    return f


def _edit_table(change):
    def f(root):
        t = pd.read_csv(root / "table.csv", index_col=0)
        change(t).to_csv(root / "table.csv")
    return f


def _both(f, g):
    def h(root):
        f(root)
        g(root)
    return h


def _set(d, path, value):
    d = json.loads(json.dumps(d))
    cur = d
    for k in path[:-1]:
        cur = cur[k]
    cur[path[-1]] = value
    return d


@pytest.mark.parametrize(
    "damage, message",
    [
        (_drop("curves/cost.json"), r"curves/cost.json: missing"),
        (_drop("meta/descriptors.json"), r"meta/descriptors.json: missing"),
        (_drop("table.csv"), r"table.csv: missing"),
        (_both(_edit_json("curves/perf.json", lambda p: _set(p, ["d1", "99"], [1.0])),
               _edit_json("curves/cost.json", lambda c: _set(c, ["d1", "99"], [1.0]))),
         r"perf.json: 1 run id\(s\) have curves but no row in table.csv, e.g. \['99'\]"),
        (_edit_json("curves/cost.json", lambda c: _set(c, ["d1", "11"], [1.0])),
         r"perf.json: dataset 'd1' run '11' has 3 epochs of accuracy but cost.json has 1 epochs of cost"),
        (_edit_json("curves/cost.json", lambda c: {k: v for k, v in c.items() if k != "d2"}),
         r"cost.json: dataset 'd2' has curves in perf.json but no costs"),
        (_edit_json("curves/cost.json", lambda c: _set(c, ["d9"], {"11": [1.0]})),
         r"cost.json: datasets \['d9'\] have costs but no curves"),
        (_edit_json("curves/perf.json", lambda p: _set(p, ["d1", "11"], [10.0, 250.0, 3.0])),
         r"perf.json: accuracies must be top-1 % in \[0, 100\], but got 250.0"),
        (_edit_json("curves/cost.json", lambda c: _set(c, ["d1", "11"], [1.0, -2.0, 3.0])),
         r"cost.json: costs must be finite seconds >= 0, but got -2.0"),
        (_edit_json("curves/perf.json", lambda p: _set(p, ["d1", "11"], "fast")),
         r"perf.json: dataset 'd1' run '11' must be a list of per-epoch values"),
        (_edit_json("meta/descriptors.json", lambda d: {k: v for k, v in d.items() if k != "d1"}),
         r"descriptors.json: no descriptors for dataset 'd1'"),
        (_edit_json("meta/descriptors.json", lambda d: _set(d, ["d1"], [1, 2])),
         r"descriptors.json: dataset 'd1' must have 4 numbers"),
        (_edit_table(lambda t: t.drop(columns=["lr"])), r"table.csv: missing required column\(s\) \['lr'\]"),
        (_edit_table(lambda t: t.assign(**{"cat:model:net_b": 1})),
         r"table.csv: run '11' sets more than one cat:model:\* column"),
        (_edit_table(lambda t: t.rename(columns={"cat:opt:adam": "cat:opt:rmsprop"})),
         r"table.csv: optimizer\(s\) \['rmsprop'\] have no ELR rule"),
        (_edit_table(lambda t: t.assign(momentum=1.0)), r"table.csv: run '11': `0 <= momentum < 1` must hold"),
        (lambda root: (root / "curves" / "perf.json").write_text("{not json"), r"perf.json: not valid JSON"),
    ],
)
def test_malformed_directories_give_one_line_errors_naming_file_and_problem(tiny, damage, message):
    damage(tiny)
    with pytest.raises(QuickTuneFormatError, match=message) as err:
        read_quicktune(tiny)
    assert "\n" not in str(err.value)
    assert isinstance(err.value, StoreError)


def test_paths_that_are_not_a_version_folder(tmp_path, tiny):
    with pytest.raises(QuickTuneFormatError, match="no such directory"):
        read_quicktune(tmp_path / "absent")
    root = tmp_path / "download"
    shutil.copytree(tiny, root / "mini")
    with pytest.raises(QuickTuneFormatError, match=r"holds the Quick-Tune versions \['mini'\]; pass one of them"):
        read_quicktune(root)


# -- the shared copy of the published "extended" version ----------------------------------------
@pytest.fixture(scope="module")
def extended():
    path = shared_path("data", "quicktune-extended")
    runs, feats = read_quicktune(path)
    table = pd.read_csv(path / "table.csv", index_col=0)
    table.index = table.index.astype(str)
    perf = json.loads((path / "curves" / "perf.json").read_text())
    return path, runs, feats, table, perf


def test_shared_extended_copy_counts(extended):
    _, runs, feats, table, perf = extended
    assert runs["dataset"].nunique() == 19
    assert runs["run_key"].nunique() == 3485
    assert "info" not in set(runs["dataset"]) and "info" in perf
    assert len(runs) == sum(len(c) for d, v in perf.items() if d != "info" for c in v.values())
    assert len(table) > 3485  # more table rows than runs: only rows with curves became runs
    assert (runs["max_epochs"] == 50).all() and set(runs["source"]) == {"quicktune-extended"}
    assert runs["val_acc"].between(0, 1).all() and runs["val_acc"].max() > 0.9  # % scaled to [0, 1]
    assert len(feats) == 19 * 4 and (feats["model"] == "").all()


# Concrete rows of table.csv: (dataset, run id, timm optimizer, lr, momentum, expected ELR, recorded as)
CONCRETE = [
    ("BTS", "20504694441440520", "sgd", 0.005, 0.9, 0.05, "nesterov"),
    ("BTS", "4794119612852028", "momentum", 1e-5, 0.0, 1e-5, "momentum"),
    ("BTS", "43617742992264083", "momentum", 5e-5, 0.8, 2.5e-4, "momentum"),
    ("BTS", "438345620387815117", "momentum", 1e-5, 0.95, 2e-4, "momentum"),
    ("BTS", "16363663977472389", "adam", 1e-3, 0.9, 1e-3, "adam"),
    ("BTS", "3943703261081846", "adamw", 1e-2, 0.9, 1e-2, "adamw"),
    ("BTS", "241360199524743726", "adamp", 1e-5, 0.9, 1e-5, "adamp"),
]


@pytest.mark.parametrize("dataset, rid, timm_opt, lr, momentum, elr, recorded", CONCRETE)
def test_shared_elr_mapping_on_concrete_rows(extended, dataset, rid, timm_opt, lr, momentum, elr, recorded):
    _, runs, _, table, perf = extended
    row = table.loc[rid]
    assert row[f"cat:opt:{timm_opt}"] == 1 and row["lr"] == lr and row["momentum"] == momentum
    model = next(c.split(":", 2)[2] for c in table.columns if c.startswith("cat:model:") and row[c] == 1)
    mine = runs[(runs["dataset"] == dataset) & (runs["model"] == model) & (runs["lr"] == lr)
                & (runs["momentum"] == momentum) & (runs["weight_decay"] == row["weight_decay"])]
    keys = {k for k, g in mine.groupby("run_key")
            if run_key(dataset, config_from_row(g.iloc[0]), 0, 50, source_run_id=rid) == k}
    assert len(keys) == 1
    r = mine[mine["run_key"] == keys.pop()]
    assert r["elr"].iat[0] == pytest.approx(elr, rel=1e-9)
    assert r["optimizer"].iat[0] == recorded
    np.testing.assert_allclose(r["val_acc"].to_numpy(), np.array(perf[dataset][rid]) / 100)


def test_shared_elr_rule_holds_for_every_run(extended):
    _, runs, _, table, _ = extended
    first = runs.drop_duplicates("run_key")
    sgd_family = first["optimizer"].isin(["nesterov", "momentum"])
    np.testing.assert_allclose(first.loc[sgd_family, "elr"],
                               first.loc[sgd_family, "lr"] / (1 - first.loc[sgd_family, "momentum"]), rtol=1e-9)
    np.testing.assert_allclose(first.loc[~sgd_family, "elr"], first.loc[~sgd_family, "lr"], rtol=1e-9)
    counts = first["optimizer"].value_counts()
    assert set(counts.index) == {"nesterov", "momentum", "adam", "adamw", "adamp"}
    extras = json.loads(first["extras"].iat[0])
    assert {"sched", "data_augmentation", "auto_augment", "opt_betas", "batch_size", "drop", "pct_to_freeze"} <= set(extras)
    assert not {"lr", "momentum", "weight_decay", "model", "opt"} & set(extras)
