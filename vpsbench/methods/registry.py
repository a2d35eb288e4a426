"""Method plugins, found through the entry-point group ``vpsbench.methods``.

A package registers a method class in its ``pyproject.toml``::

    [project.entry-points."vpsbench.methods"]
    my-method = "my_package.module:MyMethod"

vpsbench's own methods (``methods/``) and baselines (``baselines/``) are registered exactly so.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

from vpsbench.errors import VpsbenchError
from vpsbench.methods.base import Method

ENTRY_POINT_GROUP = "vpsbench.methods"


def _entry_points() -> dict[str, EntryPoint]:
    return {point.name: point for point in entry_points(group=ENTRY_POINT_GROUP)}


def method_names() -> list[str]:
    """Names of the installed method plugins, sorted."""
    return sorted(_entry_points())


def method_class(name: str) -> type[Method]:
    """Load the plugin ``name``; a clear error lists the installed ones or the import problem."""
    points = _entry_points()
    if name not in points:
        known = ", ".join(sorted(points)) or "none installed"
        raise VpsbenchError(f"unknown method {name!r}; installed methods: {known}")
    try:
        loaded = points[name].load()
    except ModuleNotFoundError as error:
        raise VpsbenchError(
            f"method {name!r} needs the module {error.name!r}: pip install 'vpsbench[methods]'"
        ) from None
    if not (isinstance(loaded, type) and issubclass(loaded, Method)):
        raise VpsbenchError(f"entry point {name!r} ({points[name].value}) is not a Method class")
    if loaded.name != name:
        raise VpsbenchError(f"entry point {name!r} loads method {loaded.name!r}; names must agree")
    return loaded
