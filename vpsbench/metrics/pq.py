"""Panoptic quality (Kirillov et al. 2019) of a segment table, with the VPSNet eval_vpq rules.

A segment is a (class, instance) pair: a ground-truth segment has a class of the label space (not
the ignore label), a predicted segment a class >= 0. Stuff classes have one segment per class
(instance ids are dropped on them), and a ground-truth thing segment with instance 0 is a *crowd*
region. The COCO/VPSNet rules, applied to the unweighted ``pixels`` column:

* a (ground truth, prediction) pair of the same class is a true positive if IoU > 0.5, where the
  union leaves out the prediction's pixels on ground-truth VOID; crowd segments never match;
* unmatched non-crowd ground-truth segments are false negatives;
* unmatched predictions are false positives unless more than half of their pixels lie on VOID or
  on the crowd region of their own class.

IoU > 0.5 makes the matching unique, so no assignment problem has to be solved. The same code
scores a single frame (PQ) and a spatio-temporal tube table (VPQ, Kim et al. 2020): a tube table
is the merge of its frames' tables.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from vpsbench.datasets.base import LabelSpace
from vpsbench.statistics import JointHistogram

Int64Array = npt.NDArray[np.int64]
Float64Array = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

# Segment keys pack (class, instance) into one int64: class in the high 32 bits.
_INSTANCE_BITS = 32
_INSTANCE_SHIFT = 1 << 31  # makes any int32 instance id non-negative inside the key


@dataclass(frozen=True, eq=False)
class PQCounts:
    """Per-class TP, FP, FN and TP IoU sum: the additive state of PQ (Kirillov et al. 2019)."""

    tp: Int64Array
    fp: Int64Array
    fn: Int64Array
    iou_sum: Float64Array

    @classmethod
    def zeros(cls, num_classes: int) -> PQCounts:
        """Counts of nothing, the identity of ``+``."""
        return cls(
            tp=np.zeros(num_classes, dtype=np.int64),
            fp=np.zeros(num_classes, dtype=np.int64),
            fn=np.zeros(num_classes, dtype=np.int64),
            iou_sum=np.zeros(num_classes, dtype=np.float64),
        )

    @property
    def num_classes(self) -> int:
        return int(self.tp.size)

    def __add__(self, other: PQCounts) -> PQCounts:
        """Sum two counts (PQ over a set of tables is computed from the summed counts, as COCO)."""
        if other.num_classes != self.num_classes:
            raise ValueError(f"cannot add counts of {other.num_classes} and {self.num_classes}")
        return PQCounts(
            tp=self.tp + other.tp,
            fp=self.fp + other.fp,
            fn=self.fn + other.fn,
            iou_sum=self.iou_sum + other.iou_sum,
        )

    @classmethod
    def merge(cls, parts: Iterable[PQCounts], num_classes: int) -> PQCounts:
        """Sum any number of counts (``num_classes`` gives the result when there are none)."""
        total = cls.zeros(num_classes)
        for part in parts:
            total = total + part
        return total


@dataclass(frozen=True)
class ClassPQ:
    """PQ, SQ, RQ and the counts of one class."""

    pq: float
    sq: float
    rq: float
    tp: int
    fp: int
    fn: int

    @property
    def present(self) -> bool:
        """Whether the class has any segment (only such classes enter the means)."""
        return self.tp + self.fp + self.fn > 0


@dataclass(frozen=True)
class PQResult:
    """Class-averaged PQ/SQ/RQ, PQ of the thing and stuff classes, and every evaluated class."""

    pq: float
    sq: float
    rq: float
    pq_things: float
    pq_stuff: float
    per_class: dict[int, ClassPQ]


def _thing_lookup(label_space: LabelSpace) -> BoolArray:
    """Boolean table indexed by class id: whether the class is a thing class."""
    is_thing = np.zeros(label_space.num_classes, dtype=bool)
    is_thing[[c for c in label_space.thing_classes if c < label_space.num_classes]] = True
    return is_thing


def _check_classes(table: JointHistogram, label_space: LabelSpace) -> None:
    """Reject class ids outside the label space (an unmapped table, most likely)."""
    num_classes, ignore = label_space.num_classes, label_space.ignore_label
    gt_ok = ((table.gt_class >= 0) & (table.gt_class < num_classes)) | (table.gt_class == ignore)
    if not gt_ok.all():
        bad = int(table.gt_class[~gt_ok][0])
        raise ValueError(f"ground-truth class {bad} outside the label space {label_space.name!r}")
    pred_ok = (table.pred_class >= -1) & (table.pred_class < num_classes)
    if not pred_ok.all():
        bad = int(table.pred_class[~pred_ok][0])
        raise ValueError(f"predicted class {bad} outside the label space {label_space.name!r}")


def _segment_groups(
    classes: Int64Array, instances: Int64Array
) -> tuple[npt.NDArray[np.intp], Int64Array, Int64Array]:
    """Group rows by (class, instance): each row's segment, and every segment's class, instance."""
    keys = (classes << _INSTANCE_BITS) | (instances + _INSTANCE_SHIFT)
    unique_keys, group = np.unique(keys, return_inverse=True)
    segment_class = unique_keys >> _INSTANCE_BITS
    segment_instance = (unique_keys & ((1 << _INSTANCE_BITS) - 1)) - _INSTANCE_SHIFT
    return group.reshape(-1), segment_class, segment_instance


def pq_counts(table: JointHistogram, label_space: LabelSpace) -> PQCounts:
    """TP/FP/FN and TP IoU sum per class of one frame or tube table (VPSNet eval_vpq rules)."""
    _check_classes(table, label_space)
    num_classes = label_space.num_classes
    rows = table.pixels > 0
    gt_class = table.gt_class[rows].astype(np.int64)
    pred_class = table.pred_class[rows].astype(np.int64)
    pixels = table.pixels[rows]
    is_thing = _thing_lookup(label_space)

    gt_void = gt_class == label_space.ignore_label
    gt_thing = np.zeros(gt_class.shape, dtype=bool)
    gt_thing[~gt_void] = is_thing[gt_class[~gt_void]]
    gt_instance = np.where(gt_thing, table.gt_instance[rows], 0).astype(np.int64)
    gt_crowd = gt_thing & (gt_instance == 0)
    predicted = pred_class >= 0
    pred_thing = np.zeros(pred_class.shape, dtype=bool)
    pred_thing[predicted] = is_thing[pred_class[predicted]]
    pred_instance = np.where(pred_thing, table.pred_instance[rows], 0).astype(np.int64)

    # Ground-truth segments: area and whether they are crowd.
    gt_segment_of_row = np.full(gt_class.shape, -1, dtype=np.intp)
    group, gt_segment_class, gt_segment_instance = _segment_groups(
        gt_class[~gt_void], gt_instance[~gt_void]
    )
    gt_segment_of_row[~gt_void] = group
    gt_area = np.bincount(group, weights=pixels[~gt_void], minlength=gt_segment_class.size)
    gt_segment_crowd = np.zeros(gt_segment_class.shape, dtype=bool)
    if gt_segment_class.size:
        gt_segment_crowd = is_thing[gt_segment_class] & (gt_segment_instance == 0)

    # Predicted segments: area, area on VOID and area on crowd of the same class.
    pred_segment_of_row = np.full(pred_class.shape, -1, dtype=np.intp)
    group, pred_segment_class, _ = _segment_groups(pred_class[predicted], pred_instance[predicted])
    pred_segment_of_row[predicted] = group
    num_pred = pred_segment_class.size
    pred_pixels = pixels[predicted]
    pred_area = np.bincount(group, weights=pred_pixels, minlength=num_pred)
    on_void = gt_void[predicted]
    void_area = np.bincount(group[on_void], weights=pred_pixels[on_void], minlength=num_pred)
    on_own_crowd = (gt_crowd & (gt_class == pred_class))[predicted]
    crowd_area = np.bincount(
        group[on_own_crowd], weights=pred_pixels[on_own_crowd], minlength=num_pred
    )

    # Candidate pairs: same class, neither side void, ground truth not crowd.
    candidate = predicted & ~gt_void & ~gt_crowd & (gt_class == pred_class)
    pair_keys = (
        gt_segment_of_row[candidate].astype(np.int64) * max(num_pred, 1)
        + pred_segment_of_row[candidate]
    )
    unique_pairs, pair_of_row = np.unique(pair_keys, return_inverse=True)
    intersection = np.bincount(
        pair_of_row.reshape(-1), weights=pixels[candidate], minlength=unique_pairs.size
    )
    pair_gt, pair_pred = np.divmod(unique_pairs, max(num_pred, 1))
    union = pred_area[pair_pred] + gt_area[pair_gt] - intersection - void_area[pair_pred]
    matched = 2 * intersection > union  # IoU > 0.5, exact on integer pixel counts
    matched_gt, matched_pred = pair_gt[matched], pair_pred[matched]
    matched_class = gt_segment_class[matched_gt]
    iou = intersection[matched] / union[matched]

    gt_is_matched = np.zeros(gt_segment_class.shape, dtype=bool)
    gt_is_matched[matched_gt] = True
    pred_is_matched = np.zeros(num_pred, dtype=bool)
    pred_is_matched[matched_pred] = True
    false_negative = ~gt_is_matched & ~gt_segment_crowd
    ignored = 2 * (void_area + crowd_area) > pred_area
    false_positive = ~pred_is_matched & ~ignored

    return PQCounts(
        tp=np.bincount(matched_class, minlength=num_classes).astype(np.int64),
        fp=np.bincount(pred_segment_class[false_positive], minlength=num_classes).astype(np.int64),
        fn=np.bincount(gt_segment_class[false_negative], minlength=num_classes).astype(np.int64),
        iou_sum=np.bincount(matched_class, weights=iou, minlength=num_classes).astype(np.float64),
    )


def _mean(values: list[float]) -> float:
    """Mean of a list, 0.0 when it is empty."""
    return float(np.mean(values)) if values else 0.0


def summarize_pq(counts: PQCounts, label_space: LabelSpace) -> PQResult:
    """Per-class PQ = SQ·RQ and their means over evaluated classes with TP+FP+FN > 0 (COCO rule)."""
    if counts.num_classes != label_space.num_classes:
        raise ValueError(
            f"counts of {counts.num_classes} classes for a space of {label_space.num_classes}"
        )
    per_class: dict[int, ClassPQ] = {}
    for cls in label_space.evaluated_classes:
        tp, fp, fn = int(counts.tp[cls]), int(counts.fp[cls]), int(counts.fn[cls])
        iou_sum = float(counts.iou_sum[cls])
        denominator = tp + 0.5 * fp + 0.5 * fn
        per_class[cls] = ClassPQ(
            pq=iou_sum / denominator if denominator > 0 else 0.0,
            sq=iou_sum / tp if tp > 0 else 0.0,
            rq=tp / denominator if denominator > 0 else 0.0,
            tp=tp,
            fp=fp,
            fn=fn,
        )
    present = [cls for cls, value in per_class.items() if value.present]
    things = [cls for cls in present if cls in label_space.thing_classes]
    stuff = [cls for cls in present if cls not in label_space.thing_classes]
    return PQResult(
        pq=_mean([per_class[cls].pq for cls in present]),
        sq=_mean([per_class[cls].sq for cls in present]),
        rq=_mean([per_class[cls].rq for cls in present]),
        pq_things=_mean([per_class[cls].pq for cls in things]),
        pq_stuff=_mean([per_class[cls].pq for cls in stuff]),
        per_class=per_class,
    )


def panoptic_quality(frames: Iterable[JointHistogram], label_space: LabelSpace) -> PQResult:
    """Image PQ over a set of frames: counts summed over frames, then averaged (COCO, VPSNet)."""
    total = PQCounts.zeros(label_space.num_classes)
    for table in frames:
        total = total + pq_counts(table, label_space)
    return summarize_pq(total, label_space)
