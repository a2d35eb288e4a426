"""The Cityscapes label tables as data: 34 labelIds, 19 trainIds and the 27-class convention.

Source: cityscapesScripts ``helpers/labels.py`` (see ``shared/spec/datasets.md`` §0). Every loader
whose evaluation space is Cityscapes builds its :class:`~vpsbench.datasets.base.LabelSpace` here,
so the class names and thing sets are written down once.

* **19 trainIds** (``cs19``): 0 road … 18 bicycle; things are 11..18; void is 255.
* **27 classes** (``cs27``, the unsupervised-segmentation convention used by CUPS): index =
  labelId − 7 for labelIds 7..33; labelIds 0..6 are void; things are 17..26.
"""

from __future__ import annotations

from dataclasses import dataclass

from vpsbench.datasets.base import IGNORE_LABEL, LabelSpace


@dataclass(frozen=True)
class CityscapesLabel:
    """One Cityscapes labelId with its trainId and 27-class index (255 where void)."""

    label_id: int
    name: str
    train_id: int
    cs27_id: int


def _label(label_id: int, name: str, train_id: int) -> CityscapesLabel:
    """A table row; the 27-class index is labelId − 7 for labelIds 7..33, else void."""
    cs27_id = label_id - 7 if label_id >= 7 else IGNORE_LABEL
    return CityscapesLabel(label_id, name, train_id, cs27_id)


_VOID = IGNORE_LABEL

#: The 34 Cityscapes labelIds 0..33 (``license plate`` = −1 is left out: it never reaches a map).
LABELS: tuple[CityscapesLabel, ...] = (
    _label(0, "unlabeled", _VOID),
    _label(1, "ego vehicle", _VOID),
    _label(2, "rectification border", _VOID),
    _label(3, "out of roi", _VOID),
    _label(4, "static", _VOID),
    _label(5, "dynamic", _VOID),
    _label(6, "ground", _VOID),
    _label(7, "road", 0),
    _label(8, "sidewalk", 1),
    _label(9, "parking", _VOID),
    _label(10, "rail track", _VOID),
    _label(11, "building", 2),
    _label(12, "wall", 3),
    _label(13, "fence", 4),
    _label(14, "guard rail", _VOID),
    _label(15, "bridge", _VOID),
    _label(16, "tunnel", _VOID),
    _label(17, "pole", 5),
    _label(18, "polegroup", _VOID),
    _label(19, "traffic light", 6),
    _label(20, "traffic sign", 7),
    _label(21, "vegetation", 8),
    _label(22, "terrain", 9),
    _label(23, "sky", 10),
    _label(24, "person", 11),
    _label(25, "rider", 12),
    _label(26, "car", 13),
    _label(27, "truck", 14),
    _label(28, "bus", 15),
    _label(29, "caravan", _VOID),
    _label(30, "trailer", _VOID),
    _label(31, "train", 16),
    _label(32, "motorcycle", 17),
    _label(33, "bicycle", 18),
)

#: Names of the 19 trainIds, indexed by trainId.
CS19_NAMES: tuple[str, ...] = tuple(
    label.name for label in sorted(LABELS, key=lambda row: row.train_id) if label.train_id != _VOID
)
#: trainIds of the thing classes (person … bicycle).
CS19_THINGS: frozenset[int] = frozenset(range(11, 19))

#: Names of the 27 classes, indexed by labelId − 7.
CS27_NAMES: tuple[str, ...] = tuple(label.name for label in LABELS if label.cs27_id != _VOID)
#: 27-class indices of the thing classes (person … bicycle, incl. caravan and trailer).
CS27_THINGS: frozenset[int] = frozenset(range(17, 27))

#: trainId → 27-class index (spec §1.4): the labelId that owns the trainId, minus 7.
TRAIN_ID_TO_CS27: dict[int, int] = {
    label.train_id: label.cs27_id for label in LABELS if label.train_id != _VOID
}

#: The Cityscapes label spaces a loader can offer as its ``label_space`` protocol option.
LABEL_SPACE_NAMES: tuple[str, ...] = ("cs19", "cs27")


def cs19_label_space(
    things: frozenset[int] = CS19_THINGS, evaluated: frozenset[int] | None = None
) -> LabelSpace:
    """The 19-trainId space; ``things`` narrows the things, ``evaluated`` drops absent classes."""
    return LabelSpace("cs19", CS19_NAMES, things, evaluated)


def cs27_label_space_from_train_ids(thing_train_ids: frozenset[int] = CS19_THINGS) -> LabelSpace:
    """The 27-class space for ground truth given in trainIds: only reachable classes are scored.

    Indices 2, 3, 7, 8, 9, 11, 22 and 23 have no trainId, so they never occur in such ground truth
    and are left out of ``evaluated``. With all trainId things the things are 17..26 (caravan and
    trailer stay things, unevaluated); a narrower ``thing_train_ids`` (STEP's 11, 13) maps across.
    """
    if thing_train_ids == CS19_THINGS:
        things = CS27_THINGS
    else:
        things = frozenset(TRAIN_ID_TO_CS27[train_id] for train_id in thing_train_ids)
    return LabelSpace("cs27", CS27_NAMES, things, frozenset(TRAIN_ID_TO_CS27.values()))


def train_id_mapping(label_space: str) -> dict[int, int]:
    """trainId (and void 255) → class id in ``label_space`` (``cs19`` identity or ``cs27``)."""
    if label_space == "cs19":
        mapping = {train_id: train_id for train_id in range(len(CS19_NAMES))}
    elif label_space == "cs27":
        mapping = dict(TRAIN_ID_TO_CS27)
    else:
        raise ValueError(f"unknown Cityscapes label space {label_space!r}")
    mapping[IGNORE_LABEL] = IGNORE_LABEL
    return mapping
