"""Helpers the dataset loaders share: root checks, numeric frame order, class lookup tables.

Kept apart from :mod:`vpsbench.datasets.base` (the abstract interface) so that the loaders reuse one
vectorised implementation of class mapping and one wording of the "dataset not found" message.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError

from vpsbench.config import GENERATED_DATASETS
from vpsbench.datasets.base import IGNORE_LABEL, DatasetNotFoundError, Problem
from vpsbench.errors import InputError, VpsbenchError
from vpsbench.video import LabelMap, PanopticFrame

#: Marks a native id that is not part of a dataset's class set in a lookup table.
INVALID_ID = -1


def require_root(root: Path, dataset: str, layout: str) -> Path:
    """Return the dataset root if it exists, else say where it was looked for and how to set it."""
    if not root.is_dir():
        if dataset in GENERATED_DATASETS:
            raise DatasetNotFoundError(
                f"{dataset}: no dataset at {root}; generate it there with `vpsbench datasets "
                f"prepare {dataset}` (or run `vpsbench demo`), or pass --root"
            )
        raise DatasetNotFoundError(
            f"{dataset}: no dataset root at {root} (expected layout: {layout}); pass --root, "
            f"or set it under [datasets] in the config file, or put it at $VPSBENCH_DATA/{dataset}"
        )
    return root


def require_directory(path: Path, dataset: str, layout: str) -> Path:
    """Return ``path`` if it is a directory, else say which path and layout were expected."""
    if not path.is_dir():
        raise DatasetNotFoundError(f"{dataset}: expected the directory {path} (layout: {layout})")
    return path


def require_file(path: Path, dataset: str, layout: str) -> Path:
    """Return ``path`` if it is a file, else say which path and layout were expected."""
    if not path.is_file():
        raise DatasetNotFoundError(f"{dataset}: expected the file {path} (layout: {layout})")
    return path


def check_split(dataset: str, split: str, splits: Iterable[str]) -> None:
    """Reject a split name the dataset does not have, listing the ones it has."""
    known = tuple(splits)
    if split not in known:
        raise VpsbenchError(
            f"dataset {dataset!r} has no split {split!r} (splits: {', '.join(known)})"
        )


def numbered_files(directory: Path, pattern: re.Pattern[str]) -> tuple[dict[int, Path], list[Path]]:
    """Files whose name matches ``pattern`` (group 1 = frame number) and all the others.

    Returns ``{number: path}`` and the sorted list of files that do not match, so that loaders list
    frames in numeric order (``10`` after ``9``) and ``verify`` can report the strays.
    """
    numbered: dict[int, Path] = {}
    others: list[Path] = []
    for path in sorted(directory.iterdir()):
        match = pattern.fullmatch(path.name)
        if match and path.is_file():
            numbered[int(match.group(1))] = path
        else:
            others.append(path)
    return dict(sorted(numbered.items())), others


def file_kind(path: Path) -> str:
    """What a path is, for messages: ``a FIFO``, ``a directory`` … (stat only, never opened)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return "missing or unreadable"
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    )
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def require_regular_file(path: Path) -> Path:
    """Return ``path`` if it is a regular file (links followed); never opens it, so never blocks.

    Ground truth must be read from regular files: a FIFO would block the reader forever and a
    directory named like a frame would silently drop that frame.
    """
    if not path.is_file():
        if not path.exists() and not path.is_symlink():
            raise InputError(path, "file not found")
        raise InputError(path, f"is {file_kind(path)}, expected a regular file")
    return path


def sequence_frames(
    directory: Path, pattern: re.Pattern[str], first: int | None = None
) -> dict[int, Path]:
    """The frame files of a sequence folder, checked so that no frame is silently left out.

    Every entry whose name matches ``pattern`` must be a regular file (a FIFO or a folder named
    like a frame is an error, found without opening it), the folder must hold at least one frame,
    and when ``first`` is given the frames must be numbered ``first, first+1, …`` without a gap
    (datasets whose every frame is annotated). Returns ``{number: path}`` in numeric order.
    """
    for path in sorted(directory.iterdir()):
        if pattern.fullmatch(path.name) and not path.is_file():
            require_regular_file(path)
    numbered, _ = numbered_files(directory, pattern)
    if not numbered:
        raise InputError(directory, "sequence folder holds no frame files")
    if first is not None:
        expected = range(first, first + len(numbered))
        gap = next((n for n in expected if n not in numbered), None)
        if gap is not None:
            last = max(numbered)
            raise InputError(
                directory,
                f"frame {gap} is missing (frames are numbered from {first}; the last is {last})",
            )
    return numbered


def subdirectories(directory: Path) -> list[Path]:
    """The sub-directories of ``directory``, sorted by name."""
    return sorted(path for path in directory.iterdir() if path.is_dir())


def lookup_table(mapping: Mapping[int, int], size: int) -> npt.NDArray[np.int32]:
    """A dense native → target table of ``size`` entries; ids not in ``mapping`` are invalid."""
    table = np.full(size, INVALID_ID, dtype=np.int32)
    for native_id, target_id in mapping.items():
        table[native_id] = target_id
    return table


def invalid_ids(values: LabelMap, table: npt.NDArray[np.int32]) -> list[int]:
    """The distinct values of ``values`` that ``table`` does not map (out of range or invalid)."""
    in_range = (values >= 0) & (values < table.size)
    bad = ~in_range
    bad[in_range] = table[values[in_range]] == INVALID_ID
    return [int(value) for value in np.unique(values[bad])]


def map_classes(values: LabelMap, table: npt.NDArray[np.int32], path: Path) -> LabelMap:
    """Map native class ids through ``table``; ids outside the native set are an InputError.

    The fast path is one range check and one table lookup; the slow listing of the offending
    ids only runs when something is wrong.
    """
    in_range = values.size == 0 or (int(values.min()) >= 0 and int(values.max()) < table.size)
    mapped = np.take(table, values) if in_range else None
    if mapped is None or (mapped == INVALID_ID).any():
        bad = invalid_ids(values, table)
        raise InputError(path, f"class ids {format_ids(bad)} are not in the native class set")
    return mapped


def format_ids(ids: list[int], limit: int = 8) -> str:
    """A short list of ids for a one-line message (``1, 2, 3 … (12 in all)``)."""
    shown = ", ".join(str(value) for value in ids[:limit])
    return shown if len(ids) <= limit else f"{shown} … ({len(ids)} in all)"


def evaluation_frame(
    semantic: LabelMap, instance: LabelMap, thing_classes: frozenset[int]
) -> PanopticFrame:
    """Assemble a frame in the evaluation space: only thing pixels keep their instance id.

    Ignore pixels and stuff pixels get instance 0, so a thing pixel with instance 0 is crowd.
    """
    is_thing = np.zeros(max(int(semantic.max(initial=0)) + 1, 256), dtype=bool)
    is_thing[list(thing_classes)] = True
    things = np.take(is_thing, np.maximum(semantic, 0))
    return PanopticFrame.from_arrays(semantic, np.where(things, instance, 0))


def native_to_evaluation_frame(
    native: PanopticFrame,
    table: npt.NDArray[np.int32],
    thing_classes: frozenset[int],
    path: Path,
) -> PanopticFrame:
    """:func:`map_classes` then :func:`evaluation_frame`, with the same result and errors.

    Both are lookups by class, so they are done once per raster run of the class map (tens of
    thousands of runs in a 2-megapixel frame, not millions of pixels); the per-pixel work is one
    comparison, one expansion of the runs and one multiplication. An identity mapping returns
    the class map itself.
    """
    semantic = native.semantic
    values = semantic.reshape(-1)
    if values.size == 0:
        return evaluation_frame(map_classes(semantic, table, path), native.instance, thing_classes)
    change = np.empty(values.size, dtype=bool)
    change[0] = True
    np.not_equal(values[1:], values[:-1], out=change[1:])
    starts = np.flatnonzero(change)
    lengths = np.diff(starts, append=values.size)
    run_values = values[starts]
    in_range = (run_values >= 0) & (run_values < table.size)
    mapped = np.full(run_values.shape, INVALID_ID, dtype=np.int32)
    mapped[in_range] = table[run_values[in_range]]
    if (mapped == INVALID_ID).any():
        bad = invalid_ids(run_values, table)
        raise InputError(path, f"class ids {format_ids(bad)} are not in the native class set")
    if np.array_equal(mapped, run_values):
        classes = np.asarray(semantic, dtype=np.int32)
    else:
        classes = np.repeat(mapped, lengths).reshape(semantic.shape)
    is_thing = np.zeros(max(int(mapped.max()) + 1, 256), dtype=bool)
    is_thing[list(thing_classes)] = True
    keep = np.repeat(is_thing[np.maximum(mapped, 0)], lengths).reshape(semantic.shape)
    return PanopticFrame.from_arrays(classes, np.multiply(native.instance, keep, dtype=np.int32))


def ignore_small_instances(frame: PanopticFrame, min_area: int) -> PanopticFrame:
    """Set thing instances with fewer than ``min_area`` pixels in this frame to ignore (255)."""
    if min_area <= 0:
        return frame
    semantic, instance = frame.semantic, frame.instance
    tracked = instance > 0
    keys = semantic[tracked].astype(np.int64) * (1 << 32) + instance[tracked]
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    too_small = np.zeros(semantic.shape, dtype=bool)
    too_small[tracked] = counts[inverse] < min_area
    return PanopticFrame.from_arrays(
        np.where(too_small, IGNORE_LABEL, semantic), np.where(too_small, 0, instance)
    )


def image_size(path: Path, check_data: bool = False) -> tuple[int, int]:
    """Height and width of an image from its header; ``check_data`` also checks its checksums."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            if check_data:
                image.verify()
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as error:
        raise InputError(path, f"cannot read the image: {error}") from None
    return int(height), int(width)


def problem(error: InputError) -> Problem:
    """The verify entry of a file error."""
    return Problem(error.path, error.problem)


def size_text(shape: tuple[int, int]) -> str:
    """``WIDTHxHEIGHT`` for messages (as datasets quote resolutions)."""
    height, width = shape
    return f"{width}x{height}"


def check_image(path: Path, label_shape: tuple[int, int]) -> list[Problem]:
    """The image exists, decodes and has the size of its label."""
    try:
        shape = image_size(path, check_data=True)
    except InputError as error:
        return [problem(error)]
    if shape != label_shape:
        message = f"image size {size_text(shape)} differs from its label {size_text(label_shape)}"
        return [Problem(str(path), message)]
    return []


def check_size(path: Path, shape: tuple[int, int], expected: tuple[int, int]) -> list[Problem]:
    """A label has the dataset's resolution."""
    if shape != expected:
        return [Problem(str(path), f"size {size_text(shape)}, expected {size_text(expected)}")]
    return []
