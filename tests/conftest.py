"""Shared fixtures: where the development data lives, and small synthetic meta-datasets."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.helpers import synthetic_runs  # noqa: F401  (re-exported for convenience)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Ray tests (a local Ray started per module: minutes on a loaded machine) run only when asked
    for by marker, `-m ray`, as .ci/run does after the main run; otherwise they are skipped."""
    if "ray" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="Ray tests run with -m ray (as .ci/run does)")
    for item in items:
        if "ray" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _torch_threads():
    # Tests run on a 2-core machine; one intra-op thread keeps them predictable.
    import torch

    torch.set_num_threads(1)
    yield


@pytest.fixture
def runs_df() -> pd.DataFrame:
    return synthetic_runs()
