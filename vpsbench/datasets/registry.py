"""The one registry of dataset loaders, keyed by the names users type (``kitti-step``).

Three sources, one lookup: the built-in loaders, third-party plugins registered in the entry-point
group ``vpsbench.datasets`` (like methods)::

    [project.entry-points."vpsbench.datasets"]
    my-dataset = "my_package.module:MyDataset"   # a Dataset subclass whose name is my-dataset

and spec files (``--dataset path/to/spec.toml``, see :mod:`vpsbench.datasets.spec`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import TypeVar

from vpsbench.config import resolve_dataset_root
from vpsbench.datasets.base import Dataset
from vpsbench.errors import VpsbenchError

_REGISTRY: dict[str, type[Dataset]] = {}
ENTRY_POINT_GROUP = "vpsbench.datasets"

DatasetClass = TypeVar("DatasetClass", bound=type[Dataset])


def register_dataset(cls: DatasetClass) -> DatasetClass:
    """Class decorator: make a loader available under ``cls.name``."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise VpsbenchError(f"dataset name {cls.name!r} is registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def _plugins() -> dict[str, EntryPoint]:
    """Installed dataset plugins by name (built-in names win; a clash is reported on load)."""
    return {point.name: point for point in entry_points(group=ENTRY_POINT_GROUP)}


def dataset_names() -> list[str]:
    """Names of all built-in and installed plugin datasets, sorted."""
    _import_builtin_loaders()
    return sorted(set(_REGISTRY) | set(_plugins()))


def _load_plugin(point: EntryPoint) -> type[Dataset]:
    """Import a plugin's loader class; any failure is one line naming the plugin."""
    from vpsbench.records import SLUG_PATTERN

    where = f"dataset plugin {point.name!r} ({point.value}, entry-point group {ENTRY_POINT_GROUP})"
    try:
        loaded = point.load()
    except Exception as error:  # a plugin's import may fail in any way; report, never crash
        raise VpsbenchError(
            f"{where} failed to load: {type(error).__name__}: {error}".splitlines()[0]
        ) from None
    if not (isinstance(loaded, type) and issubclass(loaded, Dataset)):
        raise VpsbenchError(f"{where} is not a Dataset subclass")
    if not re.fullmatch(SLUG_PATTERN, point.name):
        raise VpsbenchError(
            f"{where}: a dataset name must be a slug (lower-case words joined by -_.)"
        )
    if getattr(loaded, "name", None) != point.name:
        found = getattr(loaded, "name", None)
        raise VpsbenchError(f"{where} loads dataset {found!r}; names must agree")
    return loaded


def dataset_class(name: str) -> type[Dataset]:
    """The loader class for ``name``: built-in, plugin, or a spec file (``*.toml``/``*.yaml``)."""
    from vpsbench.datasets.spec import load_spec, looks_like_spec, spec_class

    if looks_like_spec(name):
        return spec_class(load_spec(name))
    _import_builtin_loaders()
    if name in _REGISTRY:
        return _REGISTRY[name]
    plugins = _plugins()
    if name in plugins:
        return _load_plugin(plugins[name])
    raise VpsbenchError(
        f"unknown dataset {name!r}; known datasets: {', '.join(dataset_names())} "
        "(or a spec file: --dataset path/to/spec.toml)"
    )


def open_dataset(
    name: str,
    root: str | Path | None = None,
    protocol: Mapping[str, str] | None = None,
) -> Dataset:
    """Instantiate a loader at ``root``, else a spec's ``root``, else the configured root.

    The configured root comes from the config file or $VPSBENCH_DATA
    (:func:`~vpsbench.config.resolve_dataset_root`).
    """
    cls = dataset_class(name)
    spec_root = getattr(getattr(cls, "spec", None), "root", None)
    if root is None and isinstance(spec_root, Path):
        return cls(spec_root, protocol)
    return cls(resolve_dataset_root(cls.name, root), protocol)


def _import_builtin_loaders() -> None:
    # Importing the modules runs their @register_dataset decorators.
    from vpsbench.datasets import loaders  # noqa: F401
