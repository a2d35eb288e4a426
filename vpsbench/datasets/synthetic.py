"""Synthetic scene-centric driving videos, generated offline by :mod:`vpsbench.synthetic`.

The ground truth is written in the KITTI-STEP layout, so this loader is the KITTI-STEP loader
with the synthetic dataset's own facts; next to it lie the cues that unsupervised methods would
estimate on real video (exact depth, forward/backward flow, moving-object mask, camera)::

    <root>/images/<split>/<seq:04d>/<frame:06d>.png          RGB
    <root>/panoptic_maps/<split>/<seq:04d>/<frame:06d>.png   STEP: R = trainId, G*256+B = track id
    <root>/cues/<split>/<seq:04d>/<frame:06d>.npz            depth, flow_forward, flow_backward,
                                                             moving
    <root>/cues/<split>/<seq:04d>/camera.json                intrinsics, camera-to-world poses
    <root>/synthetic.json                                     the generator configuration

Every Cityscapes thing class that the generator draws (person, rider, car, truck, bus, bicycle)
carries track ids, so the things are all of 11..18 (tiny or far objects are crowd). Create it with
``vpsbench datasets prepare synthetic``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import ClassVar

import numpy as np

from vpsbench.datasets.base import (
    ClassMappingRow,
    DatasetFacts,
    LabelSpace,
    Problem,
    ProtocolOption,
)
from vpsbench.datasets.cityscapes_labels import (
    CS19_NAMES,
    CS19_THINGS,
    LABEL_SPACE_NAMES,
    cs19_label_space,
    cs27_label_space_from_train_ids,
)
from vpsbench.datasets.common import (
    check_image,
    problem,
    require_file,
    require_root,
    size_text,
)
from vpsbench.datasets.kitti_step import KittiStep
from vpsbench.datasets.registry import register_dataset
from vpsbench.errors import InputError, VpsbenchError
from vpsbench.formats.step import read_step_png

CONFIG_FILE = "synthetic.json"
SPLITS = ("train", "val")
LAYOUT = (
    "images|panoptic_maps/<split>/<seq:04d>/<frame:06d>.png, "
    "cues/<split>/<seq:04d>/<frame:06d>.npz + camera.json, synthetic.json"
)


@register_dataset
class Synthetic(KittiStep):
    """Procedural driving videos with exact panoptic labels and cues (KITTI-STEP layout)."""

    name = "synthetic"
    description = "Synthetic street videos ray-cast in numpy, with exact depth, flow and motion"
    facts = DatasetFacts(
        splits=SPLITS,
        resolution="configurable; default 512x256",
        annotated_frames="every frame; default val 12 videos × 30 frames at 10 fps",
        layout=LAYOUT,
        citation="vpsbench procedural generator (vpsbench.synthetic)",
        extra={
            "things": "person, rider, car, truck, bus, bicycle carry track ids; tiny ones crowd",
            "cues": "metric depth, forward/backward flow, moving mask, intrinsics and poses",
            "prepare": "vpsbench datasets prepare synthetic [--videos N --frames T --size HxW]",
        },
    )
    protocol_options: ClassVar[Mapping[str, ProtocolOption]] = {
        "label_space": ProtocolOption(
            "cs19",
            LABEL_SPACE_NAMES,
            "cs19: Cityscapes trainIds (identity); cs27: labelId − 7",
        ),
    }

    def label_space(self) -> LabelSpace:
        """Cityscapes space with all of its thing classes tracked."""
        if self.protocol["label_space"] == "cs27":
            return cs27_label_space_from_train_ids(CS19_THINGS)
        return cs19_label_space(CS19_THINGS)

    def class_mapping(self) -> Sequence[ClassMappingRow]:
        """The generator draws trainIds directly: identity (or labelId − 7 in cs27)."""
        rows = super().class_mapping()
        return [
            ClassMappingRow(
                row.native_id,
                row.native_name,
                row.target_id,
                "thing" if row.native_id in CS19_THINGS else "",
            )
            for row in rows
        ]

    def config(self) -> dict[str, object]:
        """The generator configuration recorded in ``synthetic.json``."""
        require_root(self.root, self.name, LAYOUT)
        path = require_file(self.root / CONFIG_FILE, self.name, LAYOUT)
        try:
            document = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise InputError(path, f"unreadable generator configuration: {error}") from None
        if not isinstance(document, dict):
            raise InputError(path, "the generator configuration is not a JSON object")
        return document

    def generated_size(self) -> tuple[int, int, tuple[int, int]]:
        """Videos per split, frames per video and (height, width) from ``synthetic.json``."""
        config = self.config()
        numbers: list[int] = []
        for key in ("videos", "frames", "height", "width"):
            value = config.get(key)
            if not isinstance(value, int) or value < 1:
                raise InputError(self.root / CONFIG_FILE, f"{key!r} is not a positive integer")
            numbers.append(value)
        videos, frames, height, width = numbers
        return videos, frames, (height, width)

    def official_split(self, split: str) -> Mapping[str, int] | None:
        """The videos and frames ``synthetic.json`` says were generated (what ``verify`` checks)."""
        videos, frames, _ = self.generated_size()
        return {f"{video:04d}": frames for video in range(videos)}

    def verify(self, split: str) -> list[Problem]:
        """Every expected frame, image and cue file present, readable and of the right size."""
        try:
            videos, frames, shape = self.generated_size()
        except InputError as error:
            return [problem(error)]
        problems: list[Problem] = []
        for video in range(videos):
            sequence = f"{video:04d}"
            cue_dir = self.root / "cues" / split / sequence
            if not (cue_dir / "camera.json").is_file():
                problems.append(Problem(str(cue_dir / "camera.json"), "missing camera file"))
            for t in range(frames):
                name = f"{t:06d}"
                label = self.root / "panoptic_maps" / split / sequence / f"{name}.png"
                problems += _check_label(label, shape)
                problems += check_image(
                    self.root / "images" / split / sequence / f"{name}.png", shape
                )
                problems += _check_cues(cue_dir / f"{name}.npz", shape)
        return problems


def _check_label(path: Path, shape: tuple[int, int]) -> list[Problem]:
    """A STEP label that exists, decodes, has ``shape`` and only trainIds or 255."""
    if not path.is_file():
        return [Problem(str(path), "missing frame")]
    try:
        frame = read_step_png(path)
    except InputError as error:
        return [problem(error)]
    problems = []
    if frame.shape != shape:
        problems.append(Problem(str(path), f"size {size_text(frame.shape)} != {size_text(shape)}"))
    valid = (frame.semantic < len(CS19_NAMES)) | (frame.semantic == 255)
    if not valid.all():
        problems.append(Problem(str(path), "class ids outside trainIds/255"))
    return problems


def _check_cues(path: Path, shape: tuple[int, int]) -> list[Problem]:
    """A cue archive with depth and moving maps of ``shape``."""
    if not path.is_file():
        return [Problem(str(path), "missing cue file")]
    try:
        with np.load(path) as cues:
            for key in ("depth", "moving"):
                if key not in cues.files:
                    return [Problem(str(path), f"no {key!r} array")]
                if cues[key].shape[:2] != shape:
                    return [Problem(str(path), f"{key} has shape {cues[key].shape}")]
    except (OSError, ValueError) as error:
        return [Problem(str(path), f"unreadable cue archive: {error}")]
    return []


def prepare_synthetic(
    root: Path,
    *,
    videos: int,
    frames: int,
    height: int,
    width: int,
    seed: int,
    splits: Sequence[str],
    workers: int,
    progress: Callable[[str, int, int], None] | None = None,
) -> Path:
    """Generate (or finish generating) the synthetic dataset under ``root``; return ``root``."""
    from vpsbench.synthetic import SyntheticConfig, write_dataset

    unknown = set(splits) - set(SPLITS)
    if unknown:
        raise VpsbenchError(f"synthetic has no split {', '.join(sorted(unknown))}")
    if min(videos, frames, height, width) < 1:
        raise VpsbenchError("videos, frames, height and width must be positive")
    config = SyntheticConfig(videos=videos, frames=frames, height=height, width=width, seed=seed)
    if (root / CONFIG_FILE).is_file():
        recorded = Synthetic(root).config()
        clash = {k: recorded.get(k) for k, v in asdict(config).items() if recorded.get(k) != v}
        if clash:
            raise VpsbenchError(
                f"{root} holds a synthetic dataset with other settings ({clash}); "
                "choose another --root"
            )
    write_dataset(root, config, splits=tuple(splits), workers=workers, progress=progress)
    return root
