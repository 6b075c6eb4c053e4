"""The Ray paths, `collect --executor ray` and `suggest --executor ray`, on a local Ray that this
module starts and stops (they run where the optional `ray` extra is installed, as in .ci/run;
deselect with -m "not ray"). One Ray for both: starting it is most of the cost."""

from __future__ import annotations

from pathlib import Path

import pytest

from quicktune.collect import plan_collection, run_collection, sample_hyperparameters
from quicktune.data import TaskSpec
from quicktune.metadataset.storage import MetaDatasetStore
from tests.helpers import make_image_folder

pytestmark = [pytest.mark.ray]

MODELS = ["test_efficientnet", "test_resnet"]


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory):
    ray = pytest.importorskip("ray")
    root = tmp_path_factory.mktemp("ray")
    with pytest.MonkeyPatch.context() as mp:
        # Ray's workers get the environment the local cluster starts with: private caches, and
        # this checkout's sources first (PYTHONPATH, when the tests run from a work tree).
        mp.setenv("QUICKTUNE_CACHE", str(root / "cache"))
        mp.setenv("QUICKTUNE_FEATURES_CACHE", str(root / "features"))
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        yield root
        ray.shutdown()


def _rows(store: Path) -> set[tuple[str, int, float]]:
    return {(r.run_key, int(r.epoch), float(r.val_acc)) for r in MetaDatasetStore(store).read().itertuples()}


def test_ray_executor_matches_the_local_one(ray_cluster, tmp_path: Path) -> None:
    folder = make_image_folder(tmp_path / "colours", classes=3, per_class=12, val_per_class=4, split=True, size=16)

    def plan(store: Path, work: Path):
        return plan_collection([TaskSpec(str(folder), size=16)], MODELS, sample_hyperparameters(2, seed=0), 2, store,
                               pretrained=False, batch_size=16, work_dir=work)

    events = []
    summary = run_collection(plan(tmp_path / "ray", tmp_path / "w1"), executor="ray", workers=2, threads=1,
                             on_event=events.append)
    assert summary.failed == [] and summary.finished == 4 and summary.epochs_trained == 8
    assert sum(e["kind"] == "epoch" for e in events) == 8  # progress came back through the Ray queue
    run_collection(plan(tmp_path / "local", tmp_path / "w2"), executor="local", workers=1, threads=1)
    assert _rows(tmp_path / "ray") == _rows(tmp_path / "local") and len(_rows(tmp_path / "ray")) == 8
    assert plan(tmp_path / "ray", tmp_path / "w1").jobs == []  # a rerun finds everything done


def test_suggest_on_ray_workers_trains_every_epoch_once(ray_cluster, tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from quicktune.cli import app
    from tests.test_suggest import make_env

    env = make_env(ray_cluster / "suggest")
    work = tmp_path / "work"
    args = ["suggest", "--data", str(env.data), "--surrogate", str(env.surrogate), "--weights-dir", str(env.weights),
            "--epochs", "2", "--candidates", "1", "--workdir", str(work), "--budget", "5m", "--workers", "2",
            "--executor", "ray", "--threads", "1", "--json"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    steps = sorted((s["config_id"], s["epoch"]) for s in report["step_log"])
    assert report["stop_reason"] == "every candidate is finished"
    assert steps == [(c, e) for c in range(2) for e in (1, 2)]  # 2 models x 1 config x 2 epochs, once each
    assert ray_cluster.exists()  # the search joined the module's Ray and left it running for others
    import ray

    assert ray.is_initialized()
