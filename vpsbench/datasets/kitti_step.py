"""KITTI-STEP (Weber et al., NeurIPS 2021): dense video panoptic ground truth on KITTI tracking.

On-disk layout (as DeepLab2 documents it, ``shared/spec/datasets.md`` §2)::

    <root>/panoptic_maps/{train,val}/<seq:04d>/<frame:06d>.png   STEP RGB: R = trainId (255 void),
                                                                   G*256+B = instance (0 = none)
    <root>/images/{train,val}/<seq:04d>/<frame:06d>.png          KITTI tracking image_02

Frames are 0-based and every frame is annotated. Official val = 9 sequences (2981 frames), train =
12 sequences (5027 frames); the test ground truth is withheld. Resolution is about 1242x375 and
varies slightly per sequence, so ``verify`` only checks that a label and its image agree and that
all frames of a sequence share one size. Predictions: ``<pred_root>/<seq>/<frame:06d>.png``.

Native classes are the 19 Cityscapes trainIds, so ``label_space=cs19`` is the identity and
``cs27`` maps trainId → labelId − 7. Only person (11) and car (13) carry instance ids (from
KITTI-MOTS, +1); every other class, rider and truck included, is semantic-only.

Protocol options:

* ``things`` — ``step`` (default): things are {person, car}, as the official STEP/DeepLab2
  evaluation; ``cityscapes``: things are all Cityscapes things 11..18, so rider, truck, bus, train,
  motorcycle and bicycle pixels (which never carry an instance id) are all crowd.
* ``label_space`` — ``cs19`` (default) or ``cs27``; in ``cs27`` the indices without a trainId
  (parking, rail track, guard rail, bridge, tunnel, polegroup, caravan, trailer) are not evaluated.
"""

from __future__ import annotations

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
    check_split,
    format_ids,
    invalid_ids,
    lookup_table,
    native_to_evaluation_frame,
    numbered_files,
    problem,
    require_directory,
    require_regular_file,
    require_root,
    sequence_frames,
    size_text,
    subdirectories,
)
from vpsbench.datasets.registry import register_dataset
from vpsbench.errors import InputError
from vpsbench.formats.png import read_rgb_codes
from vpsbench.formats.step import decode_step_codes, read_step_png
from vpsbench.statistics import CodedFrame
from vpsbench.video import FrameRef, LabelMap, PanopticFrame, SequenceRef

#: Frame counts of the KITTI tracking sequences by split (mots_tools train/val seqmaps; the
#: train counts sum to the 5027 frames of DeepLab2's KITTI_STEP_INFORMATION).
KITTI_SEQUENCE_FRAMES: dict[str, dict[str, int]] = {
    "train": {
        "0000": 154,
        "0001": 447,
        "0003": 144,
        "0004": 314,
        "0005": 297,
        "0009": 803,
        "0011": 373,
        "0012": 78,
        "0015": 376,
        "0017": 145,
        "0019": 1059,
        "0020": 837,
    },
    "val": {
        "0002": 233,
        "0006": 270,
        "0007": 800,
        "0008": 390,
        "0010": 294,
        "0013": 340,
        "0014": 106,
        "0016": 209,
        "0018": 339,
    },
}

#: The classes STEP gives instance ids: person and car.
STEP_THINGS: frozenset[int] = frozenset({11, 13})

LAYOUT = (
    "panoptic_maps/{train,val}/<seq:04d>/<frame:06d>.png (STEP RGB) and "
    "images/{train,val}/<seq:04d>/<frame:06d>.png"
)

_FRAME_FILE = re.compile(r"(\d+)\.png")


@register_dataset
class KittiStep(Dataset):
    """KITTI-STEP ground truth in Cityscapes trainIds (identity) or the 27-class space."""

    name = "kitti-step"
    description = "KITTI-STEP: dense video panoptic labels on KITTI tracking (STEP RGB pngs)"
    facts = DatasetFacts(
        splits=("train", "val"),
        resolution="about 1242x375 (varies slightly per sequence)",
        annotated_frames="every frame; val 9 sequences / 2981 frames, train 12 / 5027",
        layout=LAYOUT,
        citation="Weber et al., STEP: Segmenting and Tracking Every Pixel, NeurIPS 2021",
        extra={"official things": "person (11), car (13)", "void": "R = 255"},
    )
    protocol_options: ClassVar[Mapping[str, ProtocolOption]] = {
        "things": ProtocolOption(
            "step",
            ("step", "cityscapes"),
            "step: things = person, car (official STEP); cityscapes: things 11..18, where rider, "
            "truck, bus, train, motorcycle and bicycle have no instance ids and are all crowd",
        ),
        "label_space": ProtocolOption(
            "cs19",
            LABEL_SPACE_NAMES,
            "cs19: Cityscapes trainIds (identity); cs27: labelId − 7 (unreachable classes not "
            "evaluated)",
        ),
    }

    def label_space(self) -> LabelSpace:
        """Cityscapes space with the thing set chosen by the ``things`` option."""
        things = STEP_THINGS if self.protocol["things"] == "step" else CS19_THINGS
        if self.protocol["label_space"] == "cs27":
            return cs27_label_space_from_train_ids(things)
        return cs19_label_space(things)

    def class_mapping(self) -> Sequence[ClassMappingRow]:
        """Each trainId (and void) → its id in the chosen label space."""
        mapping = train_id_mapping(self.protocol["label_space"])
        space = self.label_space()
        rows = []
        for train_id, target_id in mapping.items():
            native_name = "void" if train_id == IGNORE_LABEL else CS19_NAMES[train_id]
            notes = []
            if self.protocol["label_space"] == "cs27" and target_id != IGNORE_LABEL:
                notes.append(CS27_NAMES[target_id])
            if target_id in space.thing_classes:
                notes.append("thing" if train_id in STEP_THINGS else "thing, never tracked: crowd")
            rows.append(ClassMappingRow(train_id, native_name, target_id, "; ".join(notes)))
        return rows

    # -- layout ---------------------------------------------------------------------------------
    def _label_split_dir(self, split: str) -> Path:
        check_split(self.name, split, self.facts.splits)
        require_root(self.root, self.name, LAYOUT)
        return require_directory(self.root / "panoptic_maps" / split, self.name, LAYOUT)

    def _label_path(self, split: str, frame: FrameRef) -> Path:
        return self.root / "panoptic_maps" / split / frame.sequence / f"{frame.name}.png"

    def image_path(self, split: str, frame: FrameRef) -> Path | None:
        """The KITTI tracking image of a frame."""
        return self.root / "images" / split / frame.sequence / f"{frame.name}.png"

    def sequences(self, split: str) -> list[SequenceRef]:
        """Every sequence folder of the split with its frames (0-based, no gap) in numeric order."""
        refs = []
        for sequence_dir in subdirectories(self._label_split_dir(split)):
            numbered = sequence_frames(sequence_dir, _FRAME_FILE, first=0)
            frames = tuple(
                FrameRef(sequence_dir.name, path.stem, index)
                for index, path in enumerate(numbered.values())
            )
            refs.append(SequenceRef(sequence_dir.name, frames))
        return refs

    def official_split(self, split: str) -> Mapping[str, int] | None:
        """The KITTI tracking sequences of the split and their frame counts."""
        return KITTI_SEQUENCE_FRAMES.get(split)

    def _class_table(self) -> npt.NDArray[np.int32]:
        return lookup_table(train_id_mapping(self.protocol["label_space"]), IGNORE_LABEL + 1)

    def load_ground_truth(self, split: str, frame: FrameRef) -> PanopticFrame:
        """Decode the STEP png and map it into the chosen label space."""
        path = require_regular_file(self._label_path(split, frame))
        native = read_step_png(path)
        return native_to_evaluation_frame(
            native, self._class_table(), self.label_space().thing_classes, path
        )

    def load_ground_truth_codes(self, split: str, frame: FrameRef) -> CodedFrame | None:
        """The STEP png's pixels as codes; decoding maps them like :meth:`load_ground_truth`."""
        if type(self).load_ground_truth is not KittiStep.load_ground_truth:
            return None  # a subclass reads its ground truth differently
        path = require_regular_file(self._label_path(split, frame))
        table, things = self._class_table(), self.label_space().thing_classes

        def decode(codes: npt.NDArray[np.uint32]) -> tuple[LabelMap, LabelMap]:
            mapped = native_to_evaluation_frame(decode_step_codes(codes), table, things, path)
            return mapped.semantic[0], mapped.instance[0]

        return CodedFrame(read_rgb_codes(path, "STEP"), decode)

    # -- verify ---------------------------------------------------------------------------------
    def verify(self, split: str) -> list[Problem]:
        """Missing/extra sequences and frames, unreadable pngs, bad ids, size disagreements."""
        split_dir = self._label_split_dir(split)
        official = KITTI_SEQUENCE_FRAMES[split]
        problems: list[Problem] = []
        on_disk = {path.name: path for path in subdirectories(split_dir)}
        problems += [
            Problem(str(path), "unexpected file")
            for path in sorted(split_dir.iterdir())
            if not path.is_dir()
        ]
        for sequence, count in official.items():
            if sequence not in on_disk:
                problems.append(
                    Problem(str(split_dir / sequence), f"missing sequence ({count} frames)")
                )
        for sequence, sequence_dir in on_disk.items():
            if sequence not in official:
                problems.append(
                    Problem(str(sequence_dir), f"not an official {split} sequence of KITTI-STEP")
                )
                continue
            problems += self._verify_sequence(split, sequence_dir, official[sequence])
        return problems

    def _verify_sequence(self, split: str, sequence_dir: Path, count: int) -> list[Problem]:
        numbered, others = numbered_files(sequence_dir, _FRAME_FILE)
        problems = [Problem(str(path), "unexpected file") for path in others]
        problems += [
            Problem(str(sequence_dir / f"{number:06d}.png"), "missing frame")
            for number in range(count)
            if number not in numbered
        ]
        image_dir = self.root / "images" / split / sequence_dir.name
        if not image_dir.is_dir():
            problems.append(Problem(str(image_dir), "missing image folder"))
        table = self._class_table()
        sequence_shape: tuple[int, int] | None = None
        for number, path in numbered.items():
            if number >= count:
                problems.append(Problem(str(path), f"frame beyond the official {count} frames"))
            try:
                native = read_step_png(path)
            except InputError as error:
                problems.append(problem(error))
                continue
            problems += _check_step_ids(path, native, table)
            sequence_shape = sequence_shape or native.shape
            if native.shape != sequence_shape:
                problems.append(
                    Problem(
                        str(path),
                        f"size {size_text(native.shape)} differs from the sequence's "
                        f"{size_text(sequence_shape)}",
                    )
                )
            if image_dir.is_dir():
                problems += check_image(image_dir / path.name, native.shape)
        return problems


def _check_step_ids(
    path: Path, native: PanopticFrame, table: npt.NDArray[np.int32]
) -> list[Problem]:
    """Class ids outside trainIds/255 and instance ids on classes STEP never tracks."""
    problems = []
    bad_classes = invalid_ids(native.semantic, table)
    if bad_classes:
        problems.append(
            Problem(str(path), f"class ids {format_ids(bad_classes)} are not trainIds or 255")
        )
    untracked = ~np.isin(native.semantic, np.fromiter(STEP_THINGS, dtype=np.int32))
    stray = np.unique(native.semantic[untracked & (native.instance > 0)])
    if stray.size:
        problems.append(
            Problem(
                str(path),
                f"instance ids on classes {format_ids([int(c) for c in stray])} "
                "(STEP tracks only person 11 and car 13)",
            )
        )
    return problems
