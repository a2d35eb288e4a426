"""KITTI-STEP / MOTChallenge-STEP (DeepLab2) panoptic PNG: R = semantic, instance = G*256 + B.

The semantic channel holds the dataset's class id (Cityscapes trainIds for KITTI-STEP, 255 =
void); instance 0 means "no instance" (crowd for a thing class). Nothing is remapped here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from vpsbench.errors import InputError
from vpsbench.formats.png import code_channels, describe_png_array, read_png, write_png
from vpsbench.video import PanopticFrame

MAX_STEP_SEMANTIC = 255
MAX_STEP_INSTANCE = 256 * 256 - 1


def decode_step(rgb: npt.NDArray[np.uint8]) -> PanopticFrame:
    """Split a uint8 (H,W,3) STEP image into semantic (R) and instance (G*256 + B) maps."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"STEP image must be uint8 (H,W,3), got {rgb.dtype} {rgb.shape}")
    height, width = rgb.shape[:2]
    if rgb.size == 0 or not rgb.flags.c_contiguous:
        instance = rgb[:, :, 1].astype(np.int32)
        instance <<= 8
        instance |= rgb[:, :, 2]
        return PanopticFrame(rgb[:, :, 0].astype(np.int32), instance)
    # One strided pass each: R as bytes, (G, B) read as one big-endian 16-bit number.
    buffer = rgb.reshape(-1)
    strides = (3 * width, 3)
    red = np.ndarray((height, width), dtype=np.uint8, buffer=buffer, offset=0, strides=strides)
    green_blue = np.ndarray((height, width), dtype=">u2", buffer=buffer, offset=1, strides=strides)
    return PanopticFrame(red.astype(np.int32), green_blue.astype(np.int32))


def decode_step_codes(codes: npt.NDArray[np.uint32]) -> PanopticFrame:
    """:func:`decode_step` of a 1-D array of ``read_rgb_codes`` codes, as a 1×N frame."""
    red, green, blue = code_channels(codes)
    return PanopticFrame(red[None], ((green << 8) | blue)[None])


def encode_step(frame: PanopticFrame) -> npt.NDArray[np.uint8]:
    """Pack a frame into the uint8 (H,W,3) STEP image; ``ValueError`` if a value does not fit."""
    _check_range(frame.semantic, "semantic", MAX_STEP_SEMANTIC)
    _check_range(frame.instance, "instance", MAX_STEP_INSTANCE)
    semantic = frame.semantic.astype(np.int64)
    instance = frame.instance.astype(np.int64)
    rgb = np.stack([semantic, instance // 256, instance % 256], axis=-1)
    return rgb.astype(np.uint8)


def _check_range(values: npt.NDArray[np.integer], name: str, maximum: int) -> None:
    """Raise ``ValueError`` unless every value lies in ``[0, maximum]``."""
    if values.size == 0:
        return
    low, high = int(values.min()), int(values.max())
    if low < 0 or high > maximum:
        bad = low if low < 0 else high
        raise ValueError(f"{name} value {bad} does not fit the STEP PNG range [0, {maximum}]")


def read_step_png(path: str | Path) -> PanopticFrame:
    """Read a STEP panoptic PNG; :class:`InputError` unless it is a valid 8-bit RGB PNG."""
    array = read_png(path)
    if array.ndim != 3 or array.dtype != np.uint8:
        raise InputError(path, f"expected an 8-bit RGB STEP PNG, got {describe_png_array(array)}")
    return decode_step(array.astype(np.uint8))


def write_step_png(path: str | Path, frame: PanopticFrame) -> None:
    """Write a frame as a STEP panoptic PNG, atomically; values out of range raise InputError."""
    try:
        rgb = encode_step(frame)
    except ValueError as exc:
        raise InputError(path, str(exc)) from None
    write_png(path, rgb)
