"""vpsbench: evaluation toolkit for unsupervised video panoptic segmentation.

``vpsbench.evaluate``, ``vpsbench.load_results`` and ``vpsbench.Results`` (see
:mod:`vpsbench.api`) are imported on first use, so ``import vpsbench`` stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from vpsbench.errors import InputError, VpsbenchError
from vpsbench.video import PanopticFrame

if TYPE_CHECKING:
    from vpsbench.api import Results, evaluate, load_results, rescore

__version__ = "0.1.0"

__all__ = [
    "InputError",
    "PanopticFrame",
    "Results",
    "VpsbenchError",
    "__version__",
    "evaluate",
    "load_results",
    "rescore",
]

_LAZY = frozenset({"Results", "evaluate", "load_results", "rescore"})


def __getattr__(name: str) -> Any:
    """The API's names, imported from :mod:`vpsbench.api` when first asked for."""
    if name in _LAZY:
        value = getattr(importlib.import_module("vpsbench.api"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'vpsbench' has no attribute {name!r}")
