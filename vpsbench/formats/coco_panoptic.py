"""COCO / VPSNet (Cityscapes-VPS) panoptic format: RGB PNG of segment ids plus a JSON file.

A pixel's segment id is ``R + 256*G + 65536*B``; id 0 is VOID. The JSON lists, per image, the
segments present in its PNG (``segments_info``: id, category_id, iscrowd, area). VPSNet keeps a
thing's segment id constant over the frames of a video, so for things the segment id is the track
id; :func:`decode_coco_panoptic` therefore uses it directly as the instance id.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from vpsbench.errors import InputError
from vpsbench.formats.atomic import atomic_write_text
from vpsbench.formats.png import describe_png_array, read_png, write_png
from vpsbench.video import PanopticFrame

VOID_ID = 0
ID_LIMIT = 2**24
MAX_CATEGORY = 511
THING_ID_LIMIT = ID_LIMIT - 1025
_STUFF_BASE = ID_LIMIT - 1
_CROWD_BASE = ID_LIMIT - 513


@dataclass(frozen=True)
class SegmentInfo:
    """One entry of a COCO panoptic ``segments_info`` list."""

    id: int
    category_id: int
    iscrowd: int = 0
    area: int = 0


@dataclass
class PanopticAnnotation:
    """The annotation of one image: its PNG name, image id and the segments in that PNG."""

    file_name: str
    image_id: str
    segments: list[SegmentInfo] = field(default_factory=list)


@dataclass
class PanopticJson:
    """A COCO panoptic JSON file: ``images`` and ``categories`` are kept as the raw dicts."""

    images: list[dict[str, Any]] = field(default_factory=list)
    annotations: list[PanopticAnnotation] = field(default_factory=list)
    categories: list[dict[str, Any]] = field(default_factory=list)


def rgb_to_id(rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.int32]:
    """Segment ids ``R + 256*G + 65536*B`` of a uint8 (H,W,3) panoptic image."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"panoptic image must be uint8 (H,W,3), got {rgb.dtype} {rgb.shape}")
    channels = rgb.astype(np.int32)
    ids = channels[:, :, 0] + 256 * channels[:, :, 1] + 65536 * channels[:, :, 2]
    return np.ascontiguousarray(ids, dtype=np.int32)


def id_to_rgb(ids: npt.NDArray[np.integer]) -> npt.NDArray[np.uint8]:
    """The uint8 (H,W,3) image of segment ids in ``[0, 2**24)``; inverse of :func:`rgb_to_id`."""
    if ids.ndim != 2 or ids.dtype.kind not in "iu":
        raise ValueError(f"segment ids must be a 2-D integer array, got {ids.dtype} {ids.shape}")
    if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= ID_LIMIT):
        raise ValueError(f"segment ids must lie in [0, {ID_LIMIT}), got {ids.min()}..{ids.max()}")
    values = ids.astype(np.int64)
    rgb = np.stack([values % 256, (values // 256) % 256, values // 65536], axis=-1)
    return rgb.astype(np.uint8)


def decode_coco_panoptic(
    ids: npt.NDArray[np.integer],
    segments: Sequence[SegmentInfo],
    thing_categories: Collection[int],
    *,
    void_label: int = 255,
    source: str = "<memory>",
) -> PanopticFrame:
    """Turn a segment-id map and its ``segments_info`` into a frame.

    semantic = the segment's category_id (``void_label`` on id 0). instance = the segment id for a
    non-crowd segment of a thing category, else 0. Like VPSNet's evaluation, which fails with a
    KeyError, a non-zero id in the map that is not listed, or a listed segment absent from the map,
    is an error (:class:`InputError` naming ``source``).
    """
    if ids.ndim != 2 or ids.dtype.kind not in "iu":
        raise ValueError(f"segment ids must be a 2-D integer array, got {ids.dtype} {ids.shape}")
    things = frozenset(int(c) for c in thing_categories)
    listed: dict[int, SegmentInfo] = {}
    for segment in segments:
        segment_id = int(segment.id)
        if segment_id == VOID_ID:
            raise InputError(source, "segments_info lists segment id 0, which is reserved for VOID")
        if segment_id in listed:
            raise InputError(source, f"segments_info lists segment id {segment_id} twice")
        listed[segment_id] = segment
    unique_ids, inverse = np.unique(ids, return_inverse=True)
    if unique_ids.size and (int(unique_ids[0]) < 0 or int(unique_ids[-1]) >= ID_LIMIT):
        raise InputError(source, f"segment ids must lie in [0, {ID_LIMIT})")
    present = unique_ids[unique_ids != VOID_ID].astype(np.int64)
    listed_ids = np.array(sorted(listed), dtype=np.int64)
    unlisted = np.setdiff1d(present, listed_ids).tolist()
    if unlisted:
        raise InputError(
            source, f"segment id(s) {_preview(unlisted)} in the PNG are not in segments_info"
        )
    absent = np.setdiff1d(listed_ids, present).tolist()
    if absent:
        raise InputError(
            source, f"segment id(s) {_preview(absent)} in segments_info do not occur in the PNG"
        )
    semantic_of = np.full(len(unique_ids), void_label, dtype=np.int32)
    instance_of = np.zeros(len(unique_ids), dtype=np.int32)
    for index, segment_id in enumerate(unique_ids.tolist()):
        if segment_id == VOID_ID:
            continue
        segment = listed[segment_id]
        semantic_of[index] = segment.category_id
        if segment.category_id in things and not segment.iscrowd:
            instance_of[index] = segment_id
    inverse = inverse.reshape(ids.shape)
    return PanopticFrame(semantic_of[inverse], instance_of[inverse])


def _preview(values: Sequence[int], limit: int = 5) -> str:
    """Comma-separated list of the first ``limit`` values, with the count of the rest."""
    shown = ", ".join(str(v) for v in values[:limit])
    return shown if len(values) <= limit else f"{shown} (+{len(values) - limit} more)"


def encode_coco_panoptic(
    frame: PanopticFrame, thing_categories: Collection[int], *, void_label: int = 255
) -> tuple[npt.NDArray[np.uint8], list[SegmentInfo]]:
    """Encode a frame as a panoptic RGB image and its ``segments_info``, deterministically.

    The id scheme, chosen so that :func:`decode_coco_panoptic` with the same ``thing_categories``
    and ``void_label`` gives the frame back exactly:

    * ``void_label`` pixels → id 0 (VOID), whatever their instance;
    * a thing class with instance ``i > 0`` → id ``i`` (``1 <= i < 2**24 - 1025``), iscrowd 0;
    * a thing class with instance 0 (crowd) of class ``c`` → id ``2**24 - 513 - c``, iscrowd 1;
    * a stuff class ``c`` (instance must be 0) → id ``2**24 - 1 - c``, iscrowd 0.

    Classes must lie in ``[0, 511]``. ``area`` holds pixel counts; segments are sorted by id.
    ``ValueError`` if the frame cannot be encoded (class or instance out of range, a stuff pixel
    with an instance, or one instance id used by two classes).
    """
    semantic, instance = frame.semantic, frame.instance
    void = semantic == void_label
    valid = ~void
    if np.any(valid & ((semantic < 0) | (semantic > MAX_CATEGORY))):
        bad = semantic[valid & ((semantic < 0) | (semantic > MAX_CATEGORY))][0]
        raise ValueError(f"class {bad} cannot be encoded (classes must lie in [0, {MAX_CATEGORY}])")
    if np.any(valid & (instance < 0)):
        raise ValueError(f"negative instance id {instance[valid & (instance < 0)][0]}")
    things = np.fromiter((int(c) for c in thing_categories), dtype=np.int64)
    is_thing = valid & np.isin(semantic, things)
    is_stuff = valid & ~is_thing
    if np.any(is_stuff & (instance != 0)):
        cls = semantic[is_stuff & (instance != 0)][0]
        raise ValueError(f"stuff class {cls} carries instance ids; stuff must have instance 0")
    tracked = is_thing & (instance > 0)
    crowd = is_thing & (instance == 0)
    if np.any(tracked) and int(instance[tracked].max()) >= THING_ID_LIMIT:
        raise ValueError(
            f"instance id {int(instance[tracked].max())} does not fit a segment id "
            f"(must be < {THING_ID_LIMIT})"
        )
    ids = np.zeros(semantic.shape, dtype=np.int64)
    ids[tracked] = instance[tracked]
    ids[crowd] = _CROWD_BASE - semantic[crowd].astype(np.int64)
    ids[is_stuff] = _STUFF_BASE - semantic[is_stuff].astype(np.int64)
    flat_ids, flat_semantic = ids[valid], semantic[valid]
    unique_ids, first, inverse, counts = np.unique(
        flat_ids, return_index=True, return_inverse=True, return_counts=True
    )
    categories = flat_semantic[first]
    clash = categories[inverse] != flat_semantic
    if np.any(clash):
        segment_id = int(flat_ids[clash][0])
        classes = sorted({int(c) for c in flat_semantic[flat_ids == segment_id]})
        raise ValueError(f"instance id {segment_id} is used by several classes {classes}")
    segments = [
        SegmentInfo(
            id=int(segment_id),
            category_id=int(category),
            iscrowd=int(_CROWD_BASE - MAX_CATEGORY <= segment_id <= _CROWD_BASE),
            area=int(count),
        )
        for segment_id, category, count in zip(
            unique_ids.tolist(), categories.tolist(), counts.tolist(), strict=True
        )
    ]
    return id_to_rgb(ids), segments


def read_coco_panoptic_png(
    path: str | Path,
    segments: Sequence[SegmentInfo],
    thing_categories: Collection[int],
    void_label: int = 255,
) -> PanopticFrame:
    """Read a panoptic RGB PNG and decode it with its ``segments_info`` (see decode)."""
    array = read_png(path)
    if array.ndim != 3 or array.dtype != np.uint8:
        raise InputError(
            path, f"expected an 8-bit RGB panoptic PNG, got {describe_png_array(array)}"
        )
    ids = rgb_to_id(array.astype(np.uint8))
    return decode_coco_panoptic(
        ids, segments, thing_categories, void_label=void_label, source=str(path)
    )


def write_coco_panoptic_png(
    path: str | Path,
    frame: PanopticFrame,
    thing_categories: Collection[int],
    void_label: int = 255,
) -> list[SegmentInfo]:
    """Write a frame as a panoptic RGB PNG (atomically) and return its ``segments_info``."""
    try:
        rgb, segments = encode_coco_panoptic(frame, thing_categories, void_label=void_label)
    except ValueError as exc:
        raise InputError(path, str(exc)) from None
    write_png(path, rgb)
    return segments


# --- JSON -------------------------------------------------------------------------------------


class _JsonReader:
    """Typed access to a parsed JSON document that reports problems as one-line InputErrors."""

    def __init__(self, path: str | Path) -> None:
        self.path = path

    def fail(self, where: str, problem: str) -> InputError:
        """An :class:`InputError` naming the file and the JSON location."""
        return InputError(self.path, f"{where}: {problem}" if where else problem)

    def get(self, obj: dict[str, Any], key: str, where: str) -> Any:
        """``obj[key]``, or an error naming the missing key."""
        if key not in obj:
            raise self.fail(where, f"missing key '{key}'")
        return obj[key]

    def dict_(self, value: Any, where: str) -> dict[str, Any]:
        """``value`` if it is a JSON object."""
        if not isinstance(value, dict):
            raise self.fail(where, f"expected an object, got {type(value).__name__}")
        return value

    def list_(self, value: Any, where: str) -> list[Any]:
        """``value`` if it is a JSON array."""
        if not isinstance(value, list):
            raise self.fail(where, f"expected a list, got {type(value).__name__}")
        return value

    def int_(self, value: Any, where: str) -> int:
        """``value`` if it is an integer (an integral float such as ``12.0`` is accepted)."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(where, f"expected an integer, got {json.dumps(value)}")
        if isinstance(value, float):
            if not value.is_integer():
                raise self.fail(where, f"expected an integer, got {value}")
            return int(value)
        return value

    def str_(self, value: Any, where: str) -> str:
        """``value`` if it is a string."""
        if not isinstance(value, str):
            raise self.fail(where, f"expected a string, got {json.dumps(value)}")
        return value


def _parse_segment(reader: _JsonReader, value: Any, where: str) -> SegmentInfo:
    """One ``segments_info`` entry; ``iscrowd`` and ``area`` default to 0 when absent."""
    obj = reader.dict_(value, where)
    segment_id = reader.int_(reader.get(obj, "id", where), f"{where}.id")
    category_id = reader.int_(reader.get(obj, "category_id", where), f"{where}.category_id")
    iscrowd = reader.int_(obj.get("iscrowd", 0), f"{where}.iscrowd")
    if iscrowd not in (0, 1):
        raise reader.fail(f"{where}.iscrowd", f"expected 0 or 1, got {iscrowd}")
    area = reader.int_(obj.get("area", 0), f"{where}.area")
    return SegmentInfo(id=segment_id, category_id=category_id, iscrowd=iscrowd, area=area)


def _parse_annotation(reader: _JsonReader, value: Any, where: str) -> PanopticAnnotation:
    """One annotation; ``file_name``/``image_id`` default to "" (VPSNet's pred.json has neither)."""
    obj = reader.dict_(value, where)
    file_name = reader.str_(obj.get("file_name", ""), f"{where}.file_name")
    raw_image_id = obj.get("image_id", "")
    if isinstance(raw_image_id, int) and not isinstance(raw_image_id, bool):
        raw_image_id = str(raw_image_id)
    image_id = reader.str_(raw_image_id, f"{where}.image_id")
    raw_segments = reader.list_(reader.get(obj, "segments_info", where), f"{where}.segments_info")
    segments = [
        _parse_segment(reader, item, f"{where}.segments_info[{i}]")
        for i, item in enumerate(raw_segments)
    ]
    seen: set[int] = set()
    for i, segment in enumerate(segments):
        if segment.id in seen:
            raise reader.fail(f"{where}.segments_info[{i}]", f"duplicate segment id {segment.id}")
        seen.add(segment.id)
    return PanopticAnnotation(file_name=file_name, image_id=image_id, segments=segments)


def _parse_category(reader: _JsonReader, value: Any, where: str) -> dict[str, Any]:
    """One category object; it must carry ``id`` (int), ``name`` (str) and ``isthing`` (0/1)."""
    obj = reader.dict_(value, where)
    reader.int_(reader.get(obj, "id", where), f"{where}.id")
    reader.str_(reader.get(obj, "name", where), f"{where}.name")
    isthing = reader.get(obj, "isthing", where)
    if isthing not in (0, 1):
        raise reader.fail(f"{where}.isthing", f"expected 0 or 1, got {json.dumps(isthing)}")
    return obj


def read_panoptic_json(path: str | Path) -> PanopticJson:
    """Read and validate a COCO panoptic JSON (ground truth or a VPSNet ``pred.json``).

    ``annotations`` (each with ``segments_info``) is required; ``images`` and ``categories``
    default to empty lists, and an annotation's ``file_name``/``image_id`` to "" because VPSNet's
    prediction file has none of them. An integer ``image_id`` is returned as its decimal string.
    Any problem raises :class:`InputError` naming the file and the JSON location.
    """
    reader = _JsonReader(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except OSError as exc:
        raise InputError(path, f"cannot read file ({exc.strerror or exc})") from None
    try:
        document = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InputError(
            path, f"invalid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    except (UnicodeDecodeError, RecursionError) as exc:
        raise InputError(path, f"invalid JSON ({type(exc).__name__})") from None
    top = reader.dict_(document, "top level")
    images = [
        reader.dict_(item, f"images[{i}]")
        for i, item in enumerate(reader.list_(top.get("images", []), "images"))
    ]
    annotations = [
        _parse_annotation(reader, item, f"annotations[{i}]")
        for i, item in enumerate(reader.list_(reader.get(top, "annotations", ""), "annotations"))
    ]
    categories = [
        _parse_category(reader, item, f"categories[{i}]")
        for i, item in enumerate(reader.list_(top.get("categories", []), "categories"))
    ]
    return PanopticJson(images=images, annotations=annotations, categories=categories)


def panoptic_json_to_dict(panoptic_json: PanopticJson) -> dict[str, Any]:
    """The JSON-ready dict of a :class:`PanopticJson` (keys images, annotations, categories)."""
    return {
        "images": panoptic_json.images,
        "annotations": [
            {
                "image_id": annotation.image_id,
                "file_name": annotation.file_name,
                "segments_info": [
                    {
                        "id": int(segment.id),
                        "category_id": int(segment.category_id),
                        "iscrowd": int(segment.iscrowd),
                        "area": int(segment.area),
                    }
                    for segment in annotation.segments
                ],
            }
            for annotation in panoptic_json.annotations
        ],
        "categories": panoptic_json.categories,
    }


def write_panoptic_json(path: str | Path, panoptic_json: PanopticJson) -> None:
    """Write a COCO panoptic JSON file atomically (compact, key order as read, trailing newline)."""
    try:
        text = json.dumps(panoptic_json_to_dict(panoptic_json), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InputError(path, f"cannot serialise panoptic JSON ({exc})") from None
    atomic_write_text(path, text + "\n")
