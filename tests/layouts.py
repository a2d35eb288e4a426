"""Write tiny copies of each dataset's on-disk layout, for loader, CLI and end-to-end tests.

Every writer takes frames in the dataset's NATIVE ids (what the real files hold, before any
mapping into an evaluation label space), writes them with the project's own codecs exactly where
the real dataset keeps them, adds small constant-colour images, and returns the dataset root:

* :func:`write_cityscapes_vps` — frames in Cityscapes trainIds (255 = void); a thing's instance id
  becomes its segment id, so use ids that are unique per video and never shared by two classes.
* :func:`write_kitti_step` — frames in trainIds (255 = void) with the STEP instance ids.
* :func:`write_waymo` — frames in Waymo semantic types 0..28 with global instance ids.
* :func:`write_mots` / :func:`write_kitti_mots` — maps of MOTS object ids (``2005`` = pedestrian
  5, ``10000`` = ignore region, ``0`` = background), as png folders or as RLE txt files.

A sequence maps its folder name to its frames in temporal order; frame numbering follows the
dataset (0-based for KITTI, 1-based for MOTSChallenge, ``VVVV_FFFF_`` names for Cityscapes-VPS).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from vpsbench.datasets.cityscapes_labels import CS19_NAMES, CS19_THINGS
from vpsbench.datasets.kitti_step import KITTI_SEQUENCE_FRAMES
from vpsbench.formats.coco_panoptic import (
    PanopticAnnotation,
    PanopticJson,
    write_coco_panoptic_png,
    write_panoptic_json,
)
from vpsbench.formats.divisor_png import write_label_png
from vpsbench.formats.mots import write_mots_png, write_mots_txt
from vpsbench.formats.png import write_png
from vpsbench.formats.step import write_step_png
from vpsbench.video import PanopticFrame

IdMap = npt.NDArray[np.integer]

#: Colour of every generated image (the loaders never look at pixel values of images).
IMAGE_COLOUR = (90, 120, 150)


def write_image(path: Path, shape: tuple[int, int]) -> Path:
    """Write a constant-colour RGB image of ``shape`` (height, width) as png or jpg by suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.empty((*shape, 3), dtype=np.uint8)
    pixels[...] = IMAGE_COLOUR
    if path.suffix == ".png":
        write_png(path, pixels)
    else:
        Image.fromarray(pixels).save(path)
    return path


def frame_from_ids(semantic: npt.ArrayLike, instance: npt.ArrayLike | None = None) -> PanopticFrame:
    """A native frame from a semantic map and an optional instance map (default: all 0)."""
    semantic_array = np.asarray(semantic, dtype=np.int32)
    if instance is None:
        return PanopticFrame.from_arrays(semantic_array, np.zeros_like(semantic_array))
    return PanopticFrame.from_arrays(semantic_array, instance)


# -- Cityscapes-VPS ------------------------------------------------------------------------------
def cityscapes_vps_image_id(video: str, position: int) -> str:
    """The image_id of the ``position``-th (0..5) annotated frame of a video, VPSNet style."""
    global_frame = (int(video) - 1) * 6 + 1 + position
    return f"{video}_{global_frame:04d}_frankfurt_000000_{1736 + 5 * position:06d}"


def write_cityscapes_vps(
    root: Path,
    split: str,
    videos: Mapping[str, Sequence[PanopticFrame]],
    with_images: bool = True,
) -> Path:
    """Write ``panoptic_gt_{split}_city_vps.json``, ``{split}/panoptic_video`` and ``img``.

    Frames are trainIds (255 void) plus instance ids; a thing pixel with instance 0 is written as
    an ``iscrowd`` segment. The 4th frame of a video is the original gtFine frame
    (``_gtFine_color.png`` / ``_leftImg8bit.png``), the others ``_final_mask`` / ``_newImg8bit``.
    """
    label_dir = root / split / "panoptic_video"
    image_dir = root / split / "img"
    label_dir.mkdir(parents=True, exist_ok=True)
    panoptic_json = PanopticJson(
        categories=[
            {"id": train_id, "name": name, "isthing": int(train_id in CS19_THINGS)}
            for train_id, name in enumerate(CS19_NAMES)
        ]
    )
    for video, frames in videos.items():
        for position, frame in enumerate(frames):
            image_id = cityscapes_vps_image_id(video, position)
            original = position == 3
            png_name = f"{image_id}_{'gtFine_color' if original else 'final_mask'}.png"
            image_name = f"{image_id}_{'leftImg8bit' if original else 'newImg8bit'}.png"
            segments = write_coco_panoptic_png(label_dir / png_name, frame, CS19_THINGS)
            height, width = frame.shape
            panoptic_json.images.append(
                {"id": image_id, "width": width, "height": height, "file_name": image_name}
            )
            panoptic_json.annotations.append(PanopticAnnotation(png_name, image_id, segments))
            if with_images:
                write_image(image_dir / image_name, frame.shape)
    write_panoptic_json(root / f"panoptic_gt_{split}_city_vps.json", panoptic_json)
    return root


# -- KITTI-STEP ----------------------------------------------------------------------------------
def write_kitti_step(
    root: Path,
    split: str,
    sequences: Mapping[str, Sequence[PanopticFrame]],
    with_images: bool = True,
) -> Path:
    """Write ``panoptic_maps/{split}/<seq>/<frame:06d>.png`` (STEP RGB) and ``images/...``."""
    for sequence, frames in sequences.items():
        label_dir = root / "panoptic_maps" / split / sequence
        label_dir.mkdir(parents=True, exist_ok=True)
        for number, frame in enumerate(frames):
            write_step_png(label_dir / f"{number:06d}.png", frame)
            if with_images:
                write_image(root / "images" / split / sequence / f"{number:06d}.png", frame.shape)
    return root


# -- Waymo ---------------------------------------------------------------------------------------
def write_waymo(
    root: Path,
    split: str,
    contexts: Mapping[str, Sequence[PanopticFrame]],
    cameras: Mapping[str, Sequence[IdMap]] | None = None,
    tracked: Mapping[str, Sequence[IdMap]] | None = None,
    frame_indices: Mapping[str, Sequence[int]] | None = None,
    with_images: bool = True,
) -> Path:
    """Write CUPS's ``{split}/<ctx>/{i}_semantic|instance|image[|cameras|tracked].png``.

    ``i`` defaults to 0, 1, 2, …; ``frame_indices`` gives other (unpadded) indices, e.g. to test
    that ``10`` sorts after ``9``. ``cameras`` and ``tracked`` hold uint8 maps per frame.
    """
    for context, frames in contexts.items():
        context_dir = root / split / context
        context_dir.mkdir(parents=True, exist_ok=True)
        indices = list(frame_indices[context]) if frame_indices else list(range(len(frames)))
        for position, (index, frame) in enumerate(zip(indices, frames, strict=True)):
            write_label_png(context_dir / f"{index}_semantic.png", frame.semantic, bits=16)
            write_label_png(context_dir / f"{index}_instance.png", frame.instance, bits=16)
            if with_images:
                write_image(context_dir / f"{index}_image.png", frame.shape)
            if cameras is not None:
                write_label_png(
                    context_dir / f"{index}_cameras.png", cameras[context][position], bits=8
                )
            if tracked is not None:
                write_label_png(
                    context_dir / f"{index}_tracked.png", tracked[context][position], bits=8
                )
    return root


# -- MOTS ----------------------------------------------------------------------------------------
def mots_frame(values: IdMap) -> PanopticFrame:
    """The frame the MOTS codecs write for a map of object ids (instance = id % 1000 + 1)."""
    ids = np.asarray(values, dtype=np.int32)
    semantic = ids // 1000
    instance = np.where((ids == 0) | (semantic == 10), 0, ids % 1000 + 1)
    return PanopticFrame.from_arrays(semantic, instance)


def _write_mots_sequences(
    annotation_dir: Path,
    image_root: Path,
    sequences: Mapping[str, Sequence[IdMap]],
    first_frame: int,
    image_extension: str,
    as_txt: bool,
) -> None:
    """Write ``instances/<seq>/`` pngs or ``instances_txt/<seq>.txt`` plus the images."""
    for sequence, value_maps in sequences.items():
        frames = {first_frame + i: mots_frame(values) for i, values in enumerate(value_maps)}
        if as_txt:
            (annotation_dir / "instances_txt").mkdir(parents=True, exist_ok=True)
            write_mots_txt(annotation_dir / "instances_txt" / f"{sequence}.txt", frames)
        else:
            label_dir = annotation_dir / "instances" / sequence
            label_dir.mkdir(parents=True, exist_ok=True)
            for number, frame in frames.items():
                write_mots_png(label_dir / f"{number:06d}.png", frame)
        for number, frame in frames.items():
            write_image(image_root / sequence / f"{number:06d}.{image_extension}", frame.shape)


def write_mots(root: Path, sequences: Mapping[str, Sequence[IdMap]], as_txt: bool = False) -> Path:
    """Write MOTSChallenge ``train/instances[_txt]`` and ``train/images/<seq>/*.jpg``, 1-based."""
    _write_mots_sequences(root / "train", root / "train" / "images", sequences, 1, "jpg", as_txt)
    return root


def write_kitti_mots(
    root: Path, split: str, sequences: Mapping[str, Sequence[IdMap]], as_txt: bool = False
) -> Path:
    """Write KITTI-MOTS ``instances[_txt]`` and ``image_02/<seq>/*.png``, 0-based.

    KITTI-MOTS has no split folder; ``split`` only checks that the sequences belong to it.
    """
    strangers = set(sequences) - set(KITTI_SEQUENCE_FRAMES[split])
    if strangers:
        raise ValueError(f"sequences {sorted(strangers)} are not in KITTI-MOTS {split}")
    _write_mots_sequences(root, root / "image_02", sequences, 0, "png", as_txt)
    return root
