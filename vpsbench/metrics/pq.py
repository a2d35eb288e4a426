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
is the merge of its frames' tables, and since every count depends on the tables only through
summed segment and pair areas, the windows of a sequence are scored from per-frame prefix sums of
those areas (:func:`window_pq_counts`) without merging any table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from vpsbench.datasets.base import LabelSpace
from vpsbench.statistics import JointHistogram, segment_groups

Int64Array = npt.NDArray[np.int64]
Float64Array = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
Shape = tuple[int, int]


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


def _prefix_sums(
    frame: npt.NDArray[np.intp], index: npt.NDArray[np.intp], pixels: Int64Array, shape: Shape
) -> Float64Array:
    """``out[f, i]``: pixels of the rows of ``index`` i in frames before f (exact integer sums)."""
    num_frames, width = shape
    sums = np.zeros((num_frames + 1, width), dtype=np.float64)
    counts = np.bincount(frame * width + index, weights=pixels, minlength=num_frames * width)
    sums[1:] = counts.reshape(num_frames, width)
    return np.cumsum(sums, axis=0, out=sums)


@dataclass(frozen=True)
class _SegmentAreas:
    """Pixel counts of the segments and same-class pairs of consecutive frames, as prefix sums.

    A tube table is the merge of its frames' tables and every PQ count is a function of summed
    segment areas, so the counts of any window of frames follow from two rows of these sums,
    without merging tables. Sums are of integer pixel counts below 2**53, hence exact.
    """

    gt_class: Int64Array  # per ground-truth segment (sorted by class, instance)
    gt_crowd: BoolArray
    pred_class: Int64Array  # per predicted segment (sorted by class, instance)
    pair_gt: npt.NDArray[np.intp]  # per candidate pair (sorted by gt, then pred segment)
    pair_pred: npt.NDArray[np.intp]
    gt_area: Float64Array  # (frames + 1) × gt segments
    pred_area: Float64Array  # (frames + 1) × pred segments
    void_area: Float64Array  # pred pixels on ground-truth VOID
    crowd_area: Float64Array  # pred pixels on the crowd region of their own class
    intersection: Float64Array  # (frames + 1) × pairs


def _segment_areas(frames: Sequence[JointHistogram], label_space: LabelSpace) -> _SegmentAreas:
    """Segments, candidate pairs and their per-frame areas of consecutive frame tables."""
    for table in frames:
        _check_classes(table, label_space)
    num_frames = len(frames)
    lengths = [len(table) for table in frames]
    frame_of_row = np.repeat(np.arange(num_frames, dtype=np.intp), lengths)
    pixels = np.concatenate([t.pixels for t in frames]) if frames else np.zeros(0, np.int64)
    rows = pixels > 0

    def column(name: str) -> Int64Array:
        if not frames:
            return np.zeros(0, dtype=np.int64)
        return np.concatenate([getattr(t, name) for t in frames])[rows].astype(np.int64)

    frame = frame_of_row[rows]
    pixels = pixels[rows]
    gt_class, pred_class = column("gt_class"), column("pred_class")
    is_thing = _thing_lookup(label_space)

    gt_void = gt_class == label_space.ignore_label
    gt_thing = np.zeros(gt_class.shape, dtype=bool)
    gt_thing[~gt_void] = is_thing[gt_class[~gt_void]]
    gt_instance = np.where(gt_thing, column("gt_instance"), 0)
    gt_crowd = gt_thing & (gt_instance == 0)
    predicted = pred_class >= 0
    pred_thing = np.zeros(pred_class.shape, dtype=bool)
    pred_thing[predicted] = is_thing[pred_class[predicted]]
    pred_instance = np.where(pred_thing, column("pred_instance"), 0)

    # Ground-truth segments and whether they are crowd.
    gt_segment_of_row = np.full(gt_class.shape, -1, dtype=np.intp)
    gt_group, gt_segment_class, gt_segment_instance = segment_groups(
        gt_class[~gt_void], gt_instance[~gt_void]
    )
    gt_segment_of_row[~gt_void] = gt_group
    num_gt = gt_segment_class.size
    gt_segment_crowd = np.zeros(num_gt, dtype=bool)
    if num_gt:
        gt_segment_crowd = is_thing[gt_segment_class] & (gt_segment_instance == 0)

    # Predicted segments: area, area on VOID and area on crowd of the same class.
    pred_segment_of_row = np.full(pred_class.shape, -1, dtype=np.intp)
    pred_group, pred_segment_class, _ = segment_groups(
        pred_class[predicted], pred_instance[predicted]
    )
    pred_segment_of_row[predicted] = pred_group
    num_pred = pred_segment_class.size
    on_void = (gt_void & predicted)[predicted]
    on_own_crowd = (gt_crowd & (gt_class == pred_class))[predicted]
    pred_frame, pred_pixels = frame[predicted], pixels[predicted]

    # Candidate pairs: same class, neither side void, ground truth not crowd.
    candidate = predicted & ~gt_void & ~gt_crowd & (gt_class == pred_class)
    pair_keys = (
        gt_segment_of_row[candidate].astype(np.int64) * max(num_pred, 1)
        + pred_segment_of_row[candidate]
    )
    unique_pairs, pair_of_row = np.unique(pair_keys, return_inverse=True)
    pair_gt, pair_pred = np.divmod(unique_pairs, max(num_pred, 1))

    pred_shape = (num_frames, num_pred)
    return _SegmentAreas(
        gt_class=gt_segment_class,
        gt_crowd=gt_segment_crowd,
        pred_class=pred_segment_class,
        pair_gt=pair_gt.astype(np.intp),
        pair_pred=pair_pred.astype(np.intp),
        gt_area=_prefix_sums(frame[~gt_void], gt_group, pixels[~gt_void], (num_frames, num_gt)),
        pred_area=_prefix_sums(pred_frame, pred_group, pred_pixels, pred_shape),
        void_area=_prefix_sums(
            pred_frame[on_void], pred_group[on_void], pred_pixels[on_void], pred_shape
        ),
        crowd_area=_prefix_sums(
            pred_frame[on_own_crowd],
            pred_group[on_own_crowd],
            pred_pixels[on_own_crowd],
            pred_shape,
        ),
        intersection=_prefix_sums(
            frame[candidate],
            pair_of_row.reshape(-1),
            pixels[candidate],
            (num_frames, unique_pairs.size),
        ),
    )


def _windows_of(areas: _SegmentAreas, size: int, count: int, num_classes: int) -> list[PQCounts]:
    """PQ counts of the windows of ``size`` frames that start at frames 0 … count − 1."""
    starts = np.arange(count)

    def window(prefix: Float64Array) -> Float64Array:
        return prefix[starts + size] - prefix[starts]

    gt_area, pred_area = window(areas.gt_area), window(areas.pred_area)
    void_area, crowd_area = window(areas.void_area), window(areas.crowd_area)
    intersection = window(areas.intersection)
    union = (
        pred_area[:, areas.pair_pred]
        + gt_area[:, areas.pair_gt]
        - intersection
        - void_area[:, areas.pair_pred]
    )
    # IoU > 0.5, exact on integer pixel counts. Row-major order: by window, then pair, so each
    # window's IoU sums add up in the same order as on its merged tube table.
    matched_window, matched_pair = np.nonzero(2 * intersection > union)
    matched_gt, matched_pred = areas.pair_gt[matched_pair], areas.pair_pred[matched_pair]
    iou = intersection[matched_window, matched_pair] / union[matched_window, matched_pair]
    cells = count * num_classes

    def per_class(window_index: npt.NDArray[np.intp], classes: Int64Array) -> Int64Array:
        return np.bincount(window_index * num_classes + classes, minlength=cells).astype(np.int64)

    matched_class = areas.gt_class[matched_gt]
    gt_unmatched = gt_area > 0
    gt_unmatched[matched_window, matched_gt] = False
    pred_unmatched = pred_area > 0
    pred_unmatched[matched_window, matched_pred] = False
    fn_window, fn_segment = np.nonzero(gt_unmatched & ~areas.gt_crowd)
    ignored = 2 * (void_area + crowd_area) > pred_area
    fp_window, fp_segment = np.nonzero(pred_unmatched & ~ignored)

    shape = (count, num_classes)
    tp = per_class(matched_window, matched_class).reshape(shape)
    fp = per_class(fp_window, areas.pred_class[fp_segment]).reshape(shape)
    fn = per_class(fn_window, areas.gt_class[fn_segment]).reshape(shape)
    iou_sum = np.bincount(
        matched_window * num_classes + matched_class, weights=iou, minlength=cells
    ).reshape(shape)
    return [PQCounts(tp[i], fp[i], fn[i], iou_sum[i]) for i in range(count)]


# Window starts handled together: bounds the dense (frames × segments) sums of long sequences.
_BLOCK_FRAMES = 32


def window_pq_counts(
    frames: Sequence[JointHistogram], label_space: LabelSpace, window_sizes: Iterable[int]
) -> dict[int, list[PQCounts]]:
    """PQ counts of every stride-1 window of each size of consecutive frame tables.

    The counts of a window are those of its tube table (the merge of its frames, VPSNet
    eval_vpq), listed in start order; a size longer than the sequence has no window. Segments
    are grouped once for all windows of a block of frames instead of once per window.
    """
    sizes = tuple(dict.fromkeys(window_sizes))
    if any(size < 1 for size in sizes):
        raise ValueError(f"window sizes must be positive, got {sizes}")
    counts: dict[int, list[PQCounts]] = {size: [] for size in sizes}
    fitting = [size for size in sizes if size <= len(frames)]
    if not fitting:
        return counts
    longest = max(fitting)
    for first in range(0, len(frames) - min(fitting) + 1, _BLOCK_FRAMES):
        block = frames[first : first + _BLOCK_FRAMES + longest - 1]
        areas = _segment_areas(block, label_space)
        for size in fitting:
            count = min(_BLOCK_FRAMES, len(block) - size + 1)
            if count > 0:
                counts[size] += _windows_of(areas, size, count, label_space.num_classes)
    return counts


def pq_counts(table: JointHistogram, label_space: LabelSpace) -> PQCounts:
    """TP/FP/FN and TP IoU sum per class of one frame or tube table (VPSNet eval_vpq rules)."""
    return window_pq_counts([table], label_space, (1,))[1][0]


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
