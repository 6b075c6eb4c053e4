"""Issue 10 items 1-2: the zoo a surrogate carries, its recorded space, and `suggest --zoo`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from quicktune.cli import app
from quicktune.surrogate.shipped import ASSETS
from quicktune.zoo import Zoo
from quicktune.zoo.flags import train_py_flags
from tests.helpers import make_image_folder
from tests.zoo.synthetic_zoo import CAP, write_synthetic_zoo

runner = CliRunner()
QUICKTUNE_SURROGATE = ASSETS / "surrogate_quicktune.pt"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    from quicktune.zoo.build import build_quicktune_surrogate

    root = tmp_path_factory.mktemp("zoo")
    src = write_synthetic_zoo(root / "qt")
    s = build_quicktune_surrogate(src, steps=40)
    path = s.save(root / "zoo.pt")
    data = make_image_folder(root / "data", classes=3, per_class=6, size=24)
    return s, path, data


def test_models_get_timm_names_and_keep_the_recorded_ones_as_aliases(built):
    zoo = Zoo.from_surrogate(built[0])
    assert zoo.models == ["mobilenetv3_small_050.lamb_in1k", "resnet10t.c3_in1k"]
    assert zoo.resolve(["resnet10t"]) == ["resnet10t.c3_in1k"] == zoo.resolve(["resnet10t.c3_in1k"])
    assert zoo.recorded_name("resnet10t.c3_in1k") == "resnet10t"
    with pytest.raises(ValueError, match="not in the quicktune zoo"):
        zoo.resolve(["vit_huge"])
    assert zoo.facts["resnet10t.c3_in1k"]["n_params"] > zoo.facts["mobilenetv3_small_050.lamb_in1k"]["n_params"]
    assert zoo.largest_model() == "resnet10t.c3_in1k"
    assert built[0].models == zoo.models  # the surrogate's embedding speaks the timm names


def test_the_recorded_space_is_derived_with_its_conditions_caps_and_off_values(built):
    space = Zoo.from_surrogate(built[0]).space
    assert space.parents["opt_betas"] == "optimizer" and space.parents["decay_epochs"] == "sched"
    assert space.conditional["opt_betas"]["nesterov"] == ["None"]
    assert space.caps["batch_size"] == {f"{m}.{t}": float(c) for (m, c), t in
                                        zip(sorted(CAP.items()), ["lamb_in1k", "c3_in1k"])}
    assert space.fixed == {"bss_reg": 0}  # the one recorded option the fine-tuner cannot run
    configs = space.sample(["resnet10t.c3_in1k", "mobilenetv3_small_050.lamb_in1k"], 40, seed=1)
    assert len(configs) > 40
    for c in configs:
        assert c.extra("bss_reg") == 0
        assert (c.extra("opt_betas") == "None") == (c.optimizer != "adamw")
        assert (c.extra("decay_epochs") == 90.0) == (c.extra("sched") == "cosine")
        assert c.extra("batch_size") <= (16 if c.model.startswith("resnet10t") else 64)
    assert configs == space.sample(["resnet10t.c3_in1k", "mobilenetv3_small_050.lamb_in1k"], 40, seed=1)
    assert Zoo.from_dict(json.loads(json.dumps(Zoo.from_surrogate(built[0]).to_dict()))).space == space


def test_timm_train_flags_reproduce_a_config(built):
    zoo = Zoo.from_surrogate(built[0])
    c = next(c for c in zoo.candidates(zoo.models, 30, 0) if c.optimizer == "adamw" and c.extra("sched") == "step")
    flags, only = train_py_flags(c, epochs=6)
    text = " ".join(flags)
    assert f"--model {c.model} --pretrained --epochs 6" in text and "--opt adamw" in text
    assert f"--lr {c.lr:g}" in text and "--opt-betas" in text and "--momentum" not in text
    assert f"--sched step --decay-epochs {c.extra('decay_epochs'):g}" in text
    assert f"--batch-size {c.extra('batch_size')}" in text and only == {}


def _json(r) -> dict:
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


def test_suggest_zoo_ranks_offline_with_no_weights_and_an_empty_home(built, tmp_path, monkeypatch):
    _, path, data = built
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("QUICKTUNE_WEIGHTS", raising=False)
    monkeypatch.setenv("QUICKTUNE_CACHE", str(tmp_path / "cache"))
    r = runner.invoke(app, ["suggest", "--data", str(data), "--zoo", "quicktune", "--surrogate", str(path),
                            "--json", "--top", "5", "--candidates", "8", "--epochs", "4"])
    doc = _json(r)
    rows = doc["ranking"]
    assert len(rows) == 5 and doc["candidates"] == 16 and doc["epochs"] == 4
    assert doc["descriptors"] == {"n_samples": 18.0, "n_classes": 3.0, "image_size": 24.0, "channels": 3.0}
    accs = [row["predicted_accuracy"] for row in rows]
    assert accs == sorted(accs, reverse=True) and all(0 < a < 1 for a in accs)
    for row in rows:
        assert row["model"] in {"mobilenetv3_small_050.lamb_in1k", "resnet10t.c3_in1k"}
        assert {"lr", "elr", "momentum", "weight_decay", "optimizer", "batch_size", "sched"} <= set(row["hyperparameters"])
        assert row["timm_train_flags"].startswith(f"--model {row['model']} --pretrained --epochs 4")
        lo68, hi68 = row["interval_68"]
        lo95, hi95 = row["interval_95"]
        assert 0 <= lo95 <= lo68 < row["predicted_accuracy"] < hi68 <= hi95 <= 1
        assert row["predicted_cost"] > 0 and "GPU-seconds" in row["cost_unit"]
    assert not (tmp_path / "home").exists()  # nothing written to HOME
    # A recorded name selects the same model.
    one = _json(runner.invoke(app, ["suggest", "--data", str(data), "--zoo", "quicktune", "--surrogate", str(path),
                                    "--json", "--models", "resnet10t", "--candidates", "3"]))
    assert {row["model"] for row in one["ranking"]} == {"resnet10t.c3_in1k"}


def test_suggest_zoo_table_and_refusals(built):
    _, path, data = built
    r = runner.invoke(app, ["suggest", "--data", str(data), "--zoo", "quicktune", "--surrogate", str(path),
                            "--candidates", "3"])
    assert r.exit_code == 0, r.output
    assert "timm train.py" in r.output and "GPU-seconds" in r.output.replace("\n", " ")
    bad = runner.invoke(app, ["suggest", "--data", str(data), "--zoo", "imagenet"])
    assert bad.exit_code == 2 and "--zoo must be one of quicktune, local" in bad.output
    bad = runner.invoke(app, ["suggest", "--data", str(data), "--zoo", "quicktune", "--surrogate", str(path),
                              "--models", "vit_huge"])
    assert bad.exit_code == 2 and "not in the quicktune zoo" in bad.output
    bad = runner.invoke(app, ["suggest", "--data", str(data), "--zoo", "quicktune", "--surrogate", str(path),
                              "--epochs", "60"])
    assert bad.exit_code == 2 and "--epochs <= 6" in bad.output


@pytest.mark.skipif(not QUICKTUNE_SURROGATE.is_file(), reason="the shipped Quick-Tune surrogate is not built")
def test_the_shipped_quicktune_surrogate_ranks_the_24_timm_models(tmp_path, monkeypatch):
    from quicktune.suggest import load_surrogate

    s = load_surrogate("quicktune")
    zoo = Zoo.from_surrogate(s)
    assert len(zoo.models) == 24 and zoo.aliases["tf_efficientnet_b4_ns"] == "tf_efficientnet_b4.ns_jft_in1k"
    assert QUICKTUNE_SURROGATE.stat().st_size < 400_000
    assert "BSD" in (ASSETS / "QUICKTUNE_METADATASET_LICENSE").read_text()
    data = make_image_folder(tmp_path / "data", classes=5, per_class=8, size=32)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    doc = _json(runner.invoke(app, ["suggest", "--data", str(data), "--zoo", "quicktune", "--json", "--top", "768"]))
    rows = doc["ranking"]
    assert doc["candidates"] == 768 and len({r["model"] for r in rows}) == 24
    accs = np.array([r["predicted_accuracy"] for r in rows])
    assert ((accs > 0) & (accs < 1)).all() and accs.std() > 0.01  # not saturated, not constant


def test_timed_search_over_the_zoo_fine_tunes_local_timm_weights_by_name(built, tmp_path, monkeypatch):
    import timm
    import torch

    _, path, data = built
    wd = tmp_path / "weights"
    wd.mkdir()
    name = "mobilenetv3_small_050.lamb_in1k"  # only this zoo model has weights here: only it is searched
    torch.save(timm.create_model(name, pretrained=False).state_dict(), wd / f"{name}.pth")
    monkeypatch.setenv("QUICKTUNE_CACHE", str(tmp_path / "cache"))
    args = ["suggest", "--data", str(data), "--zoo", "quicktune", "--surrogate", str(path), "--weights-dir", str(wd),
            "--budget", "20s", "--epochs", "2", "--candidates", "2", "--max-image-size", "32", "--threads", "1",
            "--workdir", str(tmp_path / "work"), "--json"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    report = json.loads(r.output[r.output.index("{"):])
    assert report["models"] == [name] and report["epochs_trained"] >= 1
    assert report["best"]["model"] == name and 0 <= report["best"]["accuracy"] <= 1
    empty = tmp_path / "empty"
    empty.mkdir()
    bad = runner.invoke(app, [*args[:7], "--weights-dir", str(empty), "--budget", "20s"])
    assert bad.exit_code == 2 and "holds no weights of the quicktune zoo" in bad.output
