"""The meta-dataset: learning curves of fine-tuning runs, stored as immutable Parquet parts.

Names are imported on first use (PEP 562), so a process that only appends to a store
(`quicktune.metadataset.storage`) does not pay for importing torch via the search space.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "FINETUNE_VERSION": "schema",
    "RUN_COLUMNS": "schema",
    "SCHEMA_VERSION": "schema",
    "run_key": "schema",
    "MetaDatasetStore": "storage",
    "StoreError": "storage",
    "CurveTable": "tabular",
    "TaskCurves": "tabular",
    "QuickTuneFormatError": "importers",
    "import_quicktune": "importers",
    "read_quicktune": "importers",
    "load_rows": "loading",
    "EMBEDDED_METADATASET": "loading",
    "embedded_metadataset": "loading",
    "open_metadataset": "loading",
    "merge_metadatasets": "merge",
    "summarize": "loading",
}

# A literal list (type checkers read it; tests/test_public_api.py checks it against _EXPORTS).
__all__ = [
    "CurveTable",
    "EMBEDDED_METADATASET",
    "FINETUNE_VERSION",
    "MetaDatasetStore",
    "QuickTuneFormatError",
    "RUN_COLUMNS",
    "SCHEMA_VERSION",
    "StoreError",
    "TaskCurves",
    "embedded_metadataset",
    "import_quicktune",
    "load_rows",
    "merge_metadatasets",
    "open_metadataset",
    "read_quicktune",
    "run_key",
    "summarize",
]

if TYPE_CHECKING:
    from quicktune.metadataset.importers import (
        QuickTuneFormatError,
        import_quicktune,
        read_quicktune,
    )
    from quicktune.metadataset.loading import (
        EMBEDDED_METADATASET,
        embedded_metadataset,
        load_rows,
        open_metadataset,
        summarize,
    )
    from quicktune.metadataset.merge import merge_metadatasets
    from quicktune.metadataset.schema import (
        FINETUNE_VERSION,
        RUN_COLUMNS,
        SCHEMA_VERSION,
        run_key,
    )
    from quicktune.metadataset.storage import MetaDatasetStore, StoreError
    from quicktune.metadataset.tabular import CurveTable, TaskCurves


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'quicktune.metadataset' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"quicktune.metadataset.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
