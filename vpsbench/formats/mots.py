"""MOTS (MOTSChallenge, KITTI-MOTS) annotations: per-sequence RLE text files and 16-bit PNGs.

An object id is ``class_id * 1000 + k`` with class 1 = car, 2 = pedestrian; 10000 (class 10) is an
ignore region and 0 is background. ``k`` starts at 0 (KITTI-MOTS has objects 1000 and 2000), so a
frame stores ``instance = k + 1`` (:data:`MOTS_INSTANCE_OFFSET`), as KITTI-STEP does, to keep
instance 0 for "no instance". Text lines are ``time obj_id class_id height width rle`` where
``rle`` is a pycocotools compressed RLE string (column-major runs, first run background).

Text files carry the class in its own column, so trackers number objects freely (mots_tools and
TrackEval take the whole ``obj_id`` as the track). When two objects of one class in one file share
``obj_id % 1000`` (``5`` and ``1005``), :func:`read_mots_txt` keeps them apart: that class's
tracks are numbered ``1, 2, …`` in ``obj_id`` order (:attr:`MotsObject.track`) instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
from pycocotools import mask as mask_utils

from vpsbench.errors import InputError
from vpsbench.formats.atomic import atomic_write_text
from vpsbench.formats.png import describe_png_array, read_png, write_png
from vpsbench.video import PanopticFrame

MOTS_CLASS_DIVISOR = 1000
MOTS_IGNORE_CLASS = 10
MOTS_IGNORE_ID = 10000
MOTS_INSTANCE_OFFSET = 1
MAX_MOTS_INSTANCE = MOTS_CLASS_DIVISOR - 1 + MOTS_INSTANCE_OFFSET
_MAX_PNG_VALUE = 0xFFFF
_MAX_PIXELS = 2**31 - 1
_MAX_RLE_CHARS_PER_NUMBER = 12


@dataclass(frozen=True)
class MotsObject:
    """One object of one frame of a MOTS text file."""

    time: int
    obj_id: int
    class_id: int
    height: int
    width: int
    rle: str
    #: Instance id of the object's track when ``obj_id % 1000 + 1`` would merge tracks of its
    #: class in this file (``None``: that convention holds).
    track: int | None = None


# --- RLE ----------------------------------------------------------------------------------------


def rle_counts(rle: str, num_pixels: int) -> npt.NDArray[np.int64]:
    """Run lengths of a pycocotools compressed RLE string, checked to cover exactly the image.

    Each number is written in 5-bit groups (character = group + 48, bit 0x20 = more groups follow,
    bit 0x10 of the last group = negative); from the fourth number on, a number is stored as the
    difference to the number two places before it. ``ValueError`` if the string is malformed, a
    run is negative, or the runs do not add up to ``num_pixels``. pycocotools itself does not check
    short strings, and decodes them into uninitialised memory.
    """
    try:
        raw = np.frombuffer(rle.encode("ascii"), dtype=np.uint8).astype(np.int64) - 48
    except UnicodeEncodeError:
        raise ValueError("RLE string contains non-ASCII characters") from None
    if raw.size == 0:
        raise ValueError("empty RLE string")
    if np.any((raw < 0) | (raw > 63)):
        raise ValueError("RLE string contains characters outside '0'..'o'")
    more = (raw & 0x20) != 0
    if more[-1]:
        raise ValueError("RLE string ends in the middle of a number")
    ends = np.flatnonzero(~more)
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts + 1
    if int(lengths.max()) > _MAX_RLE_CHARS_PER_NUMBER:
        raise ValueError("RLE string contains an over-long number")
    number_of_char = np.repeat(np.arange(len(starts)), lengths)
    shift = 5 * (np.arange(raw.size) - starts[number_of_char])
    values = np.add.reduceat((raw & 0x1F) << shift, starts)
    negative = (raw[ends] & 0x10) != 0
    values[negative] -= np.left_shift(np.int64(1), 5 * lengths[negative])
    counts = values.copy()
    counts[1::2] = np.cumsum(values[1::2])
    counts[2::2] = np.cumsum(values[2::2])
    if np.any(counts < 0):
        raise ValueError("RLE string decodes to a negative run length")
    total = int(counts.sum())
    if total != num_pixels:
        raise ValueError(f"RLE runs cover {total} pixels, the image has {num_pixels}")
    return counts


def _foreground_runs(
    counts: npt.NDArray[np.int64],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Start and end (exclusive, column-major flat index) of each non-empty foreground run."""
    bounds = np.concatenate(([0], np.cumsum(counts)))
    starts, ends = bounds[1:-1:2], bounds[2::2]
    keep = ends > starts
    return starts[keep], ends[keep]


def _first_overlap(
    runs: Sequence[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]],
) -> tuple[int, int] | None:
    """Indices (i < j) of two masks that share a pixel, given their foreground runs, or None."""
    if len(runs) < 2:
        return None
    starts = np.concatenate([s for s, _ in runs])
    ends = np.concatenate([e for _, e in runs])
    owner = np.concatenate([np.full(len(s), i) for i, (s, _) in enumerate(runs)])
    order = np.argsort(starts, kind="stable")
    starts, ends, owner = starts[order], ends[order], owner[order]
    clash = np.flatnonzero(ends[:-1] > starts[1:])
    if clash.size == 0:
        return None
    a, b = int(owner[clash[0]]), int(owner[clash[0] + 1])
    return min(a, b), max(a, b)


def _paint(
    runs: Sequence[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]],
    height: int,
    width: int,
) -> npt.NDArray[np.int64]:
    """(H,W) map of 1-based mask index (0 = no mask) from non-overlapping foreground runs."""
    num_pixels = height * width
    if not runs or not any(len(s) for s, _ in runs):
        return np.zeros((height, width), dtype=np.int64)
    starts = np.concatenate([s for s, _ in runs])
    ends = np.concatenate([e for _, e in runs])
    labels = np.concatenate(
        [np.full(len(s), i, dtype=np.int64) for i, (s, _) in enumerate(runs, 1)]
    )
    order = np.argsort(starts, kind="stable")
    starts, ends, labels = starts[order], ends[order], labels[order]
    previous_ends = np.concatenate(([0], ends[:-1]))
    run_lengths = np.empty(2 * len(starts) + 1, dtype=np.int64)
    run_lengths[0:-1:2] = starts - previous_ends
    run_lengths[1::2] = ends - starts
    run_lengths[-1] = num_pixels - int(ends[-1])
    run_labels = np.zeros(2 * len(starts) + 1, dtype=np.int64)
    run_labels[1::2] = labels
    flat = np.repeat(run_labels, run_lengths)
    return np.ascontiguousarray(flat.reshape(width, height).T)


# --- text files ---------------------------------------------------------------------------------


def _parse_int(text: str) -> int:
    """A non-negative decimal integer written with ASCII digits only, else ``ValueError``."""
    if not (text.isascii() and text.isdigit()):
        raise ValueError(text)
    return int(text)


def read_mots_txt(path: str | Path) -> dict[int, list[MotsObject]]:
    """Read and validate a MOTS text file into ``time -> objects`` (times ascending, file order).

    Checks, each failure an :class:`InputError` naming ``file:line``: six space-separated fields,
    non-negative integers, a well-formed RLE covering ``height*width`` pixels, object ids unique
    within a frame, one image size per frame and masks that do not overlap. Blank lines are skipped.
    """
    if Path(path).exists() and not Path(path).is_file():
        # Checked without opening: reading a FIFO would block for ever.
        raise InputError(path, "is not a regular file (a FIFO, directory or device)")
    try:
        text = Path(path).read_bytes().decode("ascii")
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except UnicodeDecodeError as exc:
        raise InputError(path, f"not an ASCII text file (byte {exc.start})") from None
    except OSError as exc:
        raise InputError(path, f"cannot read file ({exc.strerror or exc})") from None
    by_time: dict[int, list[MotsObject]] = {}
    lines_by_time: dict[int, list[int]] = {}
    ids_by_time: dict[int, set[int]] = {}
    runs_by_time: dict[int, list[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]]] = {}
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{line_number}"
        fields = line.split()
        if len(fields) != 6:
            raise InputError(where, f"expected 6 fields, got {len(fields)}")
        try:
            time, obj_id, class_id, height, width = (_parse_int(f) for f in fields[:5])
        except ValueError as exc:
            raise InputError(where, f"expected a non-negative integer, got '{exc}'") from None
        if height == 0 or width == 0 or height * width > _MAX_PIXELS:
            raise InputError(where, f"invalid image size {height}x{width}")
        obj = MotsObject(time, obj_id, class_id, height, width, fields[5])
        frame_objects = by_time.setdefault(time, [])
        if frame_objects:
            first = frame_objects[0]
            if (first.height, first.width) != (height, width):
                raise InputError(
                    where,
                    f"image size {height}x{width} differs from {first.height}x{first.width} "
                    f"of earlier objects at time {time}",
                )
        ids = ids_by_time.setdefault(time, set())
        if obj_id in ids:
            raise InputError(where, f"object id {obj_id} appears twice at time {time}")
        try:
            counts = rle_counts(obj.rle, height * width)
        except ValueError as exc:
            raise InputError(where, f"invalid RLE: {exc}") from None
        frame_objects.append(obj)
        ids.add(obj_id)
        lines_by_time.setdefault(time, []).append(line_number)
        runs_by_time.setdefault(time, []).append(_foreground_runs(counts))
    for time, runs in runs_by_time.items():
        overlap = _first_overlap(runs)
        if overlap is not None:
            i, j = overlap
            a, b = by_time[time][i], by_time[time][j]
            raise InputError(
                f"{path}:{lines_by_time[time][j]}",
                f"mask of object {b.obj_id} overlaps object {a.obj_id} at time {time}",
            )
    return _keep_tracks_apart({time: by_time[time] for time in sorted(by_time)})


def _keep_tracks_apart(by_time: dict[int, list[MotsObject]]) -> dict[int, list[MotsObject]]:
    """Number a class's tracks densely when ``obj_id % 1000 + 1`` would merge two of them.

    Classes whose object ids stay distinct modulo 1000 keep the documented convention (and so the
    same ids as the PNG encoding); the ignore class carries no track.
    """
    ids_of_class: dict[int, set[int]] = {}
    for objects in by_time.values():
        for obj in objects:
            if obj.class_id != MOTS_IGNORE_CLASS:
                ids_of_class.setdefault(obj.class_id, set()).add(obj.obj_id)
    renumber: dict[tuple[int, int], int] = {}
    for class_id, ids in ids_of_class.items():
        if len({obj_id % MOTS_CLASS_DIVISOR for obj_id in ids}) < len(ids):
            renumber |= {(class_id, obj_id): n for n, obj_id in enumerate(sorted(ids), start=1)}
    if not renumber:
        return by_time
    return {
        time: [
            replace(obj, track=renumber.get((obj.class_id, obj.obj_id), obj.track))
            for obj in objects
        ]
        for time, objects in by_time.items()
    }


def mots_objects_to_frame(
    objects: Iterable[MotsObject], height: int, width: int, *, source: str = "<memory>"
) -> PanopticFrame:
    """Paint one frame's objects: semantic = class_id, instance = obj_id % 1000 + 1 (or track).

    Background is (0, 0) and an ignore region (class 10) is (10, 0). :class:`InputError` naming
    ``source`` if an object has another image size, a bad RLE, class 0, a duplicate object id, a
    mask overlapping another, or shares class and ``obj_id % 1000`` with another object.
    """
    objects = list(objects)
    semantic_of = np.zeros(len(objects) + 1, dtype=np.int32)
    instance_of = np.zeros(len(objects) + 1, dtype=np.int32)
    runs = []
    seen_ids: set[int] = set()
    seen_instances: dict[tuple[int, int], int] = {}
    for index, obj in enumerate(objects, start=1):
        label = f"object {obj.obj_id} at time {obj.time}"
        if (obj.height, obj.width) != (height, width):
            raise InputError(
                source, f"{label} has size {obj.height}x{obj.width}, expected {height}x{width}"
            )
        if obj.obj_id in seen_ids:
            raise InputError(source, f"{label} appears twice")
        seen_ids.add(obj.obj_id)
        if obj.class_id == 0:
            raise InputError(source, f"{label} has class 0, which is background")
        try:
            runs.append(_foreground_runs(rle_counts(obj.rle, height * width)))
        except ValueError as exc:
            raise InputError(source, f"{label} has an invalid RLE: {exc}") from None
        semantic_of[index] = obj.class_id
        if obj.class_id != MOTS_IGNORE_CLASS:
            instance = (
                obj.track
                if obj.track is not None
                else obj.obj_id % MOTS_CLASS_DIVISOR + MOTS_INSTANCE_OFFSET
            )
            other = seen_instances.setdefault((obj.class_id, instance), obj.obj_id)
            if other != obj.obj_id:
                raise InputError(
                    source,
                    f"{label} and object {other} (class {obj.class_id}) both map to "
                    f"instance {instance} (obj_id % 1000 + 1)",
                )
            instance_of[index] = instance
    overlap = _first_overlap(runs)
    if overlap is not None:
        a, b = objects[overlap[0]], objects[overlap[1]]
        raise InputError(source, f"masks of objects {a.obj_id} and {b.obj_id} overlap")
    index_map = _paint(runs, height, width)
    return PanopticFrame(semantic_of[index_map], instance_of[index_map])


def _mots_values(frame: PanopticFrame, max_value: int | None) -> npt.NDArray[np.int64]:
    """Per-pixel MOTS object ids of a frame (0 background, 10000 ignore); ``ValueError`` if none.

    The inverse of the decoding: class ``c`` with instance ``i >= 1`` gives ``c*1000 + i - 1``.
    """
    semantic = frame.semantic.astype(np.int64)
    instance = frame.instance.astype(np.int64)
    checks = [
        (semantic < 0, "negative class"),
        (instance < 0, "negative instance"),
        ((semantic == 0) & (instance != 0), "class 0 (background) with an instance id"),
        (
            (semantic == MOTS_IGNORE_CLASS) & (instance != 0),
            "class 10 (ignore region) with an instance id",
        ),
        (
            (semantic != 0) & (semantic != MOTS_IGNORE_CLASS) & (instance == 0),
            "an object class without instance id (MOTS has no crowd regions)",
        ),
        (instance > MAX_MOTS_INSTANCE, f"instance id above {MAX_MOTS_INSTANCE}"),
    ]
    for bad, problem in checks:
        if np.any(bad):
            y, x = (int(v) for v in np.argwhere(bad)[0])
            raise ValueError(
                f"pixel (row {y}, col {x}) has {problem}: "
                f"class {semantic[y, x]}, instance {instance[y, x]}"
            )
    values = semantic * MOTS_CLASS_DIVISOR + instance - MOTS_INSTANCE_OFFSET
    values[semantic == 0] = 0
    values[semantic == MOTS_IGNORE_CLASS] = MOTS_IGNORE_ID
    if max_value is not None and values.size and int(values.max()) > max_value:
        y, x = (int(v) for v in np.argwhere(values > max_value)[0])
        raise ValueError(
            f"class {semantic[y, x]}, instance {instance[y, x]} gives MOTS id "
            f"{values[y, x]} > {max_value}"
        )
    return values


def frame_to_mots_objects(frame: PanopticFrame, time: int) -> list[MotsObject]:
    """Split a frame into MOTS objects sorted by obj_id (inverse of :func:`mots_objects_to_frame`).

    One object per (class, instance >= 1) with ``obj_id = class*1000 + instance - 1``; all class-10
    pixels form one object 10000. ``ValueError`` if the frame has no MOTS encoding.
    """
    values = _mots_values(frame, max_value=None)
    height, width = frame.shape
    object_ids = np.unique(values)
    objects = []
    for obj_id in object_ids[object_ids != 0].tolist():
        mask = np.asfortranarray(values == obj_id, dtype=np.uint8)
        rle = mask_utils.encode(mask)["counts"].decode("ascii")
        class_id = MOTS_IGNORE_CLASS if obj_id == MOTS_IGNORE_ID else obj_id // MOTS_CLASS_DIVISOR
        objects.append(MotsObject(time, int(obj_id), int(class_id), height, width, rle))
    return objects


def write_mots_txt(path: str | Path, frames: Mapping[int, PanopticFrame]) -> None:
    """Write frames as a MOTS text file, atomically, lines sorted by time then object id."""
    lines: list[str] = []
    for time in sorted(frames):
        if time < 0:
            raise InputError(path, f"negative time {time}")
        try:
            objects = frame_to_mots_objects(frames[time], time)
        except ValueError as exc:
            raise InputError(path, f"time {time}: {exc}") from None
        lines.extend(
            f"{o.time} {o.obj_id} {o.class_id} {o.height} {o.width} {o.rle}\n" for o in objects
        )
    atomic_write_text(path, "".join(lines))


# --- PNG ----------------------------------------------------------------------------------------


def read_mots_png(path: str | Path) -> PanopticFrame:
    """Read a 16-bit MOTS PNG: v -> class v // 1000, instance v % 1000 + 1; 0 and 10000 special.

    0 is background (0, 0); any value of class 10 (10000..10999) is the ignore region (10, 0).
    Values 1..999 (class 0) raise :class:`InputError`, as does anything but a 16-bit gray PNG.
    """
    array = read_png(path)
    if array.ndim != 2 or array.dtype != np.uint16:
        raise InputError(
            path, f"expected a 16-bit grayscale MOTS PNG, got {describe_png_array(array)}"
        )
    values = array.astype(np.int32)
    semantic = values // MOTS_CLASS_DIVISOR
    instance = values % MOTS_CLASS_DIVISOR + MOTS_INSTANCE_OFFSET
    class_zero = (semantic == 0) & (values != 0)
    if np.any(class_zero):
        bad = int(values[class_zero][0])
        raise InputError(path, f"value {bad} encodes class 0, which is reserved for background")
    instance[(values == 0) | (semantic == MOTS_IGNORE_CLASS)] = 0
    return PanopticFrame(semantic, instance)


def write_mots_png(path: str | Path, frame: PanopticFrame) -> None:
    """Write a frame as a 16-bit MOTS PNG, atomically (inverse of :func:`read_mots_png`)."""
    try:
        values = _mots_values(frame, max_value=_MAX_PNG_VALUE)
    except ValueError as exc:
        raise InputError(path, str(exc)) from None
    write_png(path, values.astype(np.uint16))
