"""Waymo PVPS ground truth straight from the published TFRecord files, without TensorFlow.

``vpsbench datasets prepare waymo --from-tfrecords DIR`` streams every ``*.tfrecord`` file of
``DIR`` (:mod:`vpsbench.formats.tfrecord`, both CRC-32C checks), reads the few ``Frame`` fields it
needs with a small wire-format reader (:mod:`vpsbench.formats.protowire`; field numbers from
Waymo's ``dataset.proto``: ``Frame.context.name`` 1.1, ``timestamp_micros`` 2, ``images`` 4 →
``CameraImage.name`` 1, ``image`` 2 (JPEG), ``camera_segmentation_label`` 10 →
``panoptic_label_divisor`` 1, ``panoptic_label`` 2 (uint16 PNG),
``instance_id_to_global_id_mapping`` 3 → ``{local 1, global 2, is_tracked 3}``, ``sequence_id`` 4,
``num_cameras_covered`` 5 (uint8 PNG)), keeps the frames that carry camera segmentation labels
and writes the layout of :mod:`vpsbench.datasets.waymo` (that of CUPS's ``preprocess_waymo.py``)
under
``<root>/<split>/<context>/``, ``{i}`` = the record's index in its file:

* ``{i}_semantic.png`` (uint16 type = panoptic // the label's divisor), ``{i}_instance.png`` (uint16
  global instance id), ``{i}_image.png`` (RGB), ``{i}_cameras.png`` (uint8 num_cameras_covered,
  all 1 where the label has none) and ``{i}_tracked.png`` (uint8 is_tracked of each pixel's
  instance, 0 where there is none), for the FRONT camera;
* with ``cameras="all"`` also ``{i}_{camera}_{kind}.png`` for ``front_left``, ``front_right``,
  ``side_left`` and ``side_right``.

Instance ids follow Waymo's ``decode_multi_frame_panoptic_labels_from_segmentation_labels(
remap_to_global=True)`` over a frame's five cameras in panorama order, as CUPS calls it: each local
id with a mapping becomes its global id, offset by the largest global id of the sequences met
before it in that frame (no offset when, as in all published files, the cameras share one
sequence), and local ids without a mapping stay as they are (and are untracked). The JPEG is
decoded as TensorFlow's ``decode_jpeg`` decodes it by default — the decoder of Waymo's own tools
and of CUPS' preprocessing: libjpeg-turbo's fast integer DCT with fancy upsampling (through
``simplejpeg``; measured on the published test frame: identical to ``tf.io.decode_jpeg`` on all
five cameras, while libjpeg's accurate DCT, Pillow's and OpenCV's decoder, differs in 74–86 % of
the pixels by up to 8 grey levels).

Output is written to a staging folder under ``<root>/.vpsbench-prepare/`` and moved into place
when a whole file has converted, then a marker records the file as done: a failed file leaves
nothing behind, a finished file is not redone, a half-done one is redone from scratch, and the
output bytes do not depend on the number of worker processes.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import simplejpeg
from PIL import Image

from vpsbench.errors import InputError, VpsbenchError
from vpsbench.executors import start_pool_worker
from vpsbench.formats.atomic import atomic_write_text
from vpsbench.formats.png import _check_png_structure, _image_to_array, write_png
from vpsbench.formats.protowire import Message, WireError
from vpsbench.formats.tfrecord import RecordError, read_records

SPLITS = ("training", "validation")
CAMERA_CHOICES = ("front", "all")
#: ``CameraName.Name`` values of the five cameras, in panorama (left-to-right) order.
PANORAMA_ORDER = (4, 2, 1, 3, 5)
#: File-name part of each camera (FRONT has none: its files are the loader's ``{i}_{kind}.png``).
CAMERA_PARTS = {1: "", 2: "front_left_", 3: "front_right_", 4: "side_left_", 5: "side_right_"}
CAMERA_NAMES = {1: "FRONT", 2: "FRONT_LEFT", 3: "FRONT_RIGHT", 4: "SIDE_LEFT", 5: "SIDE_RIGHT"}
FRONT = 1
#: Version of the converter's output; a done marker of another version is redone.
FORMAT_VERSION = 1
WORK_FOLDER = ".vpsbench-prepare"


@dataclass(frozen=True)
class CameraLabel:
    """The ``CameraSegmentationLabel`` fields the conversion uses."""

    divisor: int
    panoptic_png: bytes
    mapping: tuple[tuple[int, int, bool], ...]
    sequence_id: str
    cameras_png: bytes


@dataclass(frozen=True)
class CameraImage:
    """One camera of a frame: its ``CameraName``, JPEG bytes and label (``None`` if unlabelled)."""

    camera: int
    jpeg: bytes
    label: CameraLabel | None


@dataclass(frozen=True)
class WaymoFrame:
    """The fields of a Waymo ``Frame`` message that the conversion uses."""

    context: str
    timestamp_micros: int
    images: tuple[CameraImage, ...]

    def labelled_cameras(self) -> list[int]:
        """The cameras with a camera segmentation label, by ``CameraName`` value."""
        return [image.camera for image in self.images if image.label is not None]


@dataclass(frozen=True)
class CameraMaps:
    """The decoded maps of one labelled camera, as written to disk."""

    image: npt.NDArray[np.uint8]
    semantic: npt.NDArray[np.uint16]
    instance: npt.NDArray[np.uint16]
    cameras: npt.NDArray[np.uint8]
    tracked: npt.NDArray[np.uint8]


def _camera_label(message: Message) -> CameraLabel | None:
    if not message.bytes(2):
        return None
    mapping = tuple(
        (entry.int32(1), entry.int32(2), entry.boolean(3)) for entry in message.messages(3)
    )
    return CameraLabel(
        divisor=message.int32(1),
        panoptic_png=message.bytes(2),
        mapping=mapping,
        sequence_id=message.string(4),
        cameras_png=message.bytes(5),
    )


def parse_frame(data: bytes) -> WaymoFrame:
    """Read a serialized ``Frame``; ``ValueError`` when the bytes are not a Waymo frame."""
    try:
        frame = Message(data)
        images = []
        for image in frame.messages(4):
            label = _camera_label(image.message(10)) if image.has(10) else None
            images.append(CameraImage(image.uint(1), image.bytes(2), label))
        context = frame.message(1).string(1)
        timestamp = frame.int64(2)
    except WireError as error:
        raise ValueError(f"not a Waymo Frame message ({error})") from None
    if not images or not context or not frame.has(2):
        missing = [
            name
            for name, present in (
                ("context name", bool(context)),
                ("timestamp", frame.has(2)),
                ("camera images", bool(images)),
            )
            if not present
        ]
        raise ValueError(f"not a Waymo Frame message (no {', '.join(missing)})")
    return WaymoFrame(context, timestamp, tuple(images))


def _decode_png(data: bytes, what: str) -> npt.NDArray[np.uint8] | npt.NDArray[np.uint16]:
    try:
        header = _check_png_structure(data)
        with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
            image.load()
            array = _image_to_array(image, header)
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise ValueError(f"{what}: {' '.join(str(error).split())}") from None
    if array.ndim != 2:
        raise ValueError(f"{what}: expected a single-channel PNG, got {header.description}")
    return array


def _decode_jpeg(data: bytes, camera: str) -> npt.NDArray[np.uint8]:
    """RGB pixels as ``tf.io.decode_jpeg``'s default gives them (fast DCT, fancy upsampling)."""
    try:
        rgb = simplejpeg.decode_jpeg(data, colorspace="RGB", fastdct=True, fastupsample=False)
    except (ValueError, OSError) as error:
        raise ValueError(f"{camera} image: {' '.join(str(error).split())}") from None
    return np.ascontiguousarray(rgb, dtype=np.uint8)


def _global_id_offsets(labels: Sequence[CameraLabel]) -> dict[str, int]:
    """Per sequence: the sum of the largest global ids of the sequences met before it."""
    largest: dict[str, int] = {}
    for label in labels:
        if label.mapping:
            top = max(global_id for _, global_id, _ in label.mapping)
            largest[label.sequence_id] = max(top, largest.get(label.sequence_id, top))
    offsets = {}
    cumulative = 0
    for sequence, top in largest.items():
        offsets[sequence] = cumulative
        cumulative += top
    return offsets


def _decode_label(
    label: CameraLabel, offset: int, camera: str
) -> tuple[npt.NDArray[np.int64], ...]:
    """(semantic, global instance, cameras covered, tracked) of one camera label."""
    if label.divisor <= 0:
        raise ValueError(f"{camera} label: panoptic_label_divisor is {label.divisor}, not > 0")
    panoptic = _decode_png(label.panoptic_png, f"{camera} panoptic label").astype(np.int64)
    semantic, local = np.divmod(panoptic, label.divisor)
    size = max(int(local.max()), max((lid for lid, _, _ in label.mapping), default=0)) + 1
    global_ids = np.arange(size, dtype=np.int64)
    tracked_ids = np.zeros(size, dtype=np.int64)
    for local_id, global_id, is_tracked in label.mapping:
        if local_id < 0:
            raise ValueError(f"{camera} label: negative local instance id {local_id}")
        global_ids[local_id] = global_id + offset
        tracked_ids[local_id] = int(is_tracked)
    instance = global_ids[local]
    tracked = tracked_ids[local]
    if label.cameras_png:
        cameras = _decode_png(label.cameras_png, f"{camera} num_cameras_covered").astype(np.int64)
        if cameras.shape != panoptic.shape:
            raise ValueError(
                f"{camera} label: num_cameras_covered is {cameras.shape[1]}x{cameras.shape[0]}, "
                f"the panoptic label {panoptic.shape[1]}x{panoptic.shape[0]}"
            )
    else:
        cameras = np.ones_like(panoptic)
    return semantic, instance, cameras, tracked


def decode_frame(frame: WaymoFrame, cameras: Sequence[int] = (FRONT,)) -> dict[int, CameraMaps]:
    """Decode the image and label maps of ``cameras``; ``ValueError`` names what is wrong."""
    by_camera = {image.camera: image for image in frame.images}
    ordered = [by_camera[c].label for c in PANORAMA_ORDER if c in by_camera]
    offsets = _global_id_offsets([label for label in ordered if label is not None])
    result = {}
    for camera in cameras:
        name = CAMERA_NAMES[camera]
        image = by_camera.get(camera)
        if image is None or image.label is None:
            raise ValueError(f"no {name} camera in this frame")
        rgb = _decode_jpeg(image.jpeg, name)
        offset = offsets.get(image.label.sequence_id, 0)
        semantic, instance, covered, tracked = _decode_label(image.label, offset, name)
        if rgb.shape[:2] != semantic.shape:
            raise ValueError(
                f"{name} image is {rgb.shape[1]}x{rgb.shape[0]}, its label "
                f"{semantic.shape[1]}x{semantic.shape[0]}"
            )
        for values, what, limit in (
            (semantic, "semantic type", 0xFFFF),
            (instance, "instance id", 0xFFFF),
            (covered, "num_cameras_covered", 0xFF),
        ):
            if int(values.min()) < 0 or int(values.max()) > limit:
                raise ValueError(
                    f"{name} label: {what} {int(values.min())}..{int(values.max())} does not fit "
                    f"the {limit.bit_length()}-bit png"
                )
        result[camera] = CameraMaps(
            image=rgb,
            semantic=semantic.astype(np.uint16),
            instance=instance.astype(np.uint16),
            cameras=covered.astype(np.uint8),
            tracked=tracked.astype(np.uint8),
        )
    return result


# -- conversion of one file -------------------------------------------------------------------


@dataclass(frozen=True)
class FileOutcome:
    """What converting one TFRecord file gave: frames written, or the one-line error."""

    source: str
    frames: int = 0
    skipped: bool = False
    error: str | None = None


def _work_dir(root: Path, kind: str, split: str) -> Path:
    return root / WORK_FOLDER / kind / split


def marker_path(root: Path, split: str, source: Path) -> Path:
    """The done marker of a converted TFRecord file."""
    return _work_dir(root, "done", split) / f"{source.name}.json"


def _source_identity(source: Path, cameras: str) -> dict[str, object]:
    stat = source.stat()
    return {
        "format_version": FORMAT_VERSION,
        "source": source.name,
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "cameras": cameras,
    }


def is_done(root: Path, split: str, source: Path, cameras: str) -> bool:
    """Whether ``source`` was converted with these settings and all its files are still there."""
    try:
        record = json.loads(marker_path(root, split, source).read_text(encoding="utf-8"))
        identity = _source_identity(source, cameras)
    except (OSError, ValueError):
        return False
    if not isinstance(record, dict) or any(record.get(k) != v for k, v in identity.items()):
        return False
    files = record.get("files")
    return isinstance(files, list) and all((root / split / str(f)).is_file() for f in files)


def _frame_files(
    frame_index: int, maps: dict[int, CameraMaps]
) -> list[tuple[str, npt.NDArray[np.uint8] | npt.NDArray[np.uint16]]]:
    files: list[tuple[str, npt.NDArray[np.uint8] | npt.NDArray[np.uint16]]] = []
    for camera, decoded in maps.items():
        prefix = f"{frame_index}_{CAMERA_PARTS[camera]}"
        files += [
            (f"{prefix}image.png", decoded.image),
            (f"{prefix}semantic.png", decoded.semantic),
            (f"{prefix}instance.png", decoded.instance),
            (f"{prefix}cameras.png", decoded.cameras),
            (f"{prefix}tracked.png", decoded.tracked),
        ]
    return files


def _convert_records(source: Path, staging: Path, cameras: str) -> tuple[str, list[list[int]]]:
    """Write every labelled frame of ``source`` under ``staging/<context>``; return both."""
    wanted = (FRONT,) if cameras == "front" else PANORAMA_ORDER
    context = ""
    frames: list[list[int]] = []
    count = 0
    for index, data in read_records(source):
        count = index + 1
        try:
            frame = parse_frame(data)
        except ValueError as error:
            raise RecordError(source, index, str(error)) from None
        if context and frame.context != context:
            raise RecordError(
                source, index, f"context {frame.context} differs from the file's {context}"
            )
        context = frame.context
        labelled = frame.labelled_cameras()
        if not labelled:
            continue
        unlabelled = [
            CAMERA_NAMES.get(i.camera, str(i.camera)) for i in frame.images if i.label is None
        ]
        if unlabelled or FRONT not in labelled:
            missing = ", ".join(unlabelled) or "FRONT"
            raise RecordError(
                source, index, f"frame without camera segmentation labels for {missing}"
            )
        try:
            maps = decode_frame(frame, wanted)
        except ValueError as error:
            raise RecordError(source, index, str(error)) from None
        for name, values in _frame_files(index, maps):
            write_png(staging / context / name, values)
        frames.append([index, frame.timestamp_micros])
    if not frames:
        if count == 0:
            raise InputError(source, "no records (empty TFRecord file)")
        if count == 1:
            raise RecordError(source, 0, "frame without camera segmentation labels")
        raise InputError(source, f"records 0-{count - 1}: no frame has camera segmentation labels")
    return context, frames


def convert_file(source: Path, root: Path, split: str, cameras: str) -> FileOutcome:
    """Convert one TFRecord file; on any problem leave nothing behind and return the error."""
    staging = _work_dir(root, "staging", split) / source.name
    shutil.rmtree(staging, ignore_errors=True)
    try:
        identity = _source_identity(source, cameras)
        context, frames = _convert_records(source, staging, cameras)
        written = sorted(path.name for path in (staging / context).iterdir())
        target = root / split / context
        target.mkdir(parents=True, exist_ok=True)
        for name in written:
            os.replace(staging / context / name, target / name)
        record = {**identity, "context": context, "frames": frames}
        record["files"] = [f"{context}/{name}" for name in written]
        atomic_write_text(marker_path(root, split, source), json.dumps(record, indent=1) + "\n")
    except VpsbenchError as error:
        return FileOutcome(str(source), error=str(error))
    except OSError as error:
        return FileOutcome(str(source), error=f"{source}: {error}")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return FileOutcome(str(source), frames=len(frames))


def _convert_job(source: str, root: str, split: str, cameras: str) -> FileOutcome:
    """Pool entry point."""
    return convert_file(Path(source), Path(root), split, cameras)


def tfrecord_files(source: Path) -> list[Path]:
    """The ``*.tfrecord`` files of a folder, sorted by name (or the file itself)."""
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise InputError(source, "no such folder (expected a folder of *.tfrecord files)")
    files = sorted(path for path in source.glob("*.tfrecord") if path.is_file())
    if not files:
        raise InputError(source, "no *.tfrecord files in this folder")
    return files


def prepare_from_tfrecords(
    source: Path,
    root: Path,
    *,
    split: str = "validation",
    cameras: str = "front",
    workers: int = 1,
    progress: Callable[[FileOutcome], None] | None = None,
) -> list[FileOutcome]:
    """Convert every TFRecord file of ``source`` into ``root/split``; one outcome per file.

    Files already converted with the same settings are skipped; failed files are reported in
    their outcome (the others still convert). ``progress`` is called as each file finishes.
    """
    if split not in SPLITS:
        raise VpsbenchError(f"waymo --split must be one of {', '.join(SPLITS)}, got {split!r}")
    if cameras not in CAMERA_CHOICES:
        raise VpsbenchError(f"--cameras must be front or all, got {cameras!r}")
    files = tfrecord_files(source)
    outcomes: dict[str, FileOutcome] = {}
    pending = []
    for path in files:
        if is_done(root, split, path, cameras):
            outcomes[str(path)] = FileOutcome(str(path), skipped=True)
            if progress is not None:
                progress(outcomes[str(path)])
        else:
            pending.append(path)
    if workers <= 1 or len(pending) <= 1:
        results = (convert_file(path, root, split, cameras) for path in pending)
        for outcome in results:
            outcomes[outcome.source] = outcome
            if progress is not None:
                progress(outcome)
    else:
        with ProcessPoolExecutor(
            max_workers=min(workers, len(pending)), initializer=start_pool_worker
        ) as pool:
            futures = [
                pool.submit(_convert_job, str(path), str(root), split, cameras) for path in pending
            ]
            for future in as_completed(futures):
                outcome = future.result()
                outcomes[outcome.source] = outcome
                if progress is not None:
                    progress(outcome)
    shutil.rmtree(root / WORK_FOLDER / "staging", ignore_errors=True)
    return [outcomes[str(path)] for path in files]
