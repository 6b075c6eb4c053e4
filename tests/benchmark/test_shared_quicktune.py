import numpy as np

from quicktune.benchmark.experiment import run_benchmark
from quicktune.metadataset import open_metadataset
from tests.helpers import shared_path


def test_random_search_regret_decreases_on_the_shared_quicktune_copy():
    table = open_metadataset(shared_path("data", "quicktune-extended"))
    assert len(table.datasets) == 19
    res = run_benchmark(table, ["random"], 2 * 3600.0, datasets=["APL", "PNU"], seeds=range(5), n_folds=5,
                        grid_points=40)
    assert set(res.long["dataset"]) == {"APL", "PNU"} and res.long["seed"].nunique() == 5
    assert res.long["regret"].between(0, 1).all()
    mean = res.long.groupby("time_s")["regret"].mean().sort_index().to_numpy()
    assert np.all(np.diff(mean) <= 1e-12)  # monotone in time
    assert mean[0] > 0.8 and mean[-1] < 0.5  # and it really improves within 2 h
