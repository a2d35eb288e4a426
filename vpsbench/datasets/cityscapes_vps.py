"""Cityscapes-VPS (Kim et al., CVPR 2020, VPSNet): 6 annotated frames per 30-frame snippet.

On-disk layout (VPSNet's ``prepare_data`` output, ``shared/spec/datasets.md`` §1)::

    <root>/panoptic_gt_{train,val}_city_vps.json  COCO-panoptic json (images, annotations,
                                                  categories)
    <root>/{train,val}/panoptic_video/<png>       RGB pngs, id = R + 256·G + 65536·B, id 0 = void;
                                                  <png> = the annotation's file_name
    <root>/{train,val}/img/<file_name>            the frames; file_name from the json ``images``

A frame is named by its ``image_id`` (``0005_0025_frankfurt_000000_001736``): the first four
characters are the video (the sequence), characters 5–9 the global frame index that orders the
frames; video V holds global frames (V−1)·6+1 … V·6. Predictions:
``<pred_root>/<video>/<image_id>.png``. Resolution 2048x1024.

``category_id`` is the Cityscapes trainId 0..18 (things 11..18). A thing's segment id is the same
in all 6 frames of a video, so the track id is the segment id. Crowd: VPSNet's conversion skips
Cityscapes group regions, so crowd is *void* (id 0) in this ground truth and ``iscrowd`` is never 1;
polegroup was merged into pole, and caravan, trailer, parking, rail track, guard rail, bridge and
tunnel are void.

Frame counts: DeepLab2 (2400/300/300 for train/val/test) and VPSNet's ``--n_video 50`` agree that
val has 50 videos = 300 annotated frames; VPSNet's ``docs/DATASET.md`` says 2400/600/600 and a
comment in its ``eval_vpq.py`` says ``600//6``. We take 300 (the paper's val set; 600 looks stale)
and ``verify`` expects 50 videos for val and 400 (2400 frames) for train. Which 50 videos make up
val is only defined by the json in the dataset zip, so ``verify`` cannot name a missing video, only
count them; a missing frame of a present video is reported.

Protocol options: ``label_space`` — ``cs19`` (default, trainIds as stored) or ``cs27``
(trainId → labelId − 7, things 17..26; the indices no trainId reaches are not evaluated).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
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
from vpsbench.datasets.cityscapes_labels import (
    CS19_NAMES,
    CS19_THINGS,
    CS27_NAMES,
    LABEL_SPACE_NAMES,
    cs19_label_space,
    cs27_label_space_from_train_ids,
    train_id_mapping,
)
from vpsbench.datasets.common import (
    check_image,
    check_size,
    check_split,
    format_ids,
    invalid_ids,
    lookup_table,
    native_to_evaluation_frame,
    problem,
    require_directory,
    require_file,
    require_regular_file,
    require_root,
    size_text,
)
from vpsbench.datasets.registry import register_dataset
from vpsbench.errors import InputError
from vpsbench.formats.coco_panoptic import (
    PanopticAnnotation,
    PanopticJson,
    read_coco_panoptic_png,
    read_panoptic_json,
)
from vpsbench.video import FrameRef, PanopticFrame, SequenceRef

#: (height, width) of every Cityscapes-VPS frame.
RESOLUTION = (1024, 2048)
#: Annotated frames per video (the 5th, 10th, …, 30th of each 30-frame snippet).
FRAMES_PER_VIDEO = 6
#: Number of videos per split (DeepLab2: 2400/300/300 frames; VPSNet ``--n_video 50``).
VIDEOS_PER_SPLIT = {"train": 400, "val": 50}

LAYOUT = (
    "panoptic_gt_{split}_city_vps.json, {split}/panoptic_video/*.png (RGB ids) and "
    "{split}/img/<images.file_name>"
)

_IMAGE_ID = re.compile(r"(\d{4})_(\d{4})_.+")


def video_and_frame(image_id: str) -> tuple[str, int] | None:
    """The video id (``0005``) and global frame index (25) of an ``image_id``, if well-formed."""
    match = _IMAGE_ID.fullmatch(image_id)
    if match is None:
        return None
    return match.group(1), int(match.group(2))


@register_dataset
class CityscapesVps(Dataset):
    """Cityscapes-VPS ground truth (VPSNet's panoptic_video pngs) in trainIds or 27 classes."""

    name = "cityscapes-vps"
    description = "Cityscapes-VPS: 6 annotated frames per video, COCO-panoptic RGB pngs (VPSNet)"
    facts = DatasetFacts(
        splits=("train", "val"),
        resolution="2048x1024",
        annotated_frames="6 per video (every 5th frame of 30); val 50 videos / 300 frames",
        layout=LAYOUT,
        citation="Kim et al., Video Panoptic Segmentation, CVPR 2020",
        extra={
            "frame counts": "300 val frames (DeepLab2, --n_video 50); VPSNet docs say 600 (stale)",
            "crowd": "void (id 0): VPSNet drops Cityscapes group regions; iscrowd is never 1",
        },
    )
    protocol_options: ClassVar[Mapping[str, ProtocolOption]] = {
        "label_space": ProtocolOption(
            "cs19",
            LABEL_SPACE_NAMES,
            "cs19: Cityscapes trainIds as stored; cs27: labelId − 7 (unreachable classes not "
            "evaluated)",
        ),
    }

    def __init__(self, root: str | Path, protocol: Mapping[str, str] | None = None) -> None:
        super().__init__(root, protocol)
        self._json_cache: dict[str, PanopticJson] = {}
        self._annotation_index: dict[str, dict[str, PanopticAnnotation]] = {}

    def label_space(self) -> LabelSpace:
        """cs19 (all 19 classes occur) or cs27 restricted to the classes trainIds reach."""
        if self.protocol["label_space"] == "cs27":
            return cs27_label_space_from_train_ids()
        return cs19_label_space()

    def class_mapping(self) -> Sequence[ClassMappingRow]:
        """category_id (= trainId) → class id in the chosen label space."""
        rows = []
        for train_id, target_id in train_id_mapping(self.protocol["label_space"]).items():
            if train_id == IGNORE_LABEL:
                rows.append(ClassMappingRow(0, "void (segment id 0)", IGNORE_LABEL, "incl. crowd"))
                continue
            note = CS27_NAMES[target_id] if self.protocol["label_space"] == "cs27" else ""
            rows.append(ClassMappingRow(train_id, CS19_NAMES[train_id], target_id, note))
        return rows

    # -- layout ---------------------------------------------------------------------------------
    def _json_path(self, split: str) -> Path:
        check_split(self.name, split, self.facts.splits)
        require_root(self.root, self.name, LAYOUT)
        path = require_file(self.root / f"panoptic_gt_{split}_city_vps.json", self.name, LAYOUT)
        require_directory(self._label_dir(split), self.name, LAYOUT)
        return path

    def _label_dir(self, split: str) -> Path:
        return self.root / split / "panoptic_video"

    def _panoptic_json(self, split: str) -> PanopticJson:
        if split not in self._json_cache:
            self._json_cache[split] = read_panoptic_json(self._json_path(split))
        return self._json_cache[split]

    def _annotation(self, split: str, image_id: str) -> PanopticAnnotation:
        if split not in self._annotation_index:
            annotations = self._panoptic_json(split).annotations
            self._annotation_index[split] = {a.image_id: a for a in annotations}
        annotation = self._annotation_index[split].get(image_id)
        if annotation is None:
            raise InputError(self._json_path(split), f"no annotation for image_id {image_id!r}")
        return annotation

    def image_path(self, split: str, frame: FrameRef) -> Path | None:
        """The frame's image under ``{split}/img/``, named by the json ``images`` entry."""
        for image in self._panoptic_json(split).images:
            if image.get("id") == frame.name:
                return self.root / split / "img" / str(image["file_name"])
        return None

    def sequences(self, split: str) -> list[SequenceRef]:
        """Videos (first 4 characters of image_id) with frames ordered by global frame index."""
        by_video: dict[str, list[tuple[int, str]]] = defaultdict(list)
        for annotation in self._panoptic_json(split).annotations:
            parsed = video_and_frame(annotation.image_id)
            if parsed is None:
                raise InputError(
                    self._json_path(split),
                    f"image_id {annotation.image_id!r} is not <video:04d>_<frame:04d>_<name>",
                )
            video, frame_index = parsed
            by_video[video].append((frame_index, annotation.image_id))
        return [
            SequenceRef(
                video,
                tuple(
                    FrameRef(video, image_id, index)
                    for index, (_, image_id) in enumerate(sorted(by_video[video]))
                ),
            )
            for video in sorted(by_video)
        ]

    def _class_table(self) -> npt.NDArray[np.int32]:
        return lookup_table(train_id_mapping(self.protocol["label_space"]), IGNORE_LABEL + 1)

    def load_ground_truth(self, split: str, frame: FrameRef) -> PanopticFrame:
        """Decode the RGB png with its json segments; things keep their segment id as track id."""
        annotation = self._annotation(split, frame.name)
        path = require_regular_file(self._label_dir(split) / annotation.file_name)
        native = read_coco_panoptic_png(path, annotation.segments, CS19_THINGS, IGNORE_LABEL)
        return native_to_evaluation_frame(
            native, self._class_table(), self.label_space().thing_classes, path
        )

    # -- verify ---------------------------------------------------------------------------------
    def verify(self, split: str) -> list[Problem]:
        """Json structure, per-video frame sets, png ids vs segments, sizes, images, strays."""
        json_path = self._json_path(split)
        try:
            panoptic_json = self._panoptic_json(split)
        except InputError as error:
            return [problem(error)]
        problems = _check_categories(json_path, panoptic_json.categories)
        images = {str(image.get("id")): image for image in panoptic_json.images}
        problems += self._check_videos(split, json_path, panoptic_json.annotations)
        label_dir, image_dir = self._label_dir(split), self.root / split / "img"
        table = self._class_table()
        for annotation in panoptic_json.annotations:
            label_problems, label_shape = _check_annotation(
                label_dir / annotation.file_name, annotation, table
            )
            problems += label_problems
            image = images.get(annotation.image_id)
            if image is None:
                problems.append(
                    Problem(str(json_path), f"no images entry for {annotation.image_id!r}")
                )
                continue
            declared = (int(image.get("height", 0)), int(image.get("width", 0)))
            if declared != RESOLUTION:
                problems.append(
                    Problem(
                        str(json_path),
                        f"images entry {annotation.image_id!r} declares {size_text(declared)}, "
                        f"expected {size_text(RESOLUTION)}",
                    )
                )
            if image_dir.is_dir():
                image_path = image_dir / str(image.get("file_name"))
                problems += check_image(image_path, label_shape or RESOLUTION)
        referenced = {annotation.file_name for annotation in panoptic_json.annotations}
        problems += _stray_files(label_dir, referenced)
        if image_dir.is_dir():
            problems += _stray_files(image_dir, {str(i.get("file_name")) for i in images.values()})
        else:
            problems.append(Problem(str(image_dir), "missing image folder"))
        return problems

    def _check_videos(
        self, split: str, json_path: Path, annotations: list[PanopticAnnotation]
    ) -> list[Problem]:
        """Each video has its 6 global frame indices once; the split has its official count."""
        problems: list[Problem] = []
        frames_by_video: dict[str, list[int]] = defaultdict(list)
        for annotation in annotations:
            parsed = video_and_frame(annotation.image_id)
            if parsed is None:
                problems.append(
                    Problem(
                        str(json_path),
                        f"image_id {annotation.image_id!r} is not <video:04d>_<frame:04d>_<name>",
                    )
                )
                continue
            frames_by_video[parsed[0]].append(parsed[1])
        for video, frame_indices in sorted(frames_by_video.items()):
            first = (int(video) - 1) * FRAMES_PER_VIDEO + 1
            expected = set(range(first, first + FRAMES_PER_VIDEO))
            for missing in sorted(expected - set(frame_indices)):
                problems.append(
                    Problem(str(json_path), f"video {video} lacks annotated frame {missing:04d}")
                )
            for stray in sorted(set(frame_indices) - expected):
                problems.append(
                    Problem(str(json_path), f"frame {stray:04d} does not belong to video {video}")
                )
            duplicates = sorted({i for i in frame_indices if frame_indices.count(i) > 1})
            if duplicates:
                problems.append(
                    Problem(
                        str(json_path), f"video {video} repeats frames {format_ids(duplicates)}"
                    )
                )
        expected_videos = VIDEOS_PER_SPLIT[split]
        if len(frames_by_video) != expected_videos:
            problems.append(
                Problem(
                    str(json_path),
                    f"{len(frames_by_video)} videos, expected {expected_videos} "
                    f"({expected_videos * FRAMES_PER_VIDEO} annotated frames)",
                )
            )
        return problems


def _check_categories(json_path: Path, categories: list[dict[str, object]]) -> list[Problem]:
    """The json categories are the 19 trainIds with things 11..18."""
    declared = {int(str(c.get("id"))): bool(c.get("isthing")) for c in categories}
    expected = {train_id: train_id in CS19_THINGS for train_id in range(len(CS19_NAMES))}
    if declared != expected:
        return [Problem(str(json_path), "categories are not the 19 trainIds with things 11..18")]
    return []


def _check_annotation(
    path: Path, annotation: PanopticAnnotation, table: npt.NDArray[np.int32]
) -> tuple[list[Problem], tuple[int, int] | None]:
    """Problems of one png (decodes with its segments, Cityscapes size, trainIds) and its size."""
    try:
        native = read_coco_panoptic_png(path, annotation.segments, CS19_THINGS, IGNORE_LABEL)
    except InputError as error:
        return [problem(error)], None
    problems = check_size(path, native.shape, RESOLUTION)
    bad_categories = invalid_ids(native.semantic, table)
    if bad_categories:
        problems.append(
            Problem(str(path), f"category ids {format_ids(bad_categories)} are not trainIds")
        )
    return problems, native.shape


def _stray_files(directory: Path, expected_names: set[str]) -> list[Problem]:
    """Files in ``directory`` that the json does not reference."""
    if not directory.is_dir():
        return []
    return [
        Problem(str(path), "not referenced by the json")
        for path in sorted(directory.iterdir())
        if path.name not in expected_names
    ]
