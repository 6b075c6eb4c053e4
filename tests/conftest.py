"""Shared fixtures: where the development data lives, and small synthetic meta-datasets."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.helpers import synthetic_runs  # noqa: F401  (re-exported for convenience)

@pytest.fixture(autouse=True)
def _torch_threads():
    # Tests run on a 2-core machine; one intra-op thread keeps them predictable.
    import torch

    torch.set_num_threads(1)
    yield


@pytest.fixture
def runs_df() -> pd.DataFrame:
    return synthetic_runs()
