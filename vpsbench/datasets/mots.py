"""MOTSChallenge (Voigtlaender et al., CVPR 2019): pedestrian masks tracked over 4 MOT sequences.

On-disk layout (RWTH ``MOTSChallenge.zip``, ``shared/spec/datasets.md`` §4)::

    <root>/train/instances/<seq>/<frame:06d>.png    16-bit: class·1000 + instance, 0 background,
                                                    10000 ignore region; class 1 car, 2 pedestrian
    <root>/train/instances_txt/<seq>.txt            the same as RLE lines, read when a sequence
                                                    has no png folder
    <root>/train/images/<seq>/<frame:06d>.jpg

Frames are 1-based and all annotated: 0002/0005/0009/0011 have 600/837/525/900 frames at
1920x1080, except 0005 at 640x480. The only split is ``train`` (the test ground truth is
withheld). Predictions: ``<pred_root>/<seq>/<frame:06d>.png``.

The evaluation space has two classes, 0 background (stuff) and 1 person (thing). A pedestrian's
track id is ``obj_id % 1000 + 1`` (``2005`` → person, instance 6), the codecs' convention (as in
KITTI-STEP) so that an object numbered ``2000`` is a track and not crowd; a txt file where two
objects of one class share ``obj_id % 1000`` has that class's tracks numbered 1, 2, … instead, so
that they stay apart (:func:`~vpsbench.formats.mots.read_mots_txt`). Protocol option ``mode``:

* ``cups`` (default): CUPS's convention (``mots2cs_class_mapping``): everything that is not a
  pedestrian — background, cars *and the 10000 ignore region* — is background.
* ``official``: as MOTS evaluation: the ignore region is void (255); cars are background.

The png/txt reading, frame listing and checks are shared with KITTI-MOTS
(:mod:`vpsbench.datasets.kitti_mots`) through :class:`MotsLayoutDataset`.
"""

from __future__ import annotations

import abc
import re
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
    DatasetNotFoundError,
    LabelSpace,
    Problem,
    ProtocolOption,
)
from vpsbench.datasets.common import (
    check_image,
    check_split,
    format_ids,
    image_size,
    invalid_ids,
    lookup_table,
    native_to_evaluation_frame,
    numbered_files,
    problem,
    require_regular_file,
    require_root,
    sequence_frames,
    size_text,
    subdirectories,
)
from vpsbench.datasets.registry import register_dataset
from vpsbench.errors import InputError
from vpsbench.formats.mots import (
    MOTS_IGNORE_CLASS,
    MotsObject,
    mots_objects_to_frame,
    read_mots_png,
    read_mots_txt,
)
from vpsbench.video import FrameRef, PanopticFrame, SequenceRef

#: MOTS class ids and their names (``class_id`` of the png value ``class·1000 + instance``).
MOTS_CLASS_NAMES: dict[int, str] = {0: "background", 1: "car", 2: "pedestrian", 10: "ignore region"}
#: Largest MOTS class id, which sizes the class lookup table.
_MAX_MOTS_CLASS = MOTS_IGNORE_CLASS

_PNG_FILE = re.compile(r"(\d+)\.png")


class MotsLayoutDataset(Dataset):
    """A dataset in the MOTS layout: ``instances/<seq>/<frame>.png`` or ``instances_txt/<seq>.txt``.

    Subclasses give the directory that holds ``instances``/``instances_txt``, the image folder,
    the official sequences with their frame counts, the first frame number and the class table;
    this class lists frames, decodes png or txt ground truth and verifies both.
    """

    first_frame: ClassVar[int]
    image_extension: ClassVar[str]
    layout: ClassVar[str]

    def __init__(self, root: str | Path, protocol: Mapping[str, str] | None = None) -> None:
        super().__init__(root, protocol)
        self._txt_cache: dict[Path, dict[int, list[MotsObject]]] = {}

    # -- what subclasses provide ----------------------------------------------------------------
    @abc.abstractmethod
    def annotation_dir(self, split: str) -> Path:
        """The directory that holds ``instances/`` and ``instances_txt/`` for ``split``."""

    @abc.abstractmethod
    def image_dir(self, split: str, sequence: str) -> Path:
        """The folder of a sequence's images."""

    @abc.abstractmethod
    def official_sequences(self, split: str) -> dict[str, int]:
        """The official sequences of ``split`` and their frame counts."""

    @abc.abstractmethod
    def native_mapping(self) -> dict[int, int]:
        """MOTS class id (0, 1, 2, 10) → class id in the evaluation space."""

    def expected_resolution(self, sequence: str) -> tuple[int, int] | None:
        """(height, width) of a sequence when it is known, else ``None``."""
        return None

    def official_split(self, split: str) -> Mapping[str, int] | None:
        """The official sequences of the split with their frame counts (as ``verify`` checks)."""
        return self.official_sequences(split)

    def known_sequences(self) -> set[str]:
        """Every official sequence of every split."""
        return {name for split in self.facts.splits for name in self.official_sequences(split)}

    # -- layout ---------------------------------------------------------------------------------
    def _png_root(self, split: str) -> Path:
        return self.annotation_dir(split) / "instances"

    def _txt_root(self, split: str) -> Path:
        return self.annotation_dir(split) / "instances_txt"

    def _require_annotations(self, split: str) -> None:
        check_split(self.name, split, self.facts.splits)
        require_root(self.root, self.name, self.layout)
        if not (self._png_root(split).is_dir() or self._txt_root(split).is_dir()):
            raise DatasetNotFoundError(
                f"{self.name}: expected the directory {self._png_root(split)} or "
                f"{self._txt_root(split)} (layout: {self.layout})"
            )

    def _sequence_names_on_disk(self, split: str) -> list[str]:
        """Names of the png folders and txt files under the annotation directory."""
        names = set()
        if self._png_root(split).is_dir():
            names |= {path.name for path in subdirectories(self._png_root(split))}
        if self._txt_root(split).is_dir():
            names |= {path.stem for path in self._txt_root(split).glob("*.txt")}
        return sorted(names)

    def _in_split(self, split: str, sequence: str) -> bool:
        """Whether a sequence on disk belongs to ``split`` (every one, unless overridden)."""
        return True

    def _uses_png(self, split: str, sequence: str) -> bool:
        return (self._png_root(split) / sequence).is_dir()

    def _txt_path(self, split: str, sequence: str) -> Path:
        return self._txt_root(split) / f"{sequence}.txt"

    def _label_path(self, split: str, frame: FrameRef) -> Path:
        if self._uses_png(split, frame.sequence):
            return self._png_root(split) / frame.sequence / f"{frame.name}.png"
        return self._txt_path(split, frame.sequence)

    def image_path(self, split: str, frame: FrameRef) -> Path | None:
        """The image of a frame."""
        return self.image_dir(split, frame.sequence) / f"{frame.name}.{self.image_extension}"

    def _image_numbers(self, split: str, sequence: str) -> dict[int, Path]:
        image_dir = self.image_dir(split, sequence)
        if not image_dir.is_dir():
            return {}
        pattern = re.compile(rf"(\d+)\.{re.escape(self.image_extension)}")
        return numbered_files(image_dir, pattern)[0]

    def _frame_names(self, split: str, sequence: str) -> list[str]:
        """Frame names in temporal order: png stems, or for txt the images / official count."""
        if self._uses_png(split, sequence):
            sequence_dir = self._png_root(split) / sequence
            numbered = sequence_frames(sequence_dir, _PNG_FILE, first=self.first_frame)
            return [path.stem for path in numbered.values()]
        images = self._image_numbers(split, sequence)
        if images:
            return [path.stem for path in images.values()]
        count = self.official_sequences(split).get(sequence)
        if count is None:
            objects = self._read_txt(self._txt_path(split, sequence))
            count = max(objects, default=self.first_frame - 1) - self.first_frame + 1
        return [f"{number:06d}" for number in range(self.first_frame, self.first_frame + count)]

    def sequences(self, split: str) -> list[SequenceRef]:
        """The split's sequences on disk (png folders or txt files) with frames in order."""
        self._require_annotations(split)
        refs = []
        for sequence in self._sequence_names_on_disk(split):
            if not self._in_split(split, sequence):
                continue
            names = self._frame_names(split, sequence)
            if not names:
                raise InputError(self._txt_path(split, sequence), "sequence holds no frames")
            frames = tuple(FrameRef(sequence, name, i) for i, name in enumerate(names))
            refs.append(SequenceRef(sequence, frames))
        if not refs:
            raise DatasetNotFoundError(
                f"{self.name}: no sequence of split {split!r} under {self.annotation_dir(split)} "
                f"(layout: {self.layout})"
            )
        return refs

    # -- decoding -------------------------------------------------------------------------------
    def _read_txt(self, path: Path) -> dict[int, list[MotsObject]]:
        if path not in self._txt_cache:
            self._txt_cache[path] = read_mots_txt(path)
        return self._txt_cache[path]

    def _txt_frame_size(
        self, split: str, frame: FrameRef, objects: list[MotsObject]
    ) -> tuple[int, int]:
        """The size of a txt frame: its lines, other frames' lines, the resolution or the image."""
        path = self._txt_path(split, frame.sequence)
        for candidates in (objects, *self._read_txt(path).values()):
            if candidates:
                return candidates[0].height, candidates[0].width
        resolution = self.expected_resolution(frame.sequence)
        if resolution is not None:
            return resolution
        image = self.image_path(split, frame)
        if image is not None and image.exists():
            return image_size(image)
        raise InputError(path, f"cannot tell the size of frame {frame.name}: no objects, no image")

    def load_native(self, split: str, frame: FrameRef) -> PanopticFrame:
        """The frame as stored: semantic = MOTS class, instance = obj_id % 1000 + 1 (0 = none)."""
        if self._uses_png(split, frame.sequence):
            return read_mots_png(require_regular_file(self._label_path(split, frame)))
        path = self._txt_path(split, frame.sequence)
        if not frame.name.isdigit():
            raise InputError(path, f"frame name {frame.name!r} is not a frame number")
        objects = self._read_txt(path).get(int(frame.name), [])
        height, width = self._txt_frame_size(split, frame, objects)
        return mots_objects_to_frame(objects, height, width, source=str(path))

    def _class_table(self) -> npt.NDArray[np.int32]:
        return lookup_table(self.native_mapping(), _MAX_MOTS_CLASS + 1)

    def load_ground_truth(self, split: str, frame: FrameRef) -> PanopticFrame:
        """Map the MOTS classes into the evaluation space; things keep their instance ids."""
        native = self.load_native(split, frame)
        return native_to_evaluation_frame(
            native,
            self._class_table(),
            self.label_space().thing_classes,
            self._label_path(split, frame),
        )

    def class_mapping(self) -> Sequence[ClassMappingRow]:
        """Each MOTS class → its evaluation class."""
        names = self.label_space().class_names
        return [
            ClassMappingRow(
                native_id,
                MOTS_CLASS_NAMES[native_id],
                target_id,
                "void" if target_id == IGNORE_LABEL else names[target_id],
            )
            for native_id, target_id in self.native_mapping().items()
        ]

    # -- verify ---------------------------------------------------------------------------------
    def verify(self, split: str) -> list[Problem]:
        """Missing/extra sequences and frames, unreadable files, bad ids and sizes."""
        self._require_annotations(split)
        problems: list[Problem] = []
        png_root, txt_root = self._png_root(split), self._txt_root(split)
        if png_root.is_dir():
            problems += [
                Problem(str(path), "unexpected file")
                for path in sorted(png_root.iterdir())
                if not path.is_dir()
            ]
        if txt_root.is_dir():
            problems += [
                Problem(str(path), "unexpected file")
                for path in sorted(txt_root.iterdir())
                if not (path.is_file() and path.suffix == ".txt")
            ]
        on_disk = self._sequence_names_on_disk(split)
        official = self.official_sequences(split)
        for sequence, count in official.items():
            if sequence not in on_disk:
                problems.append(
                    Problem(
                        str(self._png_root(split) / sequence),
                        f"missing sequence ({count} frames; no png folder and no txt file)",
                    )
                )
        known = self.known_sequences()
        for sequence in on_disk:
            if sequence not in known:
                problems.append(
                    Problem(str(self._png_root(split) / sequence), "not an official sequence")
                )
            elif sequence in official:
                problems += self._verify_sequence(split, sequence, official[sequence])
        return problems

    def _verify_sequence(self, split: str, sequence: str, count: int) -> list[Problem]:
        expected = range(self.first_frame, self.first_frame + count)
        image_dir = self.image_dir(split, sequence)
        problems: list[Problem] = []
        if not image_dir.is_dir():
            problems.append(Problem(str(image_dir), "missing image folder"))
        frames: dict[int, PanopticFrame] = {}
        if self._uses_png(split, sequence):
            sequence_dir = self._png_root(split) / sequence
            numbered, others = numbered_files(sequence_dir, _PNG_FILE)
            problems += [Problem(str(path), "unexpected file") for path in others]
            problems += [
                Problem(str(sequence_dir / f"{number:06d}.png"), "missing frame")
                for number in expected
                if number not in numbered
            ]
            for number, path in numbered.items():
                if number not in expected:
                    problems.append(Problem(str(path), f"frame outside {_range_text(expected)}"))
                try:
                    frames[number] = read_mots_png(path)
                except InputError as error:
                    problems.append(problem(error))
            labels = {number: path for number, path in numbered.items()}
        else:
            problems += self._decode_txt(split, sequence, expected, frames)
            path = self._txt_path(split, sequence)
            labels = {number: path for number in frames}
        problems += self._check_frames(split, sequence, frames, labels, image_dir)
        return problems

    def _decode_txt(
        self, split: str, sequence: str, expected: range, frames: dict[int, PanopticFrame]
    ) -> list[Problem]:
        """Decode every frame of a txt sequence into ``frames``; return the problems."""
        path = self._txt_path(split, sequence)
        try:
            objects_by_frame = self._read_txt(path)
        except InputError as error:
            return [problem(error)]
        problems = [
            Problem(str(path), f"frame {number} outside {_range_text(expected)}")
            for number in sorted(objects_by_frame)
            if number not in expected
        ]
        for number in expected:
            frame = FrameRef(sequence, f"{number:06d}", number - self.first_frame)
            try:
                frames[number] = self.load_native(split, frame)
            except InputError as error:
                problems.append(problem(error))
        return problems

    def _check_frames(
        self,
        split: str,
        sequence: str,
        frames: dict[int, PanopticFrame],
        labels: dict[int, Path],
        image_dir: Path,
    ) -> list[Problem]:
        """Class ids, sizes (known resolution or one per sequence) and the images."""
        problems: list[Problem] = []
        table = self._class_table()
        expected_shape = self.expected_resolution(sequence)
        images = self._image_numbers(split, sequence) if image_dir.is_dir() else {}
        for number, native in sorted(frames.items()):
            path = str(labels[number])
            where = "" if labels[number].suffix == ".png" else f"frame {number}: "
            bad = invalid_ids(native.semantic, table)
            if bad:
                problems.append(
                    Problem(path, f"{where}class ids {format_ids(bad)} are not 0, 1, 2 or 10")
                )
            expected_shape = expected_shape or native.shape
            if native.shape != expected_shape:
                size = f"size {size_text(native.shape)}, expected {size_text(expected_shape)}"
                problems.append(Problem(path, f"{where}{size}"))
            if image_dir.is_dir():
                image = images.get(number, image_dir / f"{number:06d}.{self.image_extension}")
                problems += check_image(image, native.shape)
        return problems


def _range_text(frames: range) -> str:
    """``frames 1..600`` for messages."""
    return f"frames {frames.start}..{frames.stop - 1}"


#: MOTSChallenge train sequences and frame counts (mots_tools ``val_MOTSchallenge.seqmap``).
MOTSCHALLENGE_SEQUENCES: dict[str, int] = {"0002": 600, "0005": 837, "0009": 525, "0011": 900}
#: (height, width) of each MOTSChallenge sequence.
MOTSCHALLENGE_RESOLUTIONS: dict[str, tuple[int, int]] = {
    "0002": (1080, 1920),
    "0005": (480, 640),
    "0009": (1080, 1920),
    "0011": (1080, 1920),
}

#: MOTS class → evaluation class per ``mode``: CUPS folds everything but pedestrians into
#: background; the official mode keeps the ignore region void.
MOTSCHALLENGE_MAPPINGS: dict[str, dict[int, int]] = {
    "cups": {0: 0, 1: 0, 2: 1, MOTS_IGNORE_CLASS: 0},
    "official": {0: 0, 1: 0, 2: 1, MOTS_IGNORE_CLASS: IGNORE_LABEL},
}


@register_dataset
class MotsChallenge(MotsLayoutDataset):
    """MOTSChallenge pedestrians in a background/person space (CUPS or official ignore rule)."""

    name = "mots"
    description = "MOTSChallenge: tracked pedestrian masks on 4 MOT sequences (16-bit MOTS pngs)"
    first_frame = 1
    image_extension = "jpg"
    layout = (
        "train/instances/<seq>/<frame:06d>.png (or train/instances_txt/<seq>.txt) and "
        "train/images/<seq>/<frame:06d>.jpg, frames 1-based"
    )
    facts = DatasetFacts(
        splits=("train",),
        resolution="1920x1080 (0005: 640x480)",
        annotated_frames="every frame; 0002/0005/0009/0011 = 600/837/525/900 (2862)",
        layout=layout,
        citation="Voigtlaender et al., MOTS: Multi-Object Tracking and Segmentation, CVPR 2019",
        extra={"evaluated": "pedestrians only (MOTSChallenge evaluates no cars)"},
    )
    protocol_options: ClassVar[Mapping[str, ProtocolOption]] = {
        "mode": ProtocolOption(
            "cups",
            ("cups", "official"),
            "cups: ignore region 10000 and cars → background (CUPS); official: ignore region → "
            "void, cars → background",
        ),
    }

    def label_space(self) -> LabelSpace:
        """Background (stuff) and person (thing)."""
        return LabelSpace("mots", ("background", "person"), frozenset({1}))

    def native_mapping(self) -> dict[int, int]:
        """MOTS class → background/person under the chosen ``mode``."""
        return MOTSCHALLENGE_MAPPINGS[self.protocol["mode"]]

    def annotation_dir(self, split: str) -> Path:
        """``<root>/train``."""
        return self.root / split

    def image_dir(self, split: str, sequence: str) -> Path:
        """``<root>/train/images/<seq>``."""
        return self.root / split / "images" / sequence

    def official_sequences(self, split: str) -> dict[str, int]:
        """The four annotated MOTSChallenge sequences."""
        return MOTSCHALLENGE_SEQUENCES

    def expected_resolution(self, sequence: str) -> tuple[int, int] | None:
        """1080x1920, or 480x640 for 0005."""
        return MOTSCHALLENGE_RESOLUTIONS.get(sequence)
