import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from quicktune.cli import app
from quicktune.metadataset import MetaDatasetStore
from tests.helpers import synthetic_runs

runner = CliRunner()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    MetaDatasetStore(root).append(synthetic_runs())
    return root


def invoke(*args: str):
    return runner.invoke(app, ["benchmark", *args])


def test_benchmark_on_a_store_writes_csv_and_png(store, tmp_path):
    out = tmp_path / "out"
    r = invoke("--metadataset", str(store), "--budget", "90m", "--methods", "random,hyperband", "--out", str(out),
               "--seeds", "2", "--folds", "3", "--grid-points", "20")
    assert r.exit_code == 0, r.output
    long = pd.read_csv(out / "benchmark.csv")
    assert list(long.columns) == ["method", "dataset", "fold", "seed", "time_s", "regret"]
    assert set(long["method"]) == {"random", "hyperband"} and set(long["dataset"]) == {"d0", "d1", "d2"}
    assert (out / "benchmark.png").read_bytes()[:4] == b"\x89PNG"
    doc = json.loads((out / "benchmark_summary.json").read_text())
    assert set(doc["methods"]["random"]["mean_regret"]) == {"1h", "1h30m"}
    assert "mean normalized regret" in r.output and "@1h" in r.output
    # Not a terminal (a pipe, a log): one line as each stage starts and ends, not a silent bar.
    assert "replaying jobs: started (12)" in r.output and "replaying jobs: done (12/12 in" in r.output


def test_benchmark_with_simulated_workers_is_faster_on_the_simulated_clock(store, tmp_path):
    regret = {}
    for n in (1, 4):
        out = tmp_path / f"w{n}"
        r = invoke("--metadataset", str(store), "--budget", "20m", "--methods", "random,hyperband-async", "--out",
                   str(out), "--seeds", "2", "--folds", "3", "--grid-points", "20", "--workers-simulated", str(n))
        assert r.exit_code == 0, r.output
        assert json.loads((out / "benchmark_summary.json").read_text())["workers_simulated"] == n
        long = pd.read_csv(out / "benchmark.csv")
        regret[n] = long.groupby("method")["regret"].mean()  # mean over the time grid: area under the curve
        runs = pd.read_csv(out / "benchmark_runs.csv")
        if n == 4:
            assert "4 simulated workers" in " ".join(r.output.split())
    # Four workers train about four times as many epochs by each time: lower regret on average.
    assert (regret[4] < regret[1]).all(), (regret[1], regret[4])
    assert runs["n_trials"].min() > 0
    r = invoke("--metadataset", str(store), "--workers-simulated", "0")
    assert r.exit_code == 2 and "--workers-simulated" in r.output


def test_benchmark_on_a_quicktune_format_dir(tmp_path):
    tiny = pytest.importorskip("tests.metadataset.tiny_quicktune")
    src = tiny.write_quicktune_dir(tmp_path / "qt")
    out = tmp_path / "out"
    r = invoke("--metadataset", str(src), "--budget", "1m", "--methods", "grid", "--out", str(out), "--seeds", "1",
               "--datasets", "d2")
    assert r.exit_code == 0, r.output
    long = pd.read_csv(out / "benchmark.csv")
    assert set(long["dataset"]) == {"d2"} and long["regret"].between(0, 1).all()


@pytest.mark.parametrize(
    "args, word",
    [
        (["--budget", "4 hours"], "--budget"),
        (["--budget", "0s"], "--budget"),
        (["--methods", "random,nope"], "nope"),
        (["--datasets", "d0,zz"], "zz"),
        (["--seeds", "0"], "--seeds"),
        (["--report-at", "1m,soon"], "--report-at"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(store, tmp_path, args, word):
    r = invoke("--metadataset", str(store), "--out", str(tmp_path / "o"), *args)
    assert r.exit_code == 2, r.output
    assert word in r.output and "Traceback" not in r.output
    assert len([line for line in r.output.splitlines() if line.strip()]) == 1


def test_missing_metadataset_exits_2(tmp_path):
    r = invoke("--metadataset", str(tmp_path / "absent"), "--out", str(tmp_path / "o"))
    assert r.exit_code == 2 and "absent" in r.output


def test_default_metadataset_is_the_embedded_one_and_report_times_are_custom(store, tmp_path, monkeypatch):
    import quicktune.metadataset.loading as loading

    monkeypatch.setattr(loading, "EMBEDDED_METADATASET", store)
    out = tmp_path / "out"
    r = invoke("--budget", "16m", "--report-at", "1m,4m,16m", "--methods", "random", "--out", str(out),
               "--seeds", "1", "--grid-points", "10")
    assert r.exit_code == 0, r.output
    doc = json.loads((out / "benchmark_summary.json").read_text())
    assert list(doc["report_times_s"]) == ["1m", "4m", "16m"]
    assert set(doc["methods"]["random"]["mean_regret"]) == {"1m", "4m", "16m"}


def test_missing_embedded_metadataset_is_a_clear_error(tmp_path, monkeypatch):
    import quicktune.metadataset.loading as loading

    monkeypatch.setattr(loading, "EMBEDDED_METADATASET", tmp_path / "nowhere")
    r = invoke("--out", str(tmp_path / "out"))
    assert r.exit_code == 2 and "embedded meta-dataset" in r.output and "Traceback" not in r.output
