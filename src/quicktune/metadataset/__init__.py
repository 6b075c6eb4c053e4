"""The meta-dataset: learning curves of fine-tuning runs, stored as immutable Parquet parts."""

from quicktune.metadataset.schema import FINETUNE_VERSION, RUN_COLUMNS, SCHEMA_VERSION, run_key
from quicktune.metadataset.storage import MetaDatasetStore, StoreError
from quicktune.metadataset.tabular import CurveTable, TaskCurves

__all__ = [
    "FINETUNE_VERSION",
    "RUN_COLUMNS",
    "SCHEMA_VERSION",
    "CurveTable",
    "MetaDatasetStore",
    "StoreError",
    "TaskCurves",
    "run_key",
]
