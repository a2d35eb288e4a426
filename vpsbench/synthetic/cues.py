"""The per-frame cue archives (depth, flow, motion mask) and per-video camera files.

Cue archives are ordinary ``.npz`` files (read them with :func:`numpy.load` too) written
deterministically: fixed zip timestamps and a fixed deflate level, so the same arrays always give
the same bytes. Depth and mask are deflated; the flows are stored (they barely compress).

Arrays: ``depth`` float32 (H, W) in metres, ``inf`` on sky; ``flow_forward`` / ``flow_backward``
float32 (H, W, 2) in pixels (absent on the last / first frame; NaN where the point passes behind
the other frame's camera); ``moving`` uint8 (H, W) 0/1.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from vpsbench.errors import InputError
from vpsbench.formats.atomic import atomic_write_bytes
from vpsbench.formats.npz import encode_npz, load_npz_arrays
from vpsbench.synthetic.layout import camera_path, cues_path

CUE_ARRAYS = ("depth", "flow_forward", "flow_backward", "moving")
#: Deflate level of depth and mask: level 1 is ~2x faster than 6 and barely larger here.
_DEFLATE_LEVEL = 1
#: Flows are stored uncompressed: their float32 mantissas deflate by only ~15% at ~20 ms each.
_STORED_ARRAYS = frozenset({"flow_forward", "flow_backward"})


def encode_cues(
    depth: npt.NDArray[np.float32],
    flow_forward: npt.NDArray[np.float32] | None,
    flow_backward: npt.NDArray[np.float32] | None,
    moving: npt.NDArray[np.bool_],
) -> bytes:
    """The bytes of a cue archive (flows left out when ``None``)."""
    members: dict[str, npt.NDArray[Any]] = {"depth": depth.astype(np.float32, copy=False)}
    if flow_forward is not None:
        members["flow_forward"] = flow_forward.astype(np.float32, copy=False)
    if flow_backward is not None:
        members["flow_backward"] = flow_backward.astype(np.float32, copy=False)
    members["moving"] = moving.astype(np.uint8)
    return encode_npz(members, stored=_STORED_ARRAYS, level=_DEFLATE_LEVEL)


def write_cues(
    path: Path,
    depth: npt.NDArray[np.float32],
    flow_forward: npt.NDArray[np.float32] | None,
    flow_backward: npt.NDArray[np.float32] | None,
    moving: npt.NDArray[np.bool_],
) -> None:
    """Write one frame's cue archive atomically."""
    atomic_write_bytes(path, encode_cues(depth, flow_forward, flow_backward, moving))


def _check_cues(path: Path, arrays: dict[str, npt.NDArray[Any]]) -> None:
    """Raise :class:`InputError` unless the arrays have the documented dtypes and shapes."""
    for required in ("depth", "moving"):
        if required not in arrays:
            raise InputError(path, f"missing array '{required}' (has {sorted(arrays)})")
    depth = arrays["depth"]
    if depth.ndim != 2 or depth.dtype != np.float32:
        raise InputError(path, f"'depth' must be float32 (H, W), got {depth.dtype} {depth.shape}")
    if arrays["moving"].shape != depth.shape:
        raise InputError(path, f"'moving' shape {arrays['moving'].shape} != depth {depth.shape}")
    for name in ("flow_forward", "flow_backward"):
        flow = arrays.get(name)
        if flow is not None and (flow.shape != (*depth.shape, 2) or flow.dtype != np.float32):
            raise InputError(
                path, f"'{name}' must be float32 {(*depth.shape, 2)}, got {flow.dtype} {flow.shape}"
            )


def read_cues(
    root: Path | str, split: str, seq: int | str, frame: int | str
) -> dict[str, npt.NDArray[Any]]:
    """Read one frame's cues: ``depth``, ``moving`` (bool) and the flows that exist.

    Missing or corrupt archives raise :class:`InputError` naming the file.
    """
    path = cues_path(Path(root), split, seq, frame)
    loaded = load_npz_arrays(path, what="cue archive")
    arrays = {name: array for name, array in loaded.items() if name in CUE_ARRAYS}
    _check_cues(path, arrays)
    arrays["moving"] = arrays["moving"].astype(bool)
    return arrays


def camera_record(
    intrinsics: npt.NDArray[np.float64],
    camera_to_world: Sequence[npt.NDArray[np.float64]],
    fps: int,
    convention: str,
) -> dict[str, Any]:
    """The JSON object of a video's camera file (plain lists and numbers)."""
    return {
        "intrinsics": intrinsics.tolist(),
        "camera_to_world": [pose.tolist() for pose in camera_to_world],
        "fps": fps,
        "convention": convention,
    }


def read_camera(root: Path | str, split: str, seq: int | str) -> dict[str, Any]:
    """Read a video's camera file: ``intrinsics`` (3, 3), ``camera_to_world`` (T, 4, 4), ``fps``.

    Also returns the ``convention`` text; missing or malformed files raise :class:`InputError`.
    """
    path = camera_path(Path(root), split, seq)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        raise InputError(path, f"corrupt or unreadable camera file ({message})") from None
    if not isinstance(record, dict):
        raise InputError(path, "camera file must hold a JSON object")
    try:
        intrinsics = np.asarray(record["intrinsics"], dtype=np.float64)
        poses = np.asarray(record["camera_to_world"], dtype=np.float64)
        fps = int(record["fps"])
        convention = str(record.get("convention", ""))
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(path, f"malformed camera file ({type(exc).__name__}: {exc})") from None
    if intrinsics.shape != (3, 3):
        raise InputError(path, f"'intrinsics' must be 3x3, got shape {intrinsics.shape}")
    if poses.ndim != 3 or poses.shape[1:] != (4, 4):
        raise InputError(path, f"'camera_to_world' must be a list of 4x4, got shape {poses.shape}")
    return {
        "intrinsics": intrinsics,
        "camera_to_world": poses,
        "fps": fps,
        "convention": convention,
    }
