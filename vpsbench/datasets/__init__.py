"""Dataset loaders (one module each) and their registry."""

from vpsbench.datasets.base import (
    IGNORE_LABEL,
    ClassMappingRow,
    Dataset,
    DatasetFacts,
    DatasetNotFoundError,
    LabelSpace,
    Problem,
    ProtocolOption,
)
from vpsbench.datasets.registry import dataset_class, dataset_names, open_dataset, register_dataset

__all__ = [
    "IGNORE_LABEL",
    "ClassMappingRow",
    "Dataset",
    "DatasetFacts",
    "DatasetNotFoundError",
    "LabelSpace",
    "Problem",
    "ProtocolOption",
    "dataset_class",
    "dataset_names",
    "open_dataset",
    "register_dataset",
]
