"""Matching predicted pseudo-classes to ground-truth classes (the unsupervised protocol).

Unsupervised methods predict *pseudo-classes* whose ids mean nothing to the ground truth, so
before any metric a mapping pseudo-class → ground-truth class is fixed from pixel overlaps
accumulated over the whole split (paper Sec. 3.3). The default mode preserves the thing/stuff
split: pseudo thing classes (those that carry instance predictions) are matched only to ground
truth thing classes, pseudo stuff classes only to stuff classes, each with the Hungarian
algorithm maximising overlap; pseudo-classes left over once every ground-truth class of their kind
has a partner go to the class of the same kind they overlap most.

All modes are deterministic: ties go to the lowest ground-truth class id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

UNMATCHED = -1


class MatchingMode(StrEnum):
    """How pseudo-classes are mapped to ground-truth classes."""

    THING_STUFF_HUNGARIAN = "hungarian-thing-stuff"  # the paper's protocol (default)
    HUNGARIAN = "hungarian"  # one Hungarian over all classes, surplus → argmax, no separation
    MAJORITY = "majority"  # many-to-one: every pseudo-class → its argmax class
    ONE_TO_ONE = "one-to-one"  # thing/stuff Hungarian, surplus pseudo-classes → void
    NONE = "none"  # predictions already use ground-truth class ids


@dataclass(frozen=True)
class ClassMatching:
    """The result of matching: ``target[p]`` is the ground-truth class of pseudo-class ``p``.

    ``target[p] == -1`` means the pseudo-class is mapped to void (its pixels are unlabelled).
    ``overlap[p, j]`` is the pixel overlap of pseudo-class ``p`` with ``gt_classes[j]``.
    """

    mode: MatchingMode
    target: npt.NDArray[np.int32]
    pseudo_things: npt.NDArray[np.bool_]
    gt_classes: tuple[int, ...]
    overlap: npt.NDArray[np.int64]

    def as_dict(self) -> dict[int, int]:
        """``{pseudo-class: ground-truth class or -1}`` for every pseudo-class."""
        return {int(p): int(t) for p, t in enumerate(self.target)}


def _hungarian_then_argmax(
    overlap: npt.NDArray[np.int64],
    rows: npt.NDArray[np.int64],
    columns: Sequence[int],
    surplus_to_argmax: bool,
) -> dict[int, int]:
    """Hungarian on the sub-matrix ``rows × columns``; leftover rows → argmax column (or void)."""
    assignment: dict[int, int] = {}
    if rows.size == 0:
        return assignment
    if len(columns) == 0:
        return {int(row): UNMATCHED for row in rows}
    block = overlap[np.ix_(rows, np.asarray(columns, dtype=np.int64))]
    matched_rows, matched_cols = linear_sum_assignment(block, maximize=True)
    for r, c in zip(matched_rows, matched_cols, strict=True):
        assignment[int(rows[r])] = int(columns[c])
    for index, row in enumerate(rows):
        if int(row) not in assignment:
            # argmax returns the first maximum: ties go to the lowest class id.
            best = int(columns[int(np.argmax(block[index]))])
            assignment[int(row)] = best if surplus_to_argmax else UNMATCHED
    return assignment


def match_pseudo_classes(
    overlap: npt.NDArray[np.int64],
    pseudo_things: npt.NDArray[np.bool_],
    gt_classes: Sequence[int],
    gt_things: Sequence[int],
    mode: MatchingMode | str = MatchingMode.THING_STUFF_HUNGARIAN,
) -> ClassMatching:
    """Map every pseudo-class to a ground-truth class (paper Sec. 3.3).

    ``overlap`` is the (pseudo-class × ``gt_classes``) pixel-overlap matrix over the split;
    ``pseudo_things[p]`` says whether pseudo-class ``p`` carries instance predictions. Pseudo-
    classes with no pixel at all take no part (they cannot steal a ground-truth class) and map
    to void.
    """
    mode = MatchingMode(mode)
    overlap = np.asarray(overlap, dtype=np.int64)
    num_pseudo = overlap.shape[0]
    if overlap.shape[1] != len(gt_classes):
        raise ValueError(f"overlap has {overlap.shape[1]} columns for {len(gt_classes)} classes")
    if pseudo_things.shape != (num_pseudo,):
        raise ValueError("pseudo_things must have one entry per pseudo-class")
    target = np.full(num_pseudo, UNMATCHED, dtype=np.int32)
    present = np.flatnonzero(overlap.sum(axis=1) > 0)
    column_of = {c: j for j, c in enumerate(gt_classes)}
    thing_columns = [column_of[c] for c in gt_classes if c in set(gt_things)]
    stuff_columns = [column_of[c] for c in gt_classes if c not in set(gt_things)]

    assignment: dict[int, int] = {}
    if mode is MatchingMode.NONE:
        for p in range(num_pseudo):
            if p in column_of:
                assignment[p] = column_of[p]
    elif mode is MatchingMode.MAJORITY:
        for row in present:
            assignment[int(row)] = int(np.argmax(overlap[row]))
    elif mode is MatchingMode.HUNGARIAN:
        assignment = _hungarian_then_argmax(
            overlap, present, list(range(len(gt_classes))), surplus_to_argmax=True
        )
    else:
        surplus_to_argmax = mode is MatchingMode.THING_STUFF_HUNGARIAN
        things = present[pseudo_things[present]]
        stuff = present[~pseudo_things[present]]
        assignment = _hungarian_then_argmax(overlap, things, thing_columns, surplus_to_argmax)
        assignment |= _hungarian_then_argmax(overlap, stuff, stuff_columns, surplus_to_argmax)

    for p, column in assignment.items():
        target[p] = UNMATCHED if column == UNMATCHED else gt_classes[column]
    return ClassMatching(
        mode=mode,
        target=target,
        pseudo_things=pseudo_things.astype(bool),
        gt_classes=tuple(int(c) for c in gt_classes),
        overlap=overlap,
    )
