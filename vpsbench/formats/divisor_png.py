"""Single-channel label PNGs: Waymo-style ``semantic * divisor + instance`` and plain label maps.

Waymo Open Dataset PVPS stores ``panoptic_label`` as a 16-bit gray PNG with divisor 1000 (instance
0 = "no instance"), and ``num_cameras_covered`` as an 8-bit PNG. Exported datasets may also keep
separate ``*_semantic.png`` / ``*_instance.png`` maps, read with :func:`read_label_png`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from vpsbench.errors import InputError
from vpsbench.formats.png import describe_png_array, read_png, write_png
from vpsbench.video import PanopticFrame

DEFAULT_DIVISOR = 1000
_MAX_16BIT = 0xFFFF


def _check_divisor(divisor: int) -> None:
    """Raise ``ValueError`` unless ``divisor`` is a positive integer."""
    if isinstance(divisor, bool) or not isinstance(divisor, int | np.integer) or divisor < 1:
        raise ValueError(f"divisor must be a positive integer, got {divisor!r}")


def read_label_png(path: str | Path) -> npt.NDArray[np.int32]:
    """Read a single-channel 8- or 16-bit PNG (gray or palette indices) as an int32 label map."""
    array = read_png(path)
    if array.ndim != 2:
        raise InputError(
            path, f"expected a single-channel label PNG, got {describe_png_array(array)}"
        )
    return array.astype(np.int32)


def write_label_png(path: str | Path, labels: npt.NDArray[np.integer], bits: int = 16) -> None:
    """Write a 2-D integer label map as an 8- or 16-bit gray PNG, atomically.

    ``ValueError`` for a bad ``bits``, shape or dtype; :class:`InputError` naming ``path`` if a
    value does not fit ``[0, 2**bits)``.
    """
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits}")
    if not isinstance(labels, np.ndarray) or labels.ndim != 2 or labels.dtype.kind not in "iu":
        raise ValueError(
            f"labels must be a 2-D integer array, got {getattr(labels, 'shape', labels)}"
        )
    maximum = (1 << bits) - 1
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) > maximum):
        raise InputError(
            path,
            f"label values {labels.min()}..{labels.max()} do not fit {bits}-bit [0, {maximum}]",
        )
    write_png(path, labels.astype(np.uint8 if bits == 8 else np.uint16))


def read_divisor_png(path: str | Path, divisor: int = DEFAULT_DIVISOR) -> PanopticFrame:
    """Read a gray PNG of ``semantic * divisor + instance`` (Waymo: 16-bit, divisor 1000)."""
    _check_divisor(divisor)
    values = read_label_png(path)
    semantic, instance = np.divmod(values, np.int32(divisor))
    return PanopticFrame(semantic.astype(np.int32), instance.astype(np.int32))


def write_divisor_png(
    path: str | Path, frame: PanopticFrame, divisor: int = DEFAULT_DIVISOR
) -> None:
    """Write ``semantic * divisor + instance`` as a 16-bit gray PNG, atomically.

    :class:`InputError` naming ``path`` if a value is negative, an instance is ``>= divisor`` or a
    combined value exceeds 65535.
    """
    _check_divisor(divisor)
    semantic = frame.semantic.astype(np.int64)
    instance = frame.instance.astype(np.int64)
    if semantic.size == 0:
        raise ValueError(f"cannot write an empty frame of shape {frame.shape}")
    if int(semantic.min()) < 0 or int(instance.min()) < 0:
        raise InputError(path, "negative class or instance id cannot be written")
    if int(instance.max()) >= divisor:
        raise InputError(path, f"instance id {instance.max()} does not fit divisor {divisor}")
    values = semantic * divisor + instance
    if int(values.max()) > _MAX_16BIT:
        y, x = (int(v) for v in np.argwhere(values > _MAX_16BIT)[0])
        raise InputError(
            path,
            f"class {semantic[y, x]} * {divisor} + instance {instance[y, x]} = {values[y, x]} "
            f"exceeds the 16-bit maximum {_MAX_16BIT}",
        )
    write_png(path, values.astype(np.uint16))
