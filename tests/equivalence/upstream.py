"""Import the upstream reference code (``../shared/reference-code``) as a test oracle.

The folder holds unmodified upstream sources; tests build the upstream module, save its weights in
the upstream checkpoint container, load them through vpsbench's own loader and compare outputs.
Nothing here is imported by the package: it is test-only.

* :func:`require` skips a test with a clear reason when the folder (or a package it needs) is
  absent.
* :func:`isolated_import` imports upstream modules whose top-level names collide across projects
  (RAFT's, DINO's and DepthG's ``utils``): it puts folders first on ``sys.path``, imports, then
  forgets every module the import added, so the next project gets its own ``utils``.
* :func:`install_standins` puts the test-only ``torchvision`` / ``timm`` stand-ins (``standins/``:
  plain loop-based RoIAlign, greedy NMS, torchvision-named ResNet, ``DropPath``) into
  ``sys.modules``; torchvision's compiled ops do not load with the CPU torch wheel used here, and
  the stand-ins are written independently of vpsbench's own ops so that a comparison never reuses
  the code under test.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
REFERENCE_CODE = REPO.parent / "shared" / "reference-code"
REFERENCE_DATA = REPO.parent / "shared" / "reference-data"
STANDINS = Path(__file__).resolve().parent / "standins"
STANDIN_PACKAGES = ("torchvision", "timm")


def require(*parts: str) -> Path:
    """The path ``../shared/reference-code/<parts>``, or skip the test saying what is missing."""
    path = REFERENCE_CODE.joinpath(*parts)
    if not path.exists():
        pytest.skip(
            f"upstream reference code not found at {path} "
            "(equivalence tests need ../shared/reference-code beside the checkout)"
        )
    return path


def require_data(*parts: str) -> Path:
    """The path ``../shared/reference-data/<parts>``, or skip the test saying what is missing."""
    path = REFERENCE_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"upstream reference data not found at {path}")
    return path


def require_packages(*names: str) -> None:
    """Skip unless the pure-Python packages the upstream code imports are installed (dev extra)."""
    for name in names:
        pytest.importorskip(name, reason=f"upstream reference code needs '{name}' (dev extra)")


def install_standins() -> None:
    """Make ``import torchvision`` / ``import timm`` resolve to the test-only stand-ins."""
    for name in STANDIN_PACKAGES:
        module = sys.modules.get(name)
        if module is not None and Path(getattr(module, "__file__", "") or "").is_relative_to(
            STANDINS
        ):
            continue
        for loaded in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[loaded]
    if str(STANDINS) not in sys.path:
        sys.path.insert(0, str(STANDINS))
    for name in STANDIN_PACKAGES:
        importlib.import_module(name)


def _is_from(module: ModuleType, folders: tuple[Path, ...]) -> bool:
    """Whether a module (or package) was loaded from one of ``folders``."""
    locations = [getattr(module, "__file__", None), *getattr(module, "__path__", [])]
    return any(
        Path(location).resolve().is_relative_to(folder)
        for location in locations
        if location
        for folder in folders
    )


@contextmanager
def isolated_import(*folders: Path) -> Iterator[None]:
    """Import upstream modules from ``folders`` and forget them afterwards (objects stay alive).

    Only modules loaded from ``folders`` are forgotten: third-party modules the upstream code
    pulls in (scipy submodules, …) stay, since some refuse to be loaded twice in one process.
    """
    before = set(sys.modules)
    resolved = tuple(Path(folder).resolve() for folder in folders)
    entries = [str(folder) for folder in folders]
    sys.path[:0] = entries
    try:
        yield
    finally:
        for entry in entries:
            sys.path.remove(entry)
        for name in set(sys.modules) - before:
            module = sys.modules.get(name)
            if module is not None and _is_from(module, resolved):
                del sys.modules[name]


def load_module(folder: Path, name: str) -> ModuleType:
    """Import ``name`` with ``folder`` first on ``sys.path``, isolated from other upstream code."""
    with isolated_import(folder):
        return importlib.import_module(name)
