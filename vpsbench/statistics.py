"""Sufficient statistics of a (ground truth, prediction) video: sparse joint pixel histograms.

Every metric vpsbench reports (STQ/AQ/SQ, VPQ, PQ, per-class IoU) and the pseudo-class matching
are functions of one object: the *joint histogram* of a frame, i.e. the number of pixels (and
their summed weight) for every co-occurring ``(gt class, gt instance, pred class, pred instance)``.
It has a few hundred rows where a frame has millions of pixels, it adds up over frames, and
mapping pseudo-classes to ground-truth classes is a relabelling of its rows. So the evaluator
reads each frame once, reduces it to this table and never looks at pixels again.

Conventions: ``gt_class`` is the ground-truth class in the evaluation label space or the ignore
label (255); ``pred_class`` is the predicted (pseudo-)class, ``-1`` where the prediction is void.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from vpsbench.video import PanopticFrame

Int32Array = npt.NDArray[np.int32]
Int64Array = npt.NDArray[np.int64]
Float64Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.signedinteger[Any]]

VOID_PREDICTION = -1

# Dense bincount is used while a key space has at most this many bins; beyond it np.unique.
_DENSE_KEY_LIMIT = 1 << 23


@dataclass(frozen=True)
class JointHistogram:
    """Pixel count and weight of every co-occurring (gt class, gt id, pred class, pred id).

    Rows are unique and sorted by (gt_class, gt_instance, pred_class, pred_instance). ``weight``
    equals ``pixels`` unless per-pixel weights were given (Waymo wSTQ).
    """

    gt_class: Int32Array
    gt_instance: Int32Array
    pred_class: Int32Array
    pred_instance: Int32Array
    pixels: Int64Array
    weight: Float64Array

    @classmethod
    def empty(cls) -> JointHistogram:
        ints = np.zeros(0, dtype=np.int32)
        return cls(ints, ints, ints, ints, np.zeros(0, np.int64), np.zeros(0, np.float64))

    def __len__(self) -> int:
        return int(self.pixels.size)

    @property
    def total_pixels(self) -> int:
        return int(self.pixels.sum())

    @classmethod
    def from_rows(
        cls,
        gt_class: npt.ArrayLike,
        gt_instance: npt.ArrayLike,
        pred_class: npt.ArrayLike,
        pred_instance: npt.ArrayLike,
        pixels: npt.ArrayLike,
        weight: npt.ArrayLike | None = None,
    ) -> JointHistogram:
        """Build a histogram from possibly repeated, unsorted rows (repeats are summed)."""
        pixel_counts = np.asarray(pixels, dtype=np.int64)
        weights = pixel_counts.astype(np.float64) if weight is None else weight
        return _reduce_rows(
            np.asarray(gt_class, dtype=np.int32),
            np.asarray(gt_instance, dtype=np.int32),
            np.asarray(pred_class, dtype=np.int32),
            np.asarray(pred_instance, dtype=np.int32),
            pixel_counts,
            np.asarray(weights, dtype=np.float64),
        )

    @classmethod
    def merge(cls, histograms: Iterable[JointHistogram]) -> JointHistogram:
        """Sum histograms (associative and commutative, so merge order never matters)."""
        parts = list(histograms)
        if not parts:
            return cls.empty()
        if len(parts) == 1:
            return parts[0]
        return _reduce_rows(
            np.concatenate([p.gt_class for p in parts]),
            np.concatenate([p.gt_instance for p in parts]),
            np.concatenate([p.pred_class for p in parts]),
            np.concatenate([p.pred_instance for p in parts]),
            np.concatenate([p.pixels for p in parts]),
            np.concatenate([p.weight for p in parts]),
        )

    def relabel_predictions(
        self, class_map: Int32Array, target_is_thing: npt.NDArray[np.bool_]
    ) -> JointHistogram:
        """Map predicted classes through ``class_map`` (index = pseudo-class, value = class or -1).

        Instances survive only on classes that map to a thing class (``target_is_thing`` indexed
        by target class), as in a panoptic map where stuff carries no instance id. Rows that fall
        together (two pseudo-classes mapped to one class with the same instance id) are summed,
        exactly as when the remapped prediction is re-encoded as ``class * divisor + instance``.
        """
        mapped, instance = _mapped_predictions(self, class_map, target_is_thing)
        return _reduce_rows(
            self.gt_class, self.gt_instance, mapped, instance, self.pixels, self.weight
        )

    def pseudo_class_overlap(self, num_pred_classes: int, gt_classes: Sequence[int]) -> Int64Array:
        """Pixel overlap matrix (pred class × listed gt class); void and ignore rows left out."""
        column_of = np.full(max(256, int(self.gt_class.max(initial=0)) + 1), -1, dtype=np.int64)
        column_of[np.asarray(gt_classes, dtype=np.int64)] = np.arange(len(gt_classes))
        columns = column_of[self.gt_class]
        keep = (columns >= 0) & (self.pred_class >= 0) & (self.pred_class < num_pred_classes)
        overlap = np.zeros((num_pred_classes, len(gt_classes)), dtype=np.int64)
        np.add.at(overlap, (self.pred_class[keep], columns[keep]), self.pixels[keep])
        return overlap


def _pack_rows(columns: Sequence[IntArray]) -> tuple[Int64Array, list[tuple[int, int]]] | None:
    """One int64 key per row that sorts like the rows (first column most significant).

    Each column is shifted to start at 0 and given the bits of its range; returns the keys and
    each column's ``(offset, bits)``, or ``None`` when the fields together need more than 62 bits.
    """
    fields = []
    for column in columns:
        low = int(column.min())
        fields.append((low, (int(column.max()) - low).bit_length()))
    if sum(bits for _, bits in fields) > 62:
        return None
    key = np.zeros(columns[0].size, dtype=np.int64)
    for column, (low, bits) in zip(columns, fields, strict=True):
        key <<= bits
        key |= column - low if low else column
    return key, fields


def _unpack_keys(keys: Int64Array, fields: list[tuple[int, int]]) -> list[Int32Array]:
    """The columns behind packed keys (inverse of :func:`_pack_rows`)."""
    columns = []
    for low, bits in reversed(fields):
        columns.append(((keys & ((1 << bits) - 1)) + low).astype(np.int32))
        keys = keys >> bits
    return columns[::-1]


def _reduce_rows(
    gt_class: Int32Array,
    gt_instance: Int32Array,
    pred_class: Int32Array,
    pred_instance: Int32Array,
    pixels: Int64Array,
    weight: Float64Array,
) -> JointHistogram:
    """Sort rows by key and sum the repeats (sums run in row order, so they are reproducible).

    Usually the four columns pack into one int64 key: a sort of the keys, a binary search and a
    bincount. Otherwise rows are ordered by ``np.lexsort``.
    """
    if pixels.size == 0:
        return JointHistogram.empty()
    packed = _pack_rows((gt_class, gt_instance, pred_class, pred_instance))
    if packed is not None:
        keys, fields = packed
        ordered = np.sort(keys)
        unique = ordered[np.concatenate([[True], ordered[1:] != ordered[:-1]])]
        group = np.searchsorted(unique, keys)
        gt_c, gt_i, pred_c, pred_i = _unpack_keys(unique, fields)
        # Pixel counts are integers below 2**53, so their float sums are exact.
        counts = np.bincount(group, weights=pixels, minlength=unique.size).astype(np.int64)
        sums = np.bincount(group, weights=weight, minlength=unique.size).astype(np.float64)
        return JointHistogram(gt_c, gt_i, pred_c, pred_i, counts, sums)
    order = np.lexsort((pred_instance, pred_class, gt_instance, gt_class))
    columns = [gt_class[order], gt_instance[order], pred_class[order], pred_instance[order]]
    new_key = np.zeros(order.size, dtype=bool)
    new_key[0] = True
    for column in columns:
        new_key[1:] |= column[1:] != column[:-1]
    starts = np.flatnonzero(new_key)
    gt_c, gt_i, pred_c, pred_i = (column[starts].astype(np.int32) for column in columns)
    return JointHistogram(
        gt_class=gt_c,
        gt_instance=gt_i,
        pred_class=pred_c,
        pred_instance=pred_i,
        pixels=np.add.reduceat(pixels[order], starts),
        weight=np.add.reduceat(weight[order].astype(np.float64), starts),
    )


def _rank_codes(codes: IntArray, space: int) -> tuple[Int32Array, Int64Array]:
    """Replace non-negative codes by their rank among the present codes.

    Returns the per-pixel ranks and the sorted present codes. A dense bincount and a lookup table
    while ``space`` is small (the common case: a few passes over the pixels), np.unique beyond.
    """
    if space <= _DENSE_KEY_LIMIT:
        present = np.flatnonzero(np.bincount(codes, minlength=space))
        rank_of = np.zeros(space, dtype=np.int32)
        rank_of[present] = np.arange(present.size, dtype=np.int32)
        return np.take(rank_of, codes), present.astype(np.int64)
    unique, ranks = np.unique(codes, return_inverse=True)
    return ranks.reshape(-1).astype(np.int32), unique.astype(np.int64)


@dataclass(frozen=True)
class _SegmentCodes:
    """Per-pixel codes ``(class + offset) · span + instance`` of one side of a frame."""

    codes: IntArray
    space: int
    instance_span: int
    class_offset: int
    instance_values: Int64Array  # the instance id behind each instance code

    def decode(self, codes: Int64Array) -> tuple[Int64Array, Int64Array]:
        """Class and instance id of each code."""
        classes, instances = np.divmod(codes, self.instance_span)
        return classes - self.class_offset, self.instance_values[instances]


def _encode_segments(classes: IntArray, instances: IntArray, class_offset: int) -> _SegmentCodes:
    """Encode per-pixel (class, instance) pairs as small non-negative integers (order-preserving).

    ``class_offset`` lifts the smallest possible class (−1 for void) to zero. Large sparse
    instance ids (e.g. 24-bit segment ids) are ranked first so that the code space stays small.
    """
    if instances.size and int(instances.min()) < 0:
        raise ValueError("instance ids must be non-negative")
    instance_span = int(instances.max(initial=0)) + 1
    class_span = int(classes.max(initial=0)) + class_offset + 1
    if class_span * instance_span > _DENSE_KEY_LIMIT:
        instances, instance_values = _rank_codes(instances, instance_span)
        instance_span = instance_values.size
    else:
        instance_values = np.arange(instance_span, dtype=np.int64)
    if class_span * instance_span >= 2**31:
        codes: IntArray = classes.astype(np.int64) * instance_span
    else:
        codes = classes.astype(np.int32, copy=False) * instance_span
    codes += instances
    if class_offset:
        codes += class_offset * instance_span
    return _SegmentCodes(
        codes, class_span * instance_span, instance_span, class_offset, instance_values
    )


def _run_starts(first: IntArray, second: IntArray) -> Int64Array:
    """Start of every raster-order run of pixels on which both code maps stay constant."""
    change = np.empty(first.size, dtype=bool)
    change[:1] = True
    np.not_equal(first[1:], first[:-1], out=change[1:])
    change[1:] |= second[1:] != second[:-1]
    return np.flatnonzero(change)


def joint_histogram(
    ground_truth: PanopticFrame,
    prediction: PanopticFrame,
    weights: npt.NDArray[np.floating] | None = None,
) -> JointHistogram:
    """The joint histogram of one frame, in a few vectorised passes over the pixels.

    Label maps are piecewise constant, so the pixels are first cut into raster-order runs on
    which both the ground-truth and the predicted (class, instance) stay the same; only the run
    starts (tens of thousands for a 2-megapixel frame) are ranked and counted, each with its
    length (and summed weight). ``prediction.semantic`` values below 0 are void. The shapes must
    agree (callers check this first to report the offending file).
    """
    if ground_truth.shape != prediction.shape:
        raise ValueError(f"shape {prediction.shape} != ground truth {ground_truth.shape}")
    if weights is not None and weights.shape != ground_truth.shape:
        raise ValueError(f"weights shape {weights.shape} != frame shape {ground_truth.shape}")
    pred_semantic = prediction.semantic.ravel()
    if pred_semantic.size and int(pred_semantic.min()) < VOID_PREDICTION:
        pred_semantic = np.maximum(pred_semantic, VOID_PREDICTION)
    gt = _encode_segments(
        ground_truth.semantic.ravel(), ground_truth.instance.ravel(), class_offset=0
    )
    pred = _encode_segments(pred_semantic, prediction.instance.ravel(), class_offset=1)
    if gt.codes.size == 0:
        return JointHistogram.empty()

    starts = _run_starts(gt.codes, pred.codes)
    lengths = np.diff(starts, append=gt.codes.size).astype(np.float64)
    run_weights = lengths if weights is None else np.add.reduceat(weights.ravel(), starts)
    gt_ranks, gt_present = _rank_codes(gt.codes[starts], gt.space)
    pred_ranks, pred_present = _rank_codes(pred.codes[starts], pred.space)
    num_pred = pred_present.size
    pair_codes = gt_ranks.astype(np.int64) * num_pred + pred_ranks
    pair_ranks, pairs = _rank_codes(pair_codes, gt_present.size * num_pred)
    # Counts are sums of integer lengths below 2**53, so the float sums are exact.
    pixels = np.bincount(pair_ranks, weights=lengths, minlength=pairs.size).astype(np.int64)
    weight = np.bincount(pair_ranks, weights=run_weights, minlength=pairs.size)

    gt_index, pred_index = np.divmod(pairs, num_pred)
    gt_classes, gt_instances = gt.decode(gt_present[gt_index])
    pred_classes, pred_instances = pred.decode(pred_present[pred_index])
    # Codes and ranks preserve the order of (class, instance), so the rows come out sorted.
    return JointHistogram(
        gt_class=gt_classes.astype(np.int32),
        gt_instance=gt_instances.astype(np.int32),
        pred_class=pred_classes.astype(np.int32),
        pred_instance=pred_instances.astype(np.int32),
        pixels=pixels,
        weight=weight.astype(np.float64),
    )


@dataclass
class SequenceStatistics:
    """Everything the evaluator keeps of one sequence: its summed histogram and frame tables.

    ``frames`` holds the per-frame histograms of the annotated frames in temporal order; VPQ
    needs them (its tubes span windows of frames). They are tiny next to the pixels.
    """

    name: str
    joint: JointHistogram
    frames: list[JointHistogram] = field(default_factory=list)
    frame_names: list[str] = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        return len(self.frame_names)

    @classmethod
    def from_frames(
        cls, name: str, frame_names: Sequence[str], frames: Sequence[JointHistogram]
    ) -> SequenceStatistics:
        return cls(name, JointHistogram.merge(frames), list(frames), list(frame_names))


def _mapped_predictions(
    table: JointHistogram, class_map: Int32Array, target_is_thing: npt.NDArray[np.bool_]
) -> tuple[Int32Array, Int32Array]:
    """Predicted class and instance columns of ``table`` after mapping the classes (not reduced)."""
    pred = table.pred_class
    mapped = np.full(pred.shape, VOID_PREDICTION, dtype=np.int32)
    known = (pred >= 0) & (pred < class_map.size)
    mapped[known] = class_map[pred[known]]
    keeps_instance = np.zeros(mapped.shape, dtype=bool)
    valid = mapped >= 0
    keeps_instance[valid] = target_is_thing[mapped[valid]]
    instance = np.where(keeps_instance, table.pred_instance, 0).astype(np.int32)
    return mapped, instance


def relabel_frames(
    frames: Sequence[JointHistogram],
    class_map: Int32Array,
    target_is_thing: npt.NDArray[np.bool_],
) -> list[JointHistogram]:
    """``[f.relabel_predictions(class_map, target_is_thing) for f in frames]`` in one reduction.

    The frames are concatenated and reduced once, the frame index folded into the leading key
    (``frame · span + gt_class − low``), so a sequence costs one sort instead of one per frame.
    Each row's sums run over its frame's rows in order: the result is the same to the bit.
    """
    lengths = [len(f) for f in frames]
    if len(frames) <= 1 or not sum(lengths):
        return [f.relabel_predictions(class_map, target_is_thing) for f in frames]
    whole = JointHistogram(*(np.concatenate([getattr(f, c) for f in frames]) for c in _COLUMNS))
    low = int(whole.gt_class.min())
    span = int(whole.gt_class.max()) - low + 1
    if len(frames) * span >= 2**31:
        return [f.relabel_predictions(class_map, target_is_thing) for f in frames]
    frame = np.repeat(np.arange(len(frames), dtype=np.int64), lengths)
    folded = (frame * span + (whole.gt_class - low)).astype(np.int32)
    mapped, instance = _mapped_predictions(whole, class_map, target_is_thing)
    reduced = _reduce_rows(folded, whole.gt_instance, mapped, instance, whole.pixels, whole.weight)
    frame_of, gt_class = np.divmod(reduced.gt_class, span)
    gt_class += low
    bounds = np.searchsorted(frame_of, np.arange(len(frames) + 1)).tolist()
    return [
        JointHistogram(
            gt_class[a:b],
            reduced.gt_instance[a:b],
            reduced.pred_class[a:b],
            reduced.pred_instance[a:b],
            reduced.pixels[a:b],
            reduced.weight[a:b],
        )
        for a, b in itertools.pairwise(bounds)
    ]


_COLUMNS = ("gt_class", "gt_instance", "pred_class", "pred_instance", "pixels", "weight")


def segment_groups(
    classes: IntArray, instances: IntArray
) -> tuple[npt.NDArray[np.intp], Int64Array, Int64Array]:
    """Group rows by (class, instance): each row's segment, and every segment's class, instance.

    Segments are numbered in (class, instance) order.
    """
    keys = (classes.astype(np.int64) << _INSTANCE_BITS) | (
        instances.astype(np.int64) + _INSTANCE_SHIFT
    )
    unique_keys, group = np.unique(keys, return_inverse=True)
    segment_class = unique_keys >> _INSTANCE_BITS
    segment_instance = (unique_keys & ((1 << _INSTANCE_BITS) - 1)) - _INSTANCE_SHIFT
    return group.reshape(-1), segment_class, segment_instance


# Segment keys pack (class, instance) into one int64: class in the high 32 bits.
_INSTANCE_BITS = 32
_INSTANCE_SHIFT = 1 << 31  # makes any int32 instance id non-negative inside the key
