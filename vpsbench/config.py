"""Where datasets live: ``--root``, then the config file, then ``$VPSBENCH_DATA/<name>``.

Without any of them a dataset is looked for at ``./data/<name>``, except the datasets vpsbench
generates itself (``synthetic``): they live in vpsbench's cache folder (:func:`cache_dir`), the one
place ``demo``, ``evaluate``, ``run-method`` and ``datasets prepare`` all use by default.

The config file is TOML, at ``$VPSBENCH_CONFIG`` or ``~/.config/vpsbench/config.toml``::

    [datasets]
    kitti-step = "/data/kitti-step"
    waymo = "/data/waymo_pvps"
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from vpsbench.errors import InputError

DATA_ENV = "VPSBENCH_DATA"
CONFIG_ENV = "VPSBENCH_CONFIG"
CACHE_ENV = "VPSBENCH_CACHE"
#: Datasets vpsbench generates itself; their default root is ``cache_dir() / name``.
GENERATED_DATASETS = frozenset({"synthetic"})


def cache_dir() -> Path:
    """vpsbench's cache folder, for generated data and the demo's predictions and results.

    ``$VPSBENCH_CACHE``, else ``$XDG_CACHE_HOME/vpsbench``, else ``~/.cache/vpsbench``.
    """
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "vpsbench"


def config_path() -> Path:
    """The config file in use (it need not exist)."""
    explicit = os.environ.get(CONFIG_ENV)
    if explicit:
        return Path(explicit)
    return Path.home() / ".config" / "vpsbench" / "config.toml"


def read_config() -> dict[str, object]:
    """The parsed config file, or an empty dict when there is none."""
    path = config_path()
    if not path.exists():
        return {}
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise InputError(path, f"cannot read the config file: {error}") from None


def resolve_dataset_root(name: str, root: str | Path | None = None) -> Path:
    """The root directory of dataset ``name`` by the documented precedence (module docstring)."""
    if root is not None:
        return Path(root).expanduser()
    datasets = read_config().get("datasets", {})
    if isinstance(datasets, dict) and isinstance(datasets.get(name), str):
        return Path(datasets[name]).expanduser()
    base = os.environ.get(DATA_ENV)
    if base:
        return Path(base).expanduser() / name
    if name in GENERATED_DATASETS:
        return cache_dir() / name
    return Path.cwd() / "data" / name
