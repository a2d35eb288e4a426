"""Frames as ``.npz`` archives (``semantic`` and ``instance`` int32 arrays).

Used for predictions that do not fit a PNG: more than 255 pseudo-classes, or semantic -1 for "no
prediction". Archives are written deterministically (fixed zip timestamps, deflate), so the same
frame always gives the same bytes; :func:`numpy.load` reads them like ``np.savez_compressed``
output, and :func:`read_npz` reads files written by ``np.savez``/``np.savez_compressed``.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from vpsbench.errors import InputError
from vpsbench.formats.atomic import atomic_write_bytes
from vpsbench.video import PanopticFrame

NPZ_KEYS = ("semantic", "instance")
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_INT32_MIN, _INT32_MAX = np.iinfo(np.int32).min, np.iinfo(np.int32).max


def _checked_map(
    path: str | Path, name: str, array: npt.NDArray[np.generic]
) -> npt.NDArray[np.int32]:
    """Validate one stored map (2-D, integer, fits int32) and return it as int32."""
    if array.ndim != 2:
        raise InputError(path, f"array '{name}' must be 2-D, got shape {array.shape}")
    if array.dtype.kind not in "iu":
        raise InputError(path, f"array '{name}' must have an integer dtype, got {array.dtype}")
    if array.size and (int(array.min()) < _INT32_MIN or int(array.max()) > _INT32_MAX):
        raise InputError(path, f"array '{name}' has values outside the int32 range")
    return array.astype(np.int32)


def load_npz_arrays(path: str | Path, what: str = ".npz archive") -> dict[str, npt.NDArray[Any]]:
    """Every array of an ``.npz``; a missing, corrupt or non-npz file is an InputError."""
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise InputError(path, "not an .npz archive (a single .npy array)")
        with loaded as archive:
            return {name: archive[name] for name in archive.files}
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        raise InputError(path, f"corrupt or unreadable {what} ({message})") from None


def encode_npz(
    arrays: Mapping[str, npt.NDArray[Any]],
    stored: Collection[str] = (),
    level: int | None = None,
) -> bytes:
    """Deterministic ``.npz`` bytes: fixed timestamps; deflated except the ``stored`` names."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, mode="w") as archive:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            if name in stored:
                archive.writestr(info, _npy_bytes(array), compress_type=zipfile.ZIP_STORED)
            else:
                archive.writestr(
                    info, _npy_bytes(array), compress_type=zipfile.ZIP_DEFLATED, compresslevel=level
                )
    return buffer.getvalue()


def read_npz(path: str | Path) -> PanopticFrame:
    """Read a frame from an ``.npz`` with 2-D integer ``semantic`` and ``instance`` arrays."""
    arrays = load_npz_arrays(path)
    for key in NPZ_KEYS:
        if key not in arrays:
            raise InputError(path, f"missing array '{key}' (has {sorted(arrays)})")
    semantic = _checked_map(path, "semantic", arrays["semantic"])
    instance = _checked_map(path, "instance", arrays["instance"])
    if semantic.shape != instance.shape:
        raise InputError(
            path, f"semantic shape {semantic.shape} != instance shape {instance.shape}"
        )
    return PanopticFrame(semantic, instance)


def _npy_bytes(array: npt.NDArray[Any]) -> bytes:
    """The ``.npy`` serialisation of an array (what numpy stores inside an ``.npz``)."""
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def write_npz(path: str | Path, frame: PanopticFrame) -> None:
    """Write a frame as a compressed ``.npz`` with int32 ``semantic``/``instance``, atomically."""
    members = {
        "semantic": frame.semantic.astype(np.int32),
        "instance": frame.instance.astype(np.int32),
    }
    atomic_write_bytes(path, encode_npz(members))
