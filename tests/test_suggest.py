"""The library side of `quicktune suggest`: candidates, features, zero-shot ranking, the timed,
resumable search and its report.

Everything runs offline on tiny things: two tiny timm architectures saved as hub checkpoints in a
temporary weights dir (random weights), a 3-class ImageFolder of 16 px colour patches, and a tiny
surrogate meta-trained for a few steps on synthetic curves of those two models.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from quicktune import suggest as qs
from quicktune.collect import ELR_RANGE, MOMENTA, WEIGHT_DECAY_RANGE
from quicktune.features import FEATURE_NAMES
from quicktune.metadataset.schema import DATASET_DESCRIPTORS, FeatureSettings
from tests.helpers import make_image_folder, synthetic_runs

MODELS = ("tiny_a", "tiny_b")
ARCHS = {"tiny_a": "test_efficientnet", "tiny_b": "test_resnet"}
EPOCHS = 2


@dataclass
class Env:
    root: Path
    weights: Path
    data: Path
    surrogate: Path


def make_env(root: Path) -> Env:
    """Weights dir with two tiny local checkpoints, a tiny ImageFolder, a tiny surrogate file."""
    from quicktune import hub
    from quicktune.metadataset.tabular import CurveTable
    from quicktune.surrogate.fit import meta_train
    from quicktune.surrogate.nets import NetConfig

    weights = root / "weights"
    for name, arch in ARCHS.items():
        torch.manual_seed(0)
        model = hub.create_model(arch, pretrained=False)
        hub.save_checkpoint(model, replace(hub.model_info(arch), name=name, input_size=16), weights)
    data = make_image_folder(root / "data" / "colours", classes=3, per_class=10, val_per_class=4, split=True, size=16)
    datasets = ("d0", "d1", "d2")
    runs = synthetic_runs(datasets=datasets, models=MODELS, max_epochs=EPOCHS)
    feats = []
    for i, d in enumerate(datasets):
        desc = dict(n_samples=100.0 * (i + 1), n_classes=3.0 + i, image_size=16.0, channels=3.0)
        feats += [dict(dataset=d, model="", name=k, value=v, written_at=0.0) for k, v in desc.items()]
        feats += [dict(dataset=d, model=m, name="logme", value=0.1 * i + j, written_at=0.0) for j, m in enumerate(MODELS)]
    tiny = NetConfig(hp_hidden=8, model_emb=4, meta_hidden=4, curve_channels=4, curve_hidden=8, hidden=16, out_dim=8,
                     cost_hidden=8)
    with torch.random.fork_rng():
        res = meta_train(CurveTable(runs, pd.DataFrame(feats)), steps=60, batch_size=16, lr=1e-2, seed=0, holdout=["d2"],
                         val_every=15, net=tiny)
    res.surrogate.info["finetune"] = {"batch_size": 16, "max_image_size": 16}
    return Env(root, weights, data, res.surrogate.save(root / "surrogate.pt"))


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("suggest")
    # Module-wide (module fixtures below compute features once), never the user's own caches.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("QUICKTUNE_CACHE", str(root / "cache"))
        mp.setenv("QUICKTUNE_FEATURES_CACHE", str(root / "features"))
        yield make_env(root)


@pytest.fixture(scope="module")
def setup(env: Env):
    sur = qs.load_surrogate(env.surrogate)
    target = qs.open_target(env.data, list(MODELS), env.weights, max_image_size=16)
    feats = qs.task_features(target, list(MODELS), settings=qs.feature_settings(sur))
    return sur, target, feats


# -- candidates ----------------------------------------------------------------------------------
def test_candidate_design_spans_the_collection_space_and_is_seeded() -> None:
    hps = qs.candidate_hyperparameters(32, seed=3)
    assert len(hps) == 32 and hps == qs.candidate_hyperparameters(32, seed=3)
    assert hps != qs.candidate_hyperparameters(32, seed=4)
    elr = np.array([h["elr"] for h in hps])
    assert ELR_RANGE[0] * 0.999 <= elr.min() and elr.max() <= ELR_RANGE[1] * 1.001
    # Quasi-random: every decade of the log-ELR range is hit.
    assert {int(math.floor(math.log10(e))) for e in elr} >= {-3, -2, -1}
    wd = np.array([h["weight_decay"] for h in hps])
    assert (wd == 0).any() and ((wd == 0) | ((wd >= WEIGHT_DECAY_RANGE[0] * 0.999) & (wd <= WEIGHT_DECAY_RANGE[1] * 1.001))).all()
    assert {h["momentum"] for h in hps} == set(MOMENTA)


def test_candidates_cross_models_with_the_same_points() -> None:
    configs = qs.make_candidates(MODELS, 5, seed=0)
    assert len(configs) == 10 and len(set(configs)) == 10
    a = [(c.elr, c.weight_decay, c.momentum) for c in configs if c.model == "tiny_a"]
    b = [(c.elr, c.weight_decay, c.momentum) for c in configs if c.model == "tiny_b"]
    assert a == b
    with pytest.raises(qs.SuggestError, match="n >= 1"):  # a library error names no CLI option
        qs.make_candidates(MODELS, 0)


# -- models and surrogate ------------------------------------------------------------------------
def test_models_default_to_the_offline_ones_and_unknown_ones_list_them(env: Env, tmp_path: Path) -> None:
    assert qs.resolve_models(None, env.weights) == sorted(MODELS)
    assert qs.resolve_models(["tiny_b", "tiny_b"], env.weights) == ["tiny_b"]
    with pytest.raises(qs.SuggestError, match="unknown model.*nope.*available offline.*tiny_a, tiny_b"):
        qs.resolve_models(["tiny_a", "nope"], env.weights)
    with pytest.raises(qs.SuggestError, match="no model weights"):
        qs.resolve_models(None, tmp_path / "empty")


def test_surrogate_files_missing_or_foreign_give_one_line_errors(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(qs.SuggestError, match="no such surrogate") as e:
        qs.load_surrogate(tmp_path / "nope.pt")
    assert "\n" not in str(e.value)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(qs.SuggestError, match="junk.pt") as e:
        qs.load_surrogate(junk)
    assert "\n" not in str(e.value)
    foreign = tmp_path / "foreign.pt"
    torch.save({"format": "other"}, foreign)
    with pytest.raises(qs.SuggestError, match="not a"):
        qs.load_surrogate(foreign)
    # The default checkpoint ships as package data; when absent, say so and how to get around it.
    assert qs.DEFAULT_SURROGATE_PATH.parent.name == "assets"
    monkeypatch.setattr(qs.loading, "DEFAULT_SURROGATE_PATH", tmp_path / "surrogate_v1.pt")
    with pytest.raises(qs.SuggestError, match="default surrogate.*missing"):
        qs.load_surrogate(None)


def test_finetune_settings_come_from_the_surrogate(setup) -> None:
    sur, _, _ = setup
    assert qs.finetune_settings(sur).to_dict() == {"batch_size": 16, "max_image_size": 16}

    class Bare:
        info: dict = {}

    assert qs.finetune_settings(Bare()).to_dict() == {"batch_size": qs.FALLBACK_BATCH_SIZE}
    # Features: the surrogate's recorded settings, else the v1 campaign's (500 images, seed 0).
    assert qs.feature_settings(Bare()) == FeatureSettings(500, 0)
    Bare.info = {"features": {"n_samples": 12, "seed": 3}}
    assert qs.feature_settings(Bare()) == FeatureSettings(12, 3)


# -- features and zero-shot ----------------------------------------------------------------------
def test_task_features_are_named_like_meta_training_and_cached(env: Env, setup, monkeypatch) -> None:
    sur, target, feats = setup
    assert list(feats.dataset) == list(DATASET_DESCRIPTORS)
    # 2 of each class's 10 training images are held out as the test split: the features never see them.
    assert feats.dataset["n_classes"] == 3 and feats.dataset["n_samples"] == 3 * (10 - 2 + 4)
    assert set(feats.pairs) == set(MODELS) and all(set(v) == set(FEATURE_NAMES) for v in feats.pairs.values())
    assert feats.models["tiny_a"]["input_size"] == 16

    from quicktune import hub

    def no_model(*a, **k):
        raise AssertionError("cached features must not load a model")

    monkeypatch.setattr(hub, "create_model", no_model)
    seen = []
    again = qs.task_features(target, list(MODELS), settings=qs.feature_settings(sur), on_model=lambda m, i, n: seen.append((m, i, n)))
    assert again.pairs == feats.pairs
    assert seen == [("tiny_a", 0, 2), ("tiny_b", 1, 2), ("", 2, 2)]


def test_zero_shot_ranks_every_candidate_best_first(setup) -> None:
    sur, _, feats = setup
    configs = qs.make_candidates(MODELS, 6, seed=0)
    preds = qs.zero_shot(sur, configs, feats, EPOCHS)
    assert sorted(p.config_id for p in preds) == list(range(len(configs)))
    acc = [p.accuracy for p in preds]
    assert acc == sorted(acc, reverse=True)
    for p in preds:
        assert p.config == configs[p.config_id] and p.epochs == EPOCHS
        assert 0.0 <= p.accuracy <= 1.0 and p.std > 0 and p.seconds_per_epoch > 0
        d = p.to_dict()
        assert d["lr"] == pytest.approx(d["elr"] * (1 - d["momentum"]))
        assert d["predicted_seconds"] == pytest.approx(d["predicted_seconds_per_epoch"] * EPOCHS)
    # The prediction depends on the task: a different dataset changes it.
    other = qs.TaskFeatures({**feats.dataset, "n_samples": 1e5, "n_classes": 100.0}, feats.pairs, feats.models)
    assert [p.accuracy for p in qs.zero_shot(sur, configs, other, EPOCHS)] != acc


# -- the timed search ----------------------------------------------------------------------------
def _search(setup, workdir: Path, budget: float, **kw) -> qs.Search:
    sur, target, feats = setup
    configs = qs.make_candidates(MODELS, kw.pop("n", 2), seed=0)
    return qs.Search.open(sur, configs, target, feats, budget_seconds=budget, max_epochs=EPOCHS, workdir=workdir,
                          batch_size=16, refit_steps=2, **kw)


def _checkpoint_curves(search: qs.Search) -> dict[int, list[float]]:
    return {cid: list(search.objective.finetuner(cid).curve) for cid in search.optimizer.curves}


def test_a_short_search_trains_reports_and_a_second_one_resumes(setup, tmp_path: Path) -> None:
    work = tmp_path / "work"
    first = _search(setup, work, budget=1e-6)  # used up at once: exactly the one guaranteed step
    assert first.resume() == 0
    assert first.run() == "budget"
    assert first.epochs_trained == 1 and len(first.steps) == 1
    done = {(s.config_id, s.epoch) for s in first.steps}
    curves = _checkpoint_curves(first)
    session = json.loads((work / qs.SESSION_FILE).read_text())
    assert session["elapsed_seconds"] == pytest.approx(first.elapsed) and len(session["steps"]) == len(first.steps)

    report = first.report("tiny.pt")
    best = report["best"]
    assert best is not None and best["lr"] == pytest.approx(best["elr"] * (1 - best["momentum"]))
    assert best["accuracy"] == max(v for r in report["runs"] for v in r["curve"])
    assert {r["config_id"] for r in report["runs"]} == {c for c, _ in done}
    assert report["trace"] and report["trace"][-1]["accuracy"] == best["accuracy"]

    second = _search(setup, work, budget=first.elapsed + 3.0)
    assert second.elapsed_before == pytest.approx(first.elapsed)
    assert second.resume() == first.epochs_trained  # every trained epoch re-told, none retrained
    second.run()
    new = [(s.config_id, s.epoch) for s in second.steps[len(first.steps):]]
    assert new and not set(new) & done, "a finished epoch was trained again"
    assert second.epochs_trained == len(second.steps)
    assert second.sessions == 2 and second.elapsed >= first.elapsed
    for cid, curve in curves.items():  # the first session's epochs are unchanged in the checkpoints
        assert _checkpoint_curves(second)[cid][: len(curve)] == curve


def test_a_used_up_budget_trains_nothing_more(setup, tmp_path: Path) -> None:
    work = tmp_path / "work"
    first = _search(setup, work, budget=1e-6)
    first.resume()
    first.run()  # the first step always runs, even past a used-up budget
    assert first.epochs_trained == 1
    again = _search(setup, work, budget=1e-6)
    again.resume()
    assert again.run() == "budget" and again.epochs_trained == 1 and len(again.steps) == 1


def test_an_interrupted_step_counts_its_time_and_the_rerun_continues(setup, tmp_path: Path, monkeypatch) -> None:
    work = tmp_path / "work"
    s = _search(setup, work, budget=60.0)
    s.resume()
    real = s.objective.evaluate
    calls = []

    def interrupt_second(trial):
        calls.append(trial)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(trial)

    monkeypatch.setattr(s.objective, "evaluate", interrupt_second)
    with pytest.raises(KeyboardInterrupt):
        s.run()
    state = json.loads((work / qs.SESSION_FILE).read_text())
    assert state["stop_reason"] == "interrupted" and len(state["steps"]) == 1
    assert state["elapsed_seconds"] == pytest.approx(s.elapsed) and s.elapsed > state["steps"][0]["elapsed"]
    monkeypatch.undo()
    again = _search(setup, work, budget=60.0)
    assert again.resume() == 1 and again.elapsed_before == pytest.approx(state["elapsed_seconds"])


def test_a_workdir_of_another_search_is_refused(setup, tmp_path: Path) -> None:
    work = tmp_path / "work"
    s = _search(setup, work, budget=0.5)
    s.save_session()
    with pytest.raises(qs.SuggestError, match="other settings.*candidates"):
        _search(setup, work, budget=0.5, n=3)
    with pytest.raises(qs.SuggestError, match="seed: was 0, now 1"):
        _search(setup, work, budget=0.5, seed=1)


def test_the_search_constructor_does_no_io(setup, tmp_path: Path) -> None:
    # Search.open locks the work dir and reads its session; the constructor touches no file.
    sur, target, feats = setup
    configs = qs.make_candidates(MODELS, 2, seed=0)
    work = tmp_path / "fresh"
    s = qs.Search(sur, configs, target, feats, budget_seconds=0.5, max_epochs=EPOCHS, workdir=work, batch_size=16)
    assert not work.exists() and s.steps == [] and s.sessions == 0
    opened = qs.Search.open(sur, configs, target, feats, budget_seconds=0.5, max_epochs=EPOCHS, workdir=work,
                            batch_size=16)
    assert (work / ".lock").exists() and opened.restart == []


def test_the_best_model_is_saved_where_the_hub_loads_it(setup, tmp_path: Path) -> None:
    from quicktune import hub

    s = _search(setup, tmp_path / "work", budget=1e-6)
    with pytest.raises(qs.SuggestError, match="no run"):
        s.save_best_model(tmp_path / "saved")
    s.resume()
    s.run()
    name, path = s.save_best_model(tmp_path / "saved")
    assert path.is_file() and name in hub.list_models(tmp_path / "saved")
    model = hub.create_model(name, weights_dir=tmp_path / "saved")
    ft = s.objective.finetuner(s.incumbent()["config_id"])
    x = torch.rand(2, 3, 16, 16)
    model.eval()
    ft.model.eval()
    with torch.no_grad():
        assert torch.allclose(model(x), ft.model(x))


# -- the report files ----------------------------------------------------------------------------
def test_report_files_are_strict_json_and_a_png(tmp_path: Path) -> None:
    from quicktune import report as qr

    rep = {
        "task": "t", "max_epochs": 3, "elapsed_seconds": 130.0, "budget_seconds": 150.0, "epochs_trained": 4,
        "best": {"config_id": 1, "model": "m", "elr": 0.1, "lr": 0.01, "momentum": 0.9, "weight_decay": 0.0,
                 "accuracy": 0.8, "epoch": 2},
        "runs": [{"config_id": 0, "model": "m", "curve": [0.3, float("nan")]},
                 {"config_id": 1, "model": "m", "curve": [0.5, 0.8]}],
        "trace": [{"elapsed": 10.0, "model": "m", "accuracy": 0.5}, {"elapsed": 100.0, "model": "m", "accuracy": 0.8}],
    }
    j, p = qr.write(rep, tmp_path / "out")
    doc = json.loads(j.read_text())  # strict: NaN became null
    assert doc["runs"][0]["curve"] == [0.3, None]
    assert p.read_bytes()[:4] == b"\x89PNG"


def test_default_workdir_is_per_data_name() -> None:
    assert qs.default_workdir("colours") == Path(".quicktune/colours")
    assert qs.default_workdir("cifar10-small/c5-k50") == Path(".quicktune/cifar10-small_c5-k50")



# -- a real hub model on real data (slow: kept out of CI) ----------------------------------------
@pytest.mark.slow
def test_a_real_cifar_resnet_search_on_cifar10_small(tmp_path: Path, monkeypatch) -> None:
    from quicktune.space import SearchSpace
    from quicktune.surrogate.gp import Surrogate
    from tests.helpers import shared_path

    data = shared_path("data", "cifar10-small")
    weights = shared_path("weights")
    monkeypatch.setenv("QUICKTUNE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("QUICKTUNE_FEATURES_CACHE", str(tmp_path / "features"))
    models = ["resnet20.cifar10"]
    configs = qs.make_candidates(models, 4, seed=0)
    # Untrained (no meta-learning), but built like a real one: the search must still work.
    sur = Surrogate.build(SearchSpace(configs), max_epochs=2,
                          feature_rows=[{"n_samples": 600.0, "n_classes": 10.0}, {"n_samples": 6000.0, "n_classes": 2.0}],
                          feature_names=["n_samples", "n_classes", "logme"])
    target = qs.open_target(f"{data}:shots=30", models, weights, max_image_size=32)
    feats = qs.task_features(target, models, settings=qs.feature_settings(sur))
    assert math.isfinite(feats.pairs[models[0]]["logme"]) and feats.pairs[models[0]]["emd_sim"] > 0
    preds = qs.zero_shot(sur, configs, feats, 2)
    assert len(preds) == 4
    s = qs.Search.open(sur, configs, target, feats, budget_seconds=20.0, max_epochs=2, workdir=tmp_path / "work",
                       batch_size=32, threads=1)
    s.resume()
    s.run()
    best = s.report()["best"]
    # CIFAR-10 weights on (re-encoded) CIFAR-10 images: far above the 10% of chance after an epoch.
    assert best is not None and best["accuracy"] > 0.3


def test_out_of_range_names_the_features_far_from_meta_training() -> None:
    from quicktune.surrogate.nets import FeatureScaler

    rows = [{"n_samples": n, "emd_sim": e} for n, e in [(400, 0.25), (800, 0.27), (500, 0.26), (600, 0.24)]]

    @dataclass
    class _Sur:
        scaler: FeatureScaler

    sur = _Sur(FeatureScaler.fit(rows, ["n_samples", "emd_sim"]))
    inside = qs.TaskFeatures({"n_samples": 500.0}, {"a": {"emd_sim": 0.26}}, {})
    assert qs.out_of_range(sur, inside) == []
    far = qs.TaskFeatures({"n_samples": 500.0}, {"a": {"emd_sim": 0.26}, "b": {"emd_sim": 0.70}}, {})
    (hit,) = qs.out_of_range(sur, far)
    assert hit[:2] == ("b", "emd_sim") and hit[2] > 3.0


def test_the_saved_model_scores_the_reports_best_and_the_test_estimate_is_reported(setup, tmp_path: Path) -> None:
    from quicktune import hub

    s = _search(setup, tmp_path / "work", budget=1e-6, n=2)
    s.resume()
    s.run()
    s2 = _search(setup, tmp_path / "work", budget=s.elapsed + 4.0, n=2)  # a few more epochs, resumed
    s2.resume()
    s2.run()
    report = s2.report("tiny.pt")
    best, chosen, test = report["best"], report["chosen"], report["test"]
    assert chosen["epoch"] == best["epoch"] and chosen["val_accuracy"] == best["accuracy"]
    name, _ = s2.save_best_model(tmp_path / "saved")
    model = hub.create_model(name, weights_dir=tmp_path / "saved")
    ft = s2.objective.finetuner(best["config_id"])
    correct, n, _ = ft.score(ft.data.val, model)
    assert correct / n == best["accuracy"]  # reloaded from disk, evaluated: the report's best
    # The test split: held out from train (no test/ folder here), never trained or validated on.
    assert test is not None and test["n"] == len(ft.data.test) == 3 * 2
    assert test["ci95"][0] <= test["accuracy"] <= test["ci95"][1] and "unbiased" in test["label"]
    assert "held out" in report["test_split"]
    tc, tn, _ = ft.score(ft.data.test, model)
    assert (tc, tn) == (test["correct"], test["n"])
    last = s2.report("tiny.pt", which="last")["chosen"]
    assert last["which"] == "last" and last["epoch"] == ft.epochs_done
    name, _ = s2.save_best_model(tmp_path / "saved", which="last")
    correct, n, _ = ft.score(ft.data.val, hub.create_model(name, weights_dir=tmp_path / "saved"))
    assert correct / n == ft.curve[-1]


def test_a_stop_rule_ends_the_search_and_holds_again_on_resume(setup, tmp_path: Path) -> None:
    from quicktune.stopping import StopRule

    s = _search(setup, tmp_path / "work", budget=60.0, stop_rule=StopRule(patience=1))
    s.resume()
    reason = s.run()
    assert "no improvement for 1 epochs" in reason or "nothing left to improve" in reason
    # One epoch that did not improve on the incumbent (or a perfect one) ended it, long before 60 s.
    assert s.elapsed < 60.0 and s.epochs_trained < len(s.configs) * EPOCHS
    again = _search(setup, tmp_path / "work", budget=60.0, stop_rule=StopRule(patience=1))
    again.resume()
    assert again.run() == reason and len(again.steps) == len(s.steps)  # nothing more trained
    more = _search(setup, tmp_path / "work", budget=60.0, stop_rule=StopRule.parse("none"), n=2)
    more.resume()
    more.run()
    assert more.stop_reason == "every candidate is finished"


def test_candidates_cover_the_recipe_dimensions_a_v2_surrogate_knows_and_only_those():
    from quicktune.metadataset import load_rows
    from quicktune.metadataset.tabular import CurveTable
    from quicktune.space import SearchSpace

    runs, feats = load_rows(Path(__file__).resolve().parents[1] / "metadataset" / "v2")
    table = CurveTable(runs, feats)
    spec = SearchSpace([c for d in table.datasets for c in table.task(d).configs]).extra_spec
    plain = qs.make_candidates(["m"], 16, seed=0)
    assert all(not c.extras for c in plain)  # a v1 surrogate (no extras): the Sobol design alone
    rich = qs.make_candidates(["m"], 16, seed=0, extra_spec=spec)
    assert rich[: len(plain)] == plain
    extras = [dict(c.extras) for c in rich[len(plain):]]
    assert extras  # recipe points were added
    seen = {k for e in extras for k in e}
    assert {"optimizer", "sched", "freeze_embedding", "sp_reg"} <= seen
    assert {e["sched"] for e in extras if "sched" in e} <= set(spec["sched"]["choices"])
    # A surrogate that never saw a schedule gets no candidate with one.
    no_sched = {k: v for k, v in spec.items() if k not in ("sched", "decay_epochs", "decay_rate", "patience_epochs")}
    assert all("sched" not in dict(c.extras) for c in qs.make_candidates(["m"], 16, seed=0, extra_spec=no_sched))


def test_the_shipped_v2_surrogate_ranks_candidates_over_the_recipe_dimensions():
    from quicktune.surrogate.shipped import load_surrogate, shipped_surrogates

    if "v2" not in shipped_surrogates():
        pytest.skip("surrogate_v2.pt is not in this installation")
    sur = load_surrogate("v2")
    configs = qs.make_candidates(sur.models[:1], 8, seed=0, extra_spec=sur.space_state["extra_spec"])
    kinds = {k for c in configs for k, _ in c.extras}
    assert {"optimizer", "freeze_embedding", "sp_reg"} <= kinds
    features = qs.TaskFeatures(dataset={}, pairs={}, models={})
    preds = qs.zero_shot(sur, configs, features, epochs=sur.max_epochs)
    assert any(p.to_dict()["extras"] for p in preds) and all(0 < p.accuracy < 1 for p in preds)
