import pytest
from typer.testing import CliRunner

from quicktune.cli import app
from quicktune.metadataset import MetaDatasetStore
from quicktune.surrogate.gp import Surrogate
from tests.helpers import synthetic_runs

runner = CliRunner()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    MetaDatasetStore(root).append(synthetic_runs(datasets=("d0", "d1", "d2")))
    return root


def invoke(*args: str):
    return runner.invoke(app, ["metatrain", *args])


def test_metatrain_writes_a_loadable_checkpoint_and_reports_validation(store, tmp_path):
    out = tmp_path / "s.pt"
    r = invoke("--metadataset", str(store), "--out", str(out), "--steps", "30", "--holdout", "d1", "--seed", "3")
    assert r.exit_code == 0, r.output
    assert "validated on d1" in r.output and "NLL" in r.output
    s = Surrogate.load(out)
    assert s.info["val_datasets"] == ["d1"] and s.info["train_datasets"] == ["d0", "d2"] and s.info["seed"] == 3
    # How the store's domain features were computed travels with the surrogate, for `suggest`.
    assert s.info["features"] == {"n_samples": 500, "seed": 0}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--steps", "0"], "--steps must be >= 1"),
        (["--val-fraction", "1.5"], "--val-fraction"),
        (["--holdout", "nope"], "unknown dataset(s) nope"),
        (["--holdout", "d0,d1,d2"], "leaves no dataset to train on"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(store, tmp_path, args, message):
    r = invoke("--metadataset", str(store), "--out", str(tmp_path / "s.pt"), *args)
    assert r.exit_code == 2
    assert message in r.output and "Traceback" not in r.output


def test_missing_metadataset_and_directory_out(tmp_path):
    r = invoke("--metadataset", str(tmp_path / "missing"), "--out", str(tmp_path / "s.pt"))
    assert r.exit_code == 2 and "no such file or directory" in r.output
    r = invoke("--metadataset", str(tmp_path), "--out", str(tmp_path))
    assert r.exit_code == 2 and "is a directory" in r.output
