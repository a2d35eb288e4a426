"""KITTI-MOTS (Voigtlaender et al., CVPR 2019): tracked car and pedestrian masks on KITTI tracking.

On-disk layout (``shared/spec/datasets.md`` §4)::

    <root>/instances/<seq:04d>/<frame:06d>.png    16-bit: class·1000 + instance; 0 background,
                                                  10000 ignore region; class 1 car, 2 pedestrian
    <root>/instances_txt/<seq:04d>.txt            the same as RLE lines, read when a sequence has
                                                  no png folder
    <root>/image_02/<seq:04d>/<frame:06d>.png     KITTI tracking left colour images

Frames are 0-based and all annotated. There is no split folder: ``train`` and ``val`` are the
KITTI-STEP sequence lists (12 train sequences / 5027 frames, 9 val / 2981). Resolution is about
1242x375 and varies per sequence, so ``verify`` checks that a sequence keeps one size and that
labels and images agree. Predictions: ``<pred_root>/<seq>/<frame:06d>.png``.

Evaluation space: 0 background (stuff), 1 car (thing), 2 person (thing); the track id is
``obj_id % 1000 + 1`` (``1003`` → car, instance 4; ``2000`` → person, instance 1), the MOTS
codecs' convention, which keeps objects numbered ``x000`` from turning into crowd (txt files whose
ids of one class collide modulo 1000 get their tracks numbered apart, as in the MOTS codec).

Protocol option ``ignore``: ``void`` (default) maps the 10000 ignore region to 255, as MOTS
evaluation does; ``background`` folds it into background as CUPS does for MOTSChallenge.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

from vpsbench.datasets.base import IGNORE_LABEL, DatasetFacts, LabelSpace, ProtocolOption
from vpsbench.datasets.kitti_step import KITTI_SEQUENCE_FRAMES
from vpsbench.datasets.mots import MotsLayoutDataset
from vpsbench.datasets.registry import register_dataset
from vpsbench.formats.mots import MOTS_IGNORE_CLASS

LAYOUT = (
    "instances/<seq:04d>/<frame:06d>.png (or instances_txt/<seq:04d>.txt) and "
    "image_02/<seq:04d>/<frame:06d>.png, frames 0-based"
)


@register_dataset
class KittiMots(MotsLayoutDataset):
    """KITTI-MOTS cars and pedestrians in a background/car/person space."""

    name = "kitti-mots"
    description = "KITTI-MOTS: tracked car and pedestrian masks on KITTI tracking (MOTS pngs)"
    first_frame = 0
    image_extension = "png"
    layout = LAYOUT
    facts = DatasetFacts(
        splits=("train", "val"),
        resolution="about 1242x375 (varies slightly per sequence)",
        annotated_frames="every frame; train 12 sequences / 5027 frames, val 9 / 2981",
        layout=LAYOUT,
        citation="Voigtlaender et al., MOTS: Multi-Object Tracking and Segmentation, CVPR 2019",
        extra={"splits": "the KITTI-STEP train/val sequence lists"},
    )
    protocol_options: ClassVar[Mapping[str, ProtocolOption]] = {
        "ignore": ProtocolOption(
            "void",
            ("void", "background"),
            "void: the 10000 ignore region → 255 (MOTS evaluation); background: → background",
        ),
    }

    def label_space(self) -> LabelSpace:
        """Background (stuff), car and person (things)."""
        return LabelSpace("kitti-mots", ("background", "car", "person"), frozenset({1, 2}))

    def native_mapping(self) -> dict[int, int]:
        """MOTS class → background/car/person; the ignore region by the ``ignore`` option."""
        ignore_target = IGNORE_LABEL if self.protocol["ignore"] == "void" else 0
        return {0: 0, 1: 1, 2: 2, MOTS_IGNORE_CLASS: ignore_target}

    def annotation_dir(self, split: str) -> Path:
        """The root itself: the splits share one ``instances/`` folder."""
        return self.root

    def image_dir(self, split: str, sequence: str) -> Path:
        """``<root>/image_02/<seq>``."""
        return self.root / "image_02" / sequence

    def official_sequences(self, split: str) -> dict[str, int]:
        """The KITTI-STEP sequence list of the split with frame counts."""
        return KITTI_SEQUENCE_FRAMES[split]

    def _in_split(self, split: str, sequence: str) -> bool:
        return sequence in KITTI_SEQUENCE_FRAMES[split]
