"""Waymo Open Dataset PVPS (Mei et al., ECCV 2022), FRONT camera, as CUPS extracts it.

On-disk layout (the output of CUPS's ``preprocess_waymo.py``, ``shared/spec/datasets.md`` §3.4)::

    <root>/validation/<context>/{i}_semantic.png   uint16 Waymo semantic type 0..28
    <root>/validation/<context>/{i}_instance.png   uint16 global instance id (0 = none)
    <root>/validation/<context>/{i}_image.png      RGB FRONT image
    <root>/validation/<context>/{i}_cameras.png    optional uint8 num_cameras_covered
    <root>/validation/<context>/{i}_tracked.png    optional uint8, 0 where an instance is untracked

``<context>`` is the context name (``1024360143612057520_3580_000_3600_000``); CUPS's folder name
``segment-<context>_with_camera_labels`` is accepted too. ``i`` is the frame's index in the
tfrecord, not zero-padded, so frames are sorted numerically (``10`` after ``9``); the frame name
is ``i`` as written, and predictions live at ``<pred_root>/<context folder>/<i>.png``. The
official PVPS validation set is 20 contexts / 1930 frames at 5 Hz; the FRONT camera is
1920x1280. ``vpsbench datasets prepare waymo --from-tfrecords DIR`` writes this layout, with the
``_cameras``/``_tracked`` maps, straight from the published TFRecords without TensorFlow
(:mod:`vpsbench.datasets.waymo_tfrecord`); with ``--cameras all`` it adds the other four cameras
as ``{i}_<camera>_<kind>.png`` (``<camera>`` = ``front_left``, ``front_right``, ``side_left``,
``side_right``), which the ``camera`` protocol option selects. ``--split training`` writes
``<root>/training``, read as the ``training`` split (no official frame list is checked there).

Protocol options:

* ``label_space`` — ``cs19`` (default): CUPS's Waymo → Cityscapes-trainId table (lane and road
  markers → road, other large vehicle → train, trailer and undefined/ego/animals/static → void);
  wall, fence and terrain have no Waymo source and are not evaluated. Riderless bicycle and
  motorcycle become Cityscapes things although Waymo gives them no track (crowd if they carry no
  instance id). ``waymo``: the 29 native types, undefined (0) → ignore, things = car, truck, bus,
  other large vehicle, trailer, pedestrian, cyclist, motorcyclist (official PVPS).
* ``weights`` — ``none`` (default) or ``cameras``: wSTQ pixel weight 1 / num_cameras_covered read
  from ``{i}_cameras.png`` (the official panoramic weighting; a missing map is an error).
* ``untracked`` — ``crowd`` (default, as the official evaluation): pixels of instances that
  ``{i}_tracked.png`` marks untracked get instance 0; ``keep`` keeps their ids. Without a tracked
  map nothing changes.
* ``camera`` — ``front`` (default, as CUPS) or ``front_left``,
  ``front_right``, ``side_left``, ``side_right``: whose ``{i}_<camera>_<kind>.png`` files are read
  (the side cameras are 1920x886).
* ``min_instance_area`` — thing instances with fewer pixels than this in a frame become ignore.
  The paper ignores "extremely small instances" on Waymo but gives no threshold, and none exists in
  CUPS, the Waymo tools or DeepLab2 (UNKNOWN), so the default is ``0`` (keep all).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from vpsbench.datasets.base import (
    IGNORE_LABEL,
    ClassMappingRow,
    Dataset,
    DatasetFacts,
    LabelSpace,
    Problem,
    ProtocolOption,
)
from vpsbench.datasets.cityscapes_labels import CS19_NAMES, cs19_label_space
from vpsbench.datasets.common import (
    check_image,
    check_size,
    check_split,
    evaluation_frame,
    format_ids,
    ignore_small_instances,
    invalid_ids,
    lookup_table,
    map_classes,
    problem,
    require_directory,
    require_regular_file,
    require_root,
    size_text,
    subdirectories,
)
from vpsbench.datasets.registry import register_dataset
from vpsbench.errors import InputError
from vpsbench.formats.divisor_png import read_label_png
from vpsbench.video import FrameRef, LabelMap, PanopticFrame, SequenceRef

#: (height, width) of the FRONT camera.
RESOLUTION = (1280, 1920)
#: (height, width) of each camera, by the ``camera`` protocol option's value.
CAMERA_RESOLUTIONS: dict[str, tuple[int, int]] = {
    "front": RESOLUTION,
    "front_left": RESOLUTION,
    "front_right": RESOLUTION,
    "side_left": (886, 1920),
    "side_right": (886, 1920),
}

#: Waymo camera-segmentation types 0..28 (``camera_segmentation.proto``).
WAYMO_NAMES: tuple[str, ...] = (
    "undefined",
    "ego vehicle",
    "car",
    "truck",
    "bus",
    "other large vehicle",
    "bicycle",
    "motorcycle",
    "trailer",
    "pedestrian",
    "cyclist",
    "motorcyclist",
    "bird",
    "ground animal",
    "construction cone pole",
    "pole",
    "pedestrian object",
    "sign",
    "traffic light",
    "building",
    "road",
    "lane marker",
    "road marker",
    "sidewalk",
    "vegetation",
    "sky",
    "ground",
    "dynamic",
    "static",
)
#: Thing types of the official PVPS evaluation.
WAYMO_THINGS: frozenset[int] = frozenset({2, 3, 4, 5, 8, 9, 10, 11})
#: Types that may carry instance ids: the things plus riderless bicycle and motorcycle.
WAYMO_INSTANCE_TYPES: frozenset[int] = WAYMO_THINGS | {6, 7}

#: CUPS's ``WAYMO_LABEL`` Waymo type → Cityscapes trainId (255 = void).
WAYMO_TO_CS19: dict[int, int] = {
    0: IGNORE_LABEL,
    1: IGNORE_LABEL,
    2: 13,
    3: 14,
    4: 15,
    5: 16,
    6: 18,
    7: 17,
    8: IGNORE_LABEL,
    9: 11,
    10: 12,
    11: 12,
    12: IGNORE_LABEL,
    13: IGNORE_LABEL,
    14: IGNORE_LABEL,
    15: 5,
    16: IGNORE_LABEL,
    17: 7,
    18: 6,
    19: 2,
    20: 0,
    21: 0,
    22: 0,
    23: 1,
    24: 8,
    25: 10,
    26: IGNORE_LABEL,
    27: IGNORE_LABEL,
    28: IGNORE_LABEL,
}
#: trainIds with no Waymo source (wall, fence, terrain): left out of the evaluated classes.
CS19_MISSING_ON_WAYMO: frozenset[int] = frozenset({3, 4, 9})

#: The official PVPS validation contexts and their labelled frame counts (1930 frames).
VALIDATION_CONTEXTS: dict[str, int] = {
    "1024360143612057520_3580_000_3600_000": 99,
    "11048712972908676520_545_000_565_000": 99,
    "12831741023324393102_2673_230_2693_230": 99,
    "13982731384839979987_1680_000_1700_000": 60,
    "14081240615915270380_4399_000_4419_000": 99,
    "17694030326265859208_2340_000_2360_000": 95,
    "18024188333634186656_1566_600_1586_600": 94,
    "2094681306939952000_2972_300_2992_300": 99,
    "4575389405178805994_4900_000_4920_000": 99,
    "4759225533437988401_800_000_820_000": 99,
    "5372281728627437618_2005_000_2025_000": 98,
    "5847910688643719375_180_000_200_000": 99,
    "6680764940003341232_2260_000_2280_000": 99,
    "7119831293178745002_1094_720_1114_720": 99,
    "7932945205197754811_780_000_800_000": 99,
    "8137195482049459160_3100_000_3120_000": 99,
    "8331804655557290264_4351_740_4371_740": 99,
    "8956556778987472864_3404_790_3424_790": 98,
    "9243656068381062947_1297_428_1317_428": 99,
    "933621182106051783_4160_000_4180_000": 99,
}

LAYOUT = (
    "validation/<context>/{i}_semantic.png, {i}_instance.png, {i}_image.png "
    "(+ optional {i}_cameras.png, {i}_tracked.png), i = unpadded frame index; other cameras: "
    "{i}_<camera>_<kind>.png"
)

_FRAME_FILE = re.compile(
    r"(\d+)_(?:(front_left|front_right|side_left|side_right)_)?"
    r"(semantic|instance|image|cameras|tracked)\.png"
)
_REQUIRED_KINDS = ("semantic", "instance", "image")


def context_name(folder_name: str) -> str:
    """The Waymo context of a folder, also for CUPS's ``segment-<ctx>_with_camera_labels``."""
    return folder_name.removeprefix("segment-").removesuffix("_with_camera_labels")


@dataclass(frozen=True)
class _FrameFiles:
    """The files of one frame index in a context folder, by kind (``semantic``, ``image`` …)."""

    name: str
    paths: dict[str, Path]


def _frame_files(context_dir: Path, camera: str = "front") -> tuple[list[_FrameFiles], list[Path]]:
    """A camera's frames in a context folder in numeric order, and the files of no camera."""
    paths_by_index: dict[int, dict[str, Path]] = defaultdict(dict)
    names: dict[int, str] = {}
    strays = []
    for path in sorted(context_dir.iterdir()):
        match = _FRAME_FILE.fullmatch(path.name)
        if match is None or not path.is_file():
            strays.append(path)
            continue
        if (match.group(2) or "front") != camera:
            continue
        index = int(match.group(1))
        names[index] = match.group(1)
        paths_by_index[index][match.group(3)] = path
    frames = [_FrameFiles(names[i], paths_by_index[i]) for i in sorted(paths_by_index)]
    return frames, strays


@register_dataset
class Waymo(Dataset):
    """Waymo PVPS FRONT-camera ground truth in Cityscapes trainIds or the 29 Waymo types."""

    name = "waymo"
    description = "Waymo Open Dataset PVPS, FRONT camera, CUPS-extracted uint16 pngs"
    facts = DatasetFacts(
        splits=("validation", "training"),
        resolution="1920x1280 (FRONT camera)",
        annotated_frames="validation: 20 contexts / 1930 frames at 5 Hz",
        layout=LAYOUT,
        citation="Mei et al., Waymo Open Dataset: Panoramic Video Panoptic Segmentation, ECCV 2022",
        extra={
            "small instances": "threshold UNKNOWN; protocol option min_instance_area (default 0)",
            "raw data": "vpsbench datasets prepare waymo --from-tfrecords DIR (no TensorFlow)",
        },
    )
    protocol_options: ClassVar[Mapping[str, ProtocolOption]] = {
        "label_space": ProtocolOption(
            "cs19",
            ("cs19", "waymo"),
            "cs19: CUPS's Waymo→trainId table (wall, fence, terrain not evaluated); "
            "waymo: the 29 native types, undefined → ignore",
        ),
        "weights": ProtocolOption(
            "none",
            ("none", "cameras"),
            "cameras: wSTQ pixel weight 1/num_cameras_covered from {i}_cameras.png",
        ),
        "untracked": ProtocolOption(
            "crowd",
            ("crowd", "keep"),
            "crowd: instances {i}_tracked.png marks untracked get instance 0 (official); keep",
        ),
        "camera": ProtocolOption(
            "front",
            tuple(CAMERA_RESOLUTIONS),
            "which camera's files are read: {i}_<camera>_<kind>.png (front: {i}_<kind>.png)",
        ),
        "min_instance_area": ProtocolOption(
            "0",
            (),
            "thing instances smaller than this many pixels in a frame become ignore; the paper's "
            "threshold is UNKNOWN",
        ),
    }

    def label_space(self) -> LabelSpace:
        """cs19 without wall/fence/terrain, or the native types with undefined as ignore."""
        if self.protocol["label_space"] == "waymo":
            evaluated = frozenset(range(1, len(WAYMO_NAMES)))
            return LabelSpace("waymo", WAYMO_NAMES, WAYMO_THINGS, evaluated)
        evaluated = frozenset(range(len(CS19_NAMES))) - CS19_MISSING_ON_WAYMO
        return cs19_label_space(evaluated=evaluated)

    def _class_mapping_dict(self) -> dict[int, int]:
        if self.protocol["label_space"] == "waymo":
            return {type_id: type_id or IGNORE_LABEL for type_id in range(len(WAYMO_NAMES))}
        return WAYMO_TO_CS19

    def class_mapping(self) -> Sequence[ClassMappingRow]:
        """Each Waymo type → its class in the chosen label space."""
        space = self.label_space()
        rows = []
        for type_id, target_id in self._class_mapping_dict().items():
            notes = []
            if target_id != IGNORE_LABEL and space.name == "cs19":
                notes.append(CS19_NAMES[target_id])
            if target_id in space.thing_classes:
                notes.append("thing")
            rows.append(ClassMappingRow(type_id, WAYMO_NAMES[type_id], target_id, "; ".join(notes)))
        return rows

    # -- layout ---------------------------------------------------------------------------------
    def _split_dir(self, split: str) -> Path:
        check_split(self.name, split, self.facts.splits)
        require_root(self.root, self.name, LAYOUT)
        return require_directory(self.root / split, self.name, LAYOUT)

    def _camera_part(self) -> str:
        camera = self.protocol["camera"]
        return "" if camera == "front" else f"{camera}_"

    def _frame_path(self, split: str, frame: FrameRef, kind: str) -> Path:
        name = f"{frame.name}_{self._camera_part()}{kind}.png"
        return self.root / split / frame.sequence / name

    def image_path(self, split: str, frame: FrameRef) -> Path | None:
        """The FRONT camera image of a frame."""
        return self._frame_path(split, frame, "image")

    def sequences(self, split: str) -> list[SequenceRef]:
        """Context folders with their labelled frames (those with a semantic map), numerically."""
        refs = []
        for context_dir in subdirectories(self._split_dir(split)):
            files, strays = _frame_files(context_dir, self.protocol["camera"])
            for stray in strays:
                if _FRAME_FILE.fullmatch(stray.name):
                    require_regular_file(stray)  # a FIFO or folder named like a frame file
            names = [frame.name for frame in files if "semantic" in frame.paths]
            if not names:
                raise InputError(context_dir, "context folder holds no labelled frame")
            frames = tuple(FrameRef(context_dir.name, name, i) for i, name in enumerate(names))
            refs.append(SequenceRef(context_dir.name, frames))
        return refs

    def official_split(self, split: str) -> Mapping[str, int] | None:
        """The 20 official PVPS validation contexts; the training split has no fixed list here."""
        return VALIDATION_CONTEXTS if split == "validation" else None

    def official_name(self, sequence: str) -> str:
        """The context of a folder (CUPS's ``segment-<ctx>_with_camera_labels`` included)."""
        return context_name(sequence)

    def _class_table(self) -> npt.NDArray[np.int32]:
        return lookup_table(self._class_mapping_dict(), len(WAYMO_NAMES))

    def load_ground_truth(self, split: str, frame: FrameRef) -> PanopticFrame:
        """Semantic and instance maps → label space; untracked → crowd; tiny instances → ignore."""
        semantic_path = require_regular_file(self._frame_path(split, frame, "semantic"))
        native_semantic = read_label_png(semantic_path)
        instance = _read_same_size(self._frame_path(split, frame, "instance"), native_semantic)
        tracked_path = self._frame_path(split, frame, "tracked")
        if self.protocol["untracked"] == "crowd" and tracked_path.exists():
            tracked = _read_same_size(tracked_path, native_semantic)
            instance = np.where(tracked == 0, 0, instance)
        semantic = map_classes(native_semantic, self._class_table(), semantic_path)
        result = evaluation_frame(semantic, instance, self.label_space().thing_classes)
        return ignore_small_instances(result, int(self.protocol["min_instance_area"]))

    def load_pixel_weights(self, split: str, frame: FrameRef) -> npt.NDArray[np.float64] | None:
        """1 / num_cameras_covered under ``weights=cameras``, else ``None`` (unit weights)."""
        if self.protocol["weights"] == "none":
            return None
        path = self._frame_path(split, frame, "cameras")
        if not path.exists():
            raise InputError(path, "missing num_cameras_covered map (needed for weights=cameras)")
        cameras = read_label_png(path)
        if (cameras < 1).any():
            raise InputError(path, "num_cameras_covered is 0 for some pixels")
        weights: npt.NDArray[np.float64] = 1.0 / cameras.astype(np.float64)
        return weights

    # -- verify ---------------------------------------------------------------------------------
    def verify(self, split: str) -> list[Problem]:
        """Official contexts and frame counts, stray files, unreadable maps, ids and sizes."""
        split_dir = self._split_dir(split)
        problems = [
            Problem(str(path), "unexpected file")
            for path in sorted(split_dir.iterdir())
            if not path.is_dir()
        ]
        folders = {context_name(path.name): path for path in subdirectories(split_dir)}
        if split != "validation":
            for folder in folders.values():
                problems += self._verify_context(folder, None)
            return problems
        for context, count in VALIDATION_CONTEXTS.items():
            if context not in folders:
                problems.append(
                    Problem(str(split_dir / context), f"missing context ({count} frames)")
                )
        for context, folder in folders.items():
            if context not in VALIDATION_CONTEXTS:
                problems.append(Problem(str(folder), "not an official PVPS validation context"))
                continue
            problems += self._verify_context(folder, VALIDATION_CONTEXTS[context])
        return problems

    def _verify_context(self, folder: Path, count: int | None) -> list[Problem]:
        frames, strays = _frame_files(folder, self.protocol["camera"])
        problems = [Problem(str(path), "unexpected file") for path in strays]
        labelled = sum("semantic" in frame.paths for frame in frames)
        if count is not None and labelled != count:
            problems.append(Problem(str(folder), f"{labelled} labelled frames, expected {count}"))
        required = _REQUIRED_KINDS + (("cameras",) if self.protocol["weights"] == "cameras" else ())
        for frame in frames:
            problems += [
                Problem(
                    str(folder / f"{frame.name}_{self._camera_part()}{kind}.png"), "missing file"
                )
                for kind in required
                if kind not in frame.paths
            ]
            problems += self._verify_frame(frame)
        return problems

    def _verify_frame(self, frame: _FrameFiles) -> list[Problem]:
        problems: list[Problem] = []
        maps: dict[str, LabelMap] = {}
        for kind in ("semantic", "instance", "cameras", "tracked"):
            if kind in frame.paths:
                try:
                    maps[kind] = read_label_png(frame.paths[kind])
                except InputError as error:
                    problems.append(problem(error))
        semantic = maps.get("semantic")
        resolution = CAMERA_RESOLUTIONS[self.protocol["camera"]]
        reference = resolution if semantic is None else _shape(semantic)
        if semantic is not None:
            problems += check_size(frame.paths["semantic"], reference, resolution)
        for kind, values in maps.items():
            if kind != "semantic" and _shape(values) != reference:
                problems.append(
                    Problem(
                        str(frame.paths[kind]),
                        f"size {size_text(_shape(values))} differs from the semantic map's "
                        f"{size_text(reference)}",
                    )
                )
        if "image" in frame.paths:
            problems += check_image(frame.paths["image"], reference)
        if semantic is not None:
            bad = invalid_ids(semantic, self._class_table())
            if bad:
                problems.append(
                    Problem(str(frame.paths["semantic"]), f"types {format_ids(bad)} are not 0..28")
                )
        instance = maps.get("instance")
        if semantic is not None and instance is not None and semantic.shape == instance.shape:
            allowed = np.fromiter(WAYMO_INSTANCE_TYPES, dtype=np.int32)
            stray = np.unique(semantic[(instance > 0) & ~np.isin(semantic, allowed)])
            if stray.size:
                problems.append(
                    Problem(
                        str(frame.paths["instance"]),
                        f"instance ids on types {format_ids([int(t) for t in stray])}, "
                        "which have no instances",
                    )
                )
        cameras = maps.get("cameras")
        if cameras is not None and (cameras < 1).any():
            problems.append(Problem(str(frame.paths["cameras"]), "num_cameras_covered is 0"))
        return problems


def _shape(values: LabelMap) -> tuple[int, int]:
    height, width = values.shape
    return int(height), int(width)


def _read_same_size(path: Path, reference: LabelMap) -> LabelMap:
    """Read a label png that must have the size of ``reference`` (the semantic map)."""
    values = read_label_png(path)
    if values.shape != reference.shape:
        raise InputError(
            path,
            f"size {size_text(_shape(values))} differs from the semantic map's "
            f"{size_text(_shape(reference))}",
        )
    return values
