"""Cityscapes ``*_gtFine_instanceIds.png``: 16-bit, labelId for stuff/groups, labelId*1000 + k."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from vpsbench.errors import InputError
from vpsbench.formats.png import describe_png_array, read_png
from vpsbench.video import PanopticFrame

CITYSCAPES_INSTANCE_DIVISOR = 1000


def decode_cityscapes_instance_ids(values: npt.NDArray[np.integer]) -> PanopticFrame:
    """Split instanceIds: ``v < 1000`` -> (v, 0); else (v // 1000, v % 1000 + 1).

    The ``+ 1`` keeps instance 0 for "no instance", since Cityscapes numbers instances from 0;
    group (crowd) regions carry only their labelId and so come out as (thing class, 0).
    """
    if values.ndim != 2 or values.dtype.kind not in "iu":
        raise ValueError(
            f"instanceIds must be a 2-D integer array, got {values.dtype} {values.shape}"
        )
    if values.size and int(values.min()) < 0:
        raise ValueError(f"instanceIds must be non-negative, got {values.min()}")
    ids = values.astype(np.int32)
    is_instance = ids >= CITYSCAPES_INSTANCE_DIVISOR
    semantic = np.where(is_instance, ids // CITYSCAPES_INSTANCE_DIVISOR, ids)
    instance = np.where(is_instance, ids % CITYSCAPES_INSTANCE_DIVISOR + 1, 0)
    return PanopticFrame(semantic.astype(np.int32), instance.astype(np.int32))


def read_cityscapes_instance_ids(path: str | Path) -> PanopticFrame:
    """Read and decode a Cityscapes ``*_gtFine_instanceIds.png`` (single-channel, 16- or 8-bit)."""
    array = read_png(path)
    if array.ndim != 2:
        raise InputError(
            path, f"expected a 16-bit grayscale instanceIds PNG, got {describe_png_array(array)}"
        )
    return decode_cityscapes_instance_ids(array)
