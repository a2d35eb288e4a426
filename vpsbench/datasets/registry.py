"""The one registry of dataset loaders, keyed by the names users type (``kitti-step``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TypeVar

from vpsbench.config import resolve_dataset_root
from vpsbench.datasets.base import Dataset
from vpsbench.errors import VpsbenchError

_REGISTRY: dict[str, type[Dataset]] = {}

DatasetClass = TypeVar("DatasetClass", bound=type[Dataset])


def register_dataset(cls: DatasetClass) -> DatasetClass:
    """Class decorator: make a loader available under ``cls.name``."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise VpsbenchError(f"dataset name {cls.name!r} is registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def dataset_names() -> list[str]:
    """Names of all registered datasets, sorted."""
    _import_builtin_loaders()
    return sorted(_REGISTRY)


def dataset_class(name: str) -> type[Dataset]:
    """The loader class registered as ``name``; a clear error lists the known names."""
    _import_builtin_loaders()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise VpsbenchError(
            f"unknown dataset {name!r}; known datasets: {', '.join(sorted(_REGISTRY))}"
        ) from None


def open_dataset(
    name: str,
    root: str | Path | None = None,
    protocol: Mapping[str, str] | None = None,
) -> Dataset:
    """Instantiate a loader, resolving its root from ``root``, the config file or $VPSBENCH_DATA."""
    cls = dataset_class(name)
    return cls(resolve_dataset_root(name, root), protocol)


def _import_builtin_loaders() -> None:
    # Importing the modules runs their @register_dataset decorators.
    from vpsbench.datasets import loaders  # noqa: F401
