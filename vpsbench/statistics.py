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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from vpsbench.video import PanopticFrame

Int32Array = npt.NDArray[np.int32]
Int64Array = npt.NDArray[np.int64]
Float64Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.signedinteger[Any]]
UInt32Array = npt.NDArray[np.uint32]
#: Decodes a 1-D array of pixel codes into their class and instance ids (see :class:`CodedFrame`).
CodeDecoder = Callable[[UInt32Array], tuple[Int32Array, Int32Array]]

VOID_PREDICTION = -1


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


def _distinct(keys: npt.NDArray[_Int]) -> tuple[npt.NDArray[_Int], Int64Array]:
    """The sorted distinct keys and, for every key, the index of its distinct value."""
    ordered = np.sort(keys)
    unique = ordered[np.concatenate([[True], ordered[1:] != ordered[:-1]])]
    return unique, np.searchsorted(unique, keys).astype(np.int64, copy=False)


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
        unique, group = _distinct(keys)
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


def _runs(maps: Sequence[npt.NDArray[_Int]]) -> tuple[Int64Array, list[npt.NDArray[_Int]]]:
    """Start of every raster-order run on which all the given maps stay constant, and each
    map's value there.

    Done in chunks of :data:`_RUN_CHUNK` pixels so that the comparison masks and the gathered
    values stay in the CPU cache (the maps are read from memory once).
    """
    size = maps[0].size
    starts, values = [np.zeros(1, np.int64)], [[m[:1]] for m in maps]
    change = np.empty(min(size, _RUN_CHUNK), dtype=bool)
    scratch = np.empty_like(change)
    for low in range(1, size, _RUN_CHUNK):
        count = min(_RUN_CHUNK, size - low)
        mask, other = change[:count], scratch[:count]
        windows = [m[low - 1 : low + count] for m in maps]
        np.not_equal(windows[0][1:], windows[0][:-1], out=mask)
        for window in windows[1:]:
            np.not_equal(window[1:], window[:-1], out=other)
            mask |= other
        found = np.flatnonzero(mask)
        found += 1
        starts.append(found + (low - 1))
        for gathered, window in zip(values, windows, strict=True):
            gathered.append(window[found])
    return np.concatenate(starts), [np.concatenate(gathered) for gathered in values]


_Int = TypeVar("_Int", bound=np.integer[Any])
#: Pixels compared per step in :func:`_runs` (a few 100 kB of masks and windows: cache-sized).
_RUN_CHUNK = 1 << 16


def joint_histogram(
    ground_truth: PanopticFrame,
    prediction: PanopticFrame,
    weights: npt.NDArray[np.floating] | None = None,
) -> JointHistogram:
    """The joint histogram of one frame, in a few vectorised passes over the pixels.

    Label maps are piecewise constant, so the pixels are first cut into raster-order runs on
    which the ground-truth and predicted class and instance all stay the same (four comparisons
    per pixel); everything else — checks, sorting, counting — is done on the run starts (tens
    of thousands for a 2-megapixel frame), each with its length (and summed weight). Every value
    of a map occurs at some run start, so checking the run starts checks every pixel.
    ``prediction.semantic`` values below 0 are void. The shapes must agree (callers check this
    first to report the offending file).
    """
    _check_shapes(ground_truth.shape, prediction.shape, weights)
    maps = [
        np.ravel(ground_truth.semantic),
        np.ravel(ground_truth.instance),
        np.ravel(prediction.semantic),
        np.ravel(prediction.instance),
    ]
    if maps[0].size == 0:
        return JointHistogram.empty()
    starts, columns = _runs(maps)
    lengths = np.diff(starts, append=maps[0].size)
    run_weights = (
        lengths.astype(np.float64)
        if weights is None
        else np.add.reduceat(np.ravel(weights), starts)
    )
    return _checked_histogram(columns, lengths, run_weights)


@dataclass(frozen=True)
class CodedFrame:
    """A frame kept as one 32-bit code per pixel, with the function that decodes codes.

    Label PNGs already pack (class, instance) into one pixel value; keeping that value as the
    code lets :func:`joint_histogram_coded` compare two maps per pixel instead of four and decode
    (map classes, check ids) only the distinct codes. ``decode`` takes a 1-D array of codes and
    returns their class and instance ids as ``int32``; it may raise for a code that is no valid
    label (every code of the map reaches the decoder, so nothing goes unchecked).
    """

    codes: UInt32Array
    decode: CodeDecoder

    @property
    def shape(self) -> tuple[int, int]:
        """Height and width in pixels."""
        height, width = self.codes.shape
        return int(height), int(width)

    def frame(self) -> PanopticFrame:
        """The decoded frame (every pixel decoded; for checks and tests, not the hot path)."""
        semantic, instance = self.decode(np.ravel(self.codes))
        return PanopticFrame(semantic.reshape(self.shape), instance.reshape(self.shape))


def joint_histogram_coded(
    ground_truth: CodedFrame,
    prediction: CodedFrame,
    weights: npt.NDArray[np.floating] | None = None,
) -> JointHistogram:
    """:func:`joint_histogram` of the decoded frames, from the two code maps (same table).

    Runs are cut where either code changes (two comparisons per pixel); a run on which both
    codes are constant has constant decoded values, so the runs refine those of the decoded
    maps and the reduction sums them to the same rows. Without weights the runs are first
    summed per (gt code, pred code) pair, so only the pairs are decoded (ground truth first).
    """
    _check_shapes(ground_truth.shape, prediction.shape, weights)
    gt_codes, pred_codes = np.ravel(ground_truth.codes), np.ravel(prediction.codes)
    if gt_codes.size == 0:
        return JointHistogram.empty()
    size = gt_codes.size
    starts, (gt_codes, pred_codes) = _runs([gt_codes, pred_codes])
    lengths = np.diff(starts, append=size)
    if weights is None:
        # Sum the runs of each (gt code, pred code) pair first (a few hundred in a frame) and
        # decode those: the counts are integers, so the order of the sums changes nothing.
        pairs = (gt_codes.astype(np.uint64) << np.uint64(32)) | pred_codes
        distinct, group = _distinct(pairs)
        pixels = np.bincount(group, weights=lengths, minlength=distinct.size).astype(np.int64)
        gt_codes = (distinct >> np.uint64(32)).astype(np.uint32)
        pred_codes = (distinct & np.uint64(0xFFFFFFFF)).astype(np.uint32)
        run_weights = pixels.astype(np.float64)
    else:
        pixels, run_weights = lengths, np.add.reduceat(np.ravel(weights), starts)
    return _checked_histogram(
        [*ground_truth.decode(gt_codes), *prediction.decode(pred_codes)], pixels, run_weights
    )


def _check_shapes(
    truth: tuple[int, ...], prediction: tuple[int, ...], weights: npt.NDArray[Any] | None
) -> None:
    if truth != prediction:
        raise ValueError(f"shape {prediction} != ground truth {truth}")
    if weights is not None and weights.shape != truth:
        raise ValueError(f"weights shape {weights.shape} != frame shape {truth}")


def _checked_histogram(
    columns: Sequence[IntArray], pixels: Int64Array, weight: Float64Array
) -> JointHistogram:
    """Check rows (gt class, gt id, pred class, pred id) with their counts, and reduce them."""
    gt_class, gt_instance, pred_class, pred_instance = columns
    if min(int(gt_instance.min()), int(pred_instance.min())) < 0:
        raise ValueError("instance ids must be non-negative")
    if int(gt_class.min()) < 0:
        raise ValueError("ground-truth class ids must be non-negative")
    pred_class = np.maximum(pred_class, VOID_PREDICTION)
    return _reduce_rows(
        np.asarray(gt_class, dtype=np.int32),
        np.asarray(gt_instance, dtype=np.int32),
        np.asarray(pred_class, dtype=np.int32),
        np.asarray(pred_instance, dtype=np.int32),
        pixels,
        weight,
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
