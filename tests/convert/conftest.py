"""One converted-weights cache per test module, in a temporary directory (never the user's)."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="module")
def converted_cache(tmp_path_factory):
    old = os.environ.get("QUICKTUNE_CONVERTED_CACHE")
    path = tmp_path_factory.mktemp("converted")
    os.environ["QUICKTUNE_CONVERTED_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("QUICKTUNE_CONVERTED_CACHE", None)
    else:
        os.environ["QUICKTUNE_CONVERTED_CACHE"] = old
