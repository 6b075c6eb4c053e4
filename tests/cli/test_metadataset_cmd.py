import json

import pytest
from typer.testing import CliRunner

from quicktune.cli import app
from quicktune.metadataset import MetaDatasetStore
from tests.helpers import shared_path
from tests.metadataset.tiny_quicktune import write_quicktune_dir

runner = CliRunner()


def _one_line_error(result, *words):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert "Traceback" not in result.output
    for w in words:
        assert w in lines[0]


def test_import_info_compact_on_a_tiny_directory(tmp_path, monkeypatch):
    src = write_quicktune_dir(tmp_path / "mini")
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["metadataset", "import-quicktune", str(src)])
    assert r.exit_code == 0, r.output
    store_dir = tmp_path / "metadataset" / "imported" / "mini"  # the default --out
    assert "2 datasets" in r.output and "5 runs" in r.output and "13 epochs" in r.output
    assert len(MetaDatasetStore(store_dir).read()) == 13

    for target in (store_dir, src):  # a store, or the Quick-Tune folder read in memory
        r = runner.invoke(app, ["metadataset", "info", str(target)])
        assert r.exit_code == 0, r.output
        assert "2 datasets, 2 models, 5 runs, 13 epochs" in r.output
        assert "d1" in r.output and "d2" in r.output

    r = runner.invoke(app, ["metadataset", "info", str(store_dir), "--json"])
    s = json.loads(r.output)
    assert (s["datasets"], s["runs"], s["epochs"]) == (2, 5, 13)
    assert s["total_hours"] == pytest.approx(sum(10 + i for n in (3, 2, 1, 4, 3) for i in range(n)) / 3600)

    r = runner.invoke(app, ["metadataset", "compact", str(store_dir)])
    assert r.exit_code == 0, r.output
    manifest = MetaDatasetStore(store_dir).manifest()
    assert "13 rows" in r.output and manifest["runs"]["content_hash"] in r.output


def test_import_to_an_explicit_store(tmp_path):
    src = write_quicktune_dir(tmp_path / "mini")
    r = runner.invoke(app, ["metadataset", "import-quicktune", str(src), "--out", str(tmp_path / "s")])
    assert r.exit_code == 0, r.output
    assert MetaDatasetStore(tmp_path / "s").read()["run_key"].nunique() == 5


def test_bad_paths_exit_2_with_one_line(tmp_path):
    _one_line_error(runner.invoke(app, ["metadataset", "info", str(tmp_path / "nope")]), "no such directory")
    _one_line_error(runner.invoke(app, ["metadataset", "info", str(tmp_path)]), "neither a meta-dataset store")
    _one_line_error(runner.invoke(app, ["metadataset", "compact", str(tmp_path)]), "not a meta-dataset store")
    _one_line_error(runner.invoke(app, ["metadataset", "import-quicktune", str(tmp_path / "nope"),
                                       "--out", str(tmp_path / "s")]), "no such directory")
    src = write_quicktune_dir(tmp_path / "mini")
    (src / "curves" / "cost.json").unlink()
    _one_line_error(runner.invoke(app, ["metadataset", "import-quicktune", str(src), "--out", str(tmp_path / "s")]),
                    "cost.json", "missing")


def test_info_on_the_shared_extended_copy():
    path = shared_path("data", "quicktune-extended")
    r = runner.invoke(app, ["metadataset", "info", str(path)])
    assert r.exit_code == 0, r.output
    assert "19 datasets, 24 models, 3485 runs" in r.output
    for d in ("ACT_40", "TEX_DTD", "BTS"):
        assert d in r.output


@pytest.mark.slow
def test_importing_the_shared_copy_twice_keeps_the_content_hash(tmp_path):
    path = shared_path("data", "quicktune-extended")
    out = str(tmp_path / "store")
    hashes = []
    for _ in range(2):
        r = runner.invoke(app, ["metadataset", "import-quicktune", str(path), "--out", out])
        assert r.exit_code == 0 and "19 datasets" in r.output and "3485 runs" in r.output, r.output
        r = runner.invoke(app, ["metadataset", "compact", out])
        assert r.exit_code == 0 and "104481 rows (3485 runs)" in r.output, r.output
        hashes.append(MetaDatasetStore(out).manifest()["runs"]["content_hash"])
    assert hashes[0] == hashes[1]
