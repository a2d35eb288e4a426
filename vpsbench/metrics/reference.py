"""Slow, literal reference implementations of STQ, PQ and VPQ on full label arrays.

These follow the published evaluation scripts step by step (DeepLab2's numpy STQ, COCO/VPSNet
eval_vpq PQ) on whole frames: panoptic ids, ``np.unique`` with counts, Python dictionaries and
Python loops over segments. They exist to check the fast histogram-based metrics and to time
"the straightforward way"; they deliberately share no code with :mod:`vpsbench.statistics` or
the fast metric modules.

Inputs are frames already in the evaluation label space: ground-truth ``semantic`` is a class id
or the ignore label, prediction ``semantic`` is a class id or -1 (void), instance 0 = no instance.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from vpsbench.datasets.base import LabelSpace
from vpsbench.video import PanopticFrame

PixelWeights = npt.NDArray[np.floating[Any]]
FrameTriple = tuple[PanopticFrame, PanopticFrame, PixelWeights | None]
Int64Array = npt.NDArray[np.int64]

# Panoptic id = class * INSTANCE_DIVISOR + instance; instance ids are int32, so this never collides.
INSTANCE_DIVISOR = 1 << 32
# Id of VOID (ground-truth ignore, or void prediction) in the PQ references; never a real segment.
VOID_ID = -1


# ----------------------------------------------------------------------------------------------
# STQ, the way DeepLab2's numpy STQuality computes it (Weber et al. 2021)
# ----------------------------------------------------------------------------------------------


def _add_counts(areas: dict[Any, float], ids: Iterable[Any], amounts: Iterable[float]) -> None:
    """Add ``amounts`` to ``areas[id]`` for each id (DeepLab2's per-sequence area dictionaries)."""
    for key, amount in zip(ids, amounts, strict=True):
        areas[key] = areas.get(key, 0.0) + float(amount)


def _unique_with_weights(
    ids: Int64Array, weights: npt.NDArray[np.float64]
) -> tuple[Int64Array, npt.NDArray[np.float64]]:
    """Distinct ids and their summed weight (their pixel count when every weight is 1)."""
    unique_ids, inverse = np.unique(ids, return_inverse=True)
    sums = np.bincount(inverse.reshape(-1), weights=weights, minlength=unique_ids.size)
    return unique_ids, sums.astype(np.float64)


def _mean_iou(
    confusion: npt.NDArray[np.float64], label_space: LabelSpace, count_void_column: bool
) -> tuple[float, dict[int, float]]:
    """Mean IoU of a confusion matrix whose last row/column is ignore/void (DeepLab2 rules)."""
    void_index = label_space.num_classes
    matrix = confusion.copy()
    matrix[void_index, :] = 0.0  # predictions on ignore pixels are not false positives
    true_positive = np.diag(matrix)
    false_positive = matrix.sum(axis=0) - true_positive
    false_negative = matrix.sum(axis=1) - true_positive
    union = true_positive + false_positive + false_negative
    iou_per_class: dict[int, float] = {}
    for cls in label_space.evaluated_classes:
        if union[cls] > 0:
            iou_per_class[cls] = float(true_positive[cls] / union[cls])
    ious = list(iou_per_class.values())
    if count_void_column and union[void_index] > 0:
        iou_per_class[-1] = float(true_positive[void_index] / union[void_index])
        ious.append(iou_per_class[-1])
    return (sum(ious) / len(ious) if ious else 0.0), iou_per_class


def reference_stq(
    sequences: Mapping[str, Sequence[FrameTriple]],
    label_space: LabelSpace,
    *,
    count_void_column: bool = True,
) -> dict[str, Any]:
    """STQ = sqrt(AQ·SQ) of Weber et al. 2021, written like DeepLab2's numpy STQuality.

    ``IoU_per_class`` holds the classes that enter the mean IoU (union > 0); key -1 is the void
    column when ``count_void_column`` puts it in the mean.
    """
    num_classes = label_space.num_classes
    void_index = num_classes  # extra row (GT ignore) and column (void prediction)
    things = sorted(label_space.thing_classes)
    total_confusion = np.zeros((num_classes + 1, num_classes + 1))
    aq_sum_over_split = 0.0
    tubes_over_split = 0
    per_sequence: dict[str, dict[str, float]] = {}

    for name, frames in sequences.items():
        prediction_areas: dict[int, float] = {}
        ground_truth_areas: dict[int, float] = {}
        intersection_areas: dict[tuple[int, int], float] = {}
        confusion = np.zeros((num_classes + 1, num_classes + 1))

        for ground_truth, prediction, pixel_weights in frames:
            gt_semantic = ground_truth.semantic.astype(np.int64).ravel()
            gt_instance = ground_truth.instance.astype(np.int64).ravel()
            pred_semantic = prediction.semantic.astype(np.int64).ravel()
            pred_instance = prediction.instance.astype(np.int64).ravel()
            if pixel_weights is None:
                weights = np.ones(gt_semantic.size)
            else:
                weights = np.asarray(pixel_weights, dtype=np.float64).ravel()
            if pred_semantic.max(initial=-1) >= num_classes:
                raise ValueError("predicted class outside the label space")

            # Semantic confusion: ignore label → extra row, void prediction → extra column.
            rows = np.where(gt_semantic == label_space.ignore_label, void_index, gt_semantic)
            cols = np.where(pred_semantic < 0, void_index, pred_semantic)
            np.add.at(confusion, (rows, cols), weights)

            # Thing masks; crowd (GT thing with instance 0) is removed from both.
            label_mask = np.isin(gt_semantic, things)
            prediction_mask = np.isin(pred_semantic, things)
            is_crowd = label_mask & (gt_instance == 0)
            label_mask &= ~is_crowd
            prediction_mask &= ~is_crowd

            gt_ids = gt_semantic * INSTANCE_DIVISOR + gt_instance
            pred_ids = pred_semantic * INSTANCE_DIVISOR + pred_instance
            ids, areas = _unique_with_weights(pred_ids[prediction_mask], weights[prediction_mask])
            _add_counts(prediction_areas, ids.tolist(), areas)
            ids, areas = _unique_with_weights(gt_ids[label_mask], weights[label_mask])
            _add_counts(ground_truth_areas, ids.tolist(), areas)
            both = label_mask & prediction_mask
            pair_ids = np.stack([gt_ids[both], pred_ids[both]], axis=1)
            unique_pairs, inverse = np.unique(pair_ids, axis=0, return_inverse=True)
            pair_areas = np.bincount(
                inverse.reshape(-1), weights=weights[both], minlength=len(unique_pairs)
            )
            pair_keys = [(int(g), int(p)) for g, p in unique_pairs]
            _add_counts(intersection_areas, pair_keys, pair_areas)

        # Association quality: the double loop over GT tubes × predicted tubes.
        aq_sum = 0.0
        for gt_id, gt_area in ground_truth_areas.items():
            inner_sum = 0.0
            for pred_id, pred_area in prediction_areas.items():
                if (gt_id, pred_id) not in intersection_areas:
                    continue
                tpa = intersection_areas[(gt_id, pred_id)]
                fpa = pred_area - tpa
                fna = gt_area - tpa
                inner_sum += tpa * (tpa / (tpa + fpa + fna))
            aq_sum += inner_sum / gt_area
        num_tubes = len(ground_truth_areas)
        sequence_aq = aq_sum / num_tubes if num_tubes else 0.0
        sequence_sq, _ = _mean_iou(confusion, label_space, count_void_column)
        per_sequence[name] = {
            "STQ": math.sqrt(sequence_aq * sequence_sq),
            "AQ": sequence_aq,
            "SQ": sequence_sq,
            "num_tubes": num_tubes,
        }
        aq_sum_over_split += aq_sum
        tubes_over_split += num_tubes
        total_confusion += confusion

    aq = aq_sum_over_split / tubes_over_split if tubes_over_split else 0.0
    sq, iou_per_class = _mean_iou(total_confusion, label_space, count_void_column)
    return {
        "STQ": math.sqrt(aq * sq),
        "AQ": aq,
        "SQ": sq,
        "IoU_per_class": iou_per_class,
        "per_sequence": per_sequence,
    }


# ----------------------------------------------------------------------------------------------
# PQ and VPQ, the way COCO panopticapi / VPSNet eval_vpq compute them (Kirillov et al. 2019,
# Kim et al. 2020)
# ----------------------------------------------------------------------------------------------


def _panoptic_ids(
    semantic: npt.NDArray[np.int64],
    instance: npt.NDArray[np.int64],
    is_void: npt.NDArray[np.bool_],
    label_space: LabelSpace,
) -> Int64Array:
    """class * INSTANCE_DIVISOR + instance per pixel; stuff loses its instance, VOID is VOID_ID."""
    is_thing = np.isin(semantic, sorted(label_space.thing_classes))
    ids = semantic * INSTANCE_DIVISOR + np.where(is_thing, instance, 0)
    return np.where(is_void, VOID_ID, ids)


def _class_of(panoptic_id: int) -> int:
    return panoptic_id // INSTANCE_DIVISOR


def _new_class_stats(num_classes: int) -> dict[str, list[float]]:
    return {name: [0.0] * num_classes for name in ("tp", "fp", "fn", "iou")}


def _tube_pq_stats(
    window: Sequence[FrameTriple], label_space: LabelSpace, stats: dict[str, list[float]]
) -> None:
    """Add the TP/FP/FN/IoU of one window (frames concatenated side by side) to ``stats``."""
    gt_semantic = np.concatenate([gt.semantic for gt, _, _ in window], axis=1).astype(np.int64)
    gt_instance = np.concatenate([gt.instance for gt, _, _ in window], axis=1).astype(np.int64)
    pred_semantic = np.concatenate([p.semantic for _, p, _ in window], axis=1).astype(np.int64)
    pred_instance = np.concatenate([p.instance for _, p, _ in window], axis=1).astype(np.int64)
    things = label_space.thing_classes

    gt_ids = _panoptic_ids(
        gt_semantic, gt_instance, gt_semantic == label_space.ignore_label, label_space
    ).ravel()
    pred_ids = _panoptic_ids(pred_semantic, pred_instance, pred_semantic < 0, label_space).ravel()

    # Segment areas and crowd regions (a thing class with instance 0).
    gt_area: dict[int, int] = {}
    crowd_id_of_class: dict[int, int] = {}
    for segment_id, count in zip(*np.unique(gt_ids, return_counts=True), strict=True):
        segment_id = int(segment_id)
        if segment_id == VOID_ID:
            continue
        gt_area[segment_id] = int(count)
        if _class_of(segment_id) in things and segment_id % INSTANCE_DIVISOR == 0:
            crowd_id_of_class[_class_of(segment_id)] = segment_id
    pred_area: dict[int, int] = {}
    for segment_id, count in zip(*np.unique(pred_ids, return_counts=True), strict=True):
        if int(segment_id) != VOID_ID:
            pred_area[int(segment_id)] = int(count)

    # Intersection of every (GT id, predicted id) pair, VOID included on both sides.
    pairs, pair_counts = np.unique(np.stack([gt_ids, pred_ids], axis=1), axis=0, return_counts=True)
    intersection: dict[tuple[int, int], int] = {
        (int(g), int(p)): int(c) for (g, p), c in zip(pairs, pair_counts, strict=True)
    }

    matched_gt: set[int] = set()
    matched_pred: set[int] = set()
    for (gt_id, pred_id), overlap in intersection.items():
        if gt_id == VOID_ID or pred_id == VOID_ID:
            continue
        if gt_id in crowd_id_of_class.values():
            continue
        if _class_of(gt_id) != _class_of(pred_id):
            continue
        union = (
            pred_area[pred_id] + gt_area[gt_id] - overlap - intersection.get((VOID_ID, pred_id), 0)
        )
        iou = overlap / union
        if iou > 0.5:
            stats["tp"][_class_of(gt_id)] += 1
            stats["iou"][_class_of(gt_id)] += iou
            matched_gt.add(gt_id)
            matched_pred.add(pred_id)

    for gt_id in gt_area:
        if gt_id in matched_gt or gt_id in crowd_id_of_class.values():
            continue
        stats["fn"][_class_of(gt_id)] += 1

    for pred_id, area in pred_area.items():
        if pred_id in matched_pred:
            continue
        on_void_or_crowd = intersection.get((VOID_ID, pred_id), 0)
        if _class_of(pred_id) in crowd_id_of_class:
            on_void_or_crowd += intersection.get(
                (crowd_id_of_class[_class_of(pred_id)], pred_id), 0
            )
        if on_void_or_crowd / area > 0.5:
            continue
        stats["fp"][_class_of(pred_id)] += 1


def _summarize(stats: dict[str, list[float]], label_space: LabelSpace) -> dict[str, Any]:
    """Per-class PQ/SQ/RQ and their means over classes with TP+FP+FN > 0 (COCO pq_average)."""
    per_class: dict[int, dict[str, float]] = {}
    for cls in label_space.evaluated_classes:
        tp, fp, fn, iou = (stats[name][cls] for name in ("tp", "fp", "fn", "iou"))
        if tp + fp + fn == 0:
            per_class[cls] = {"pq": 0.0, "sq": 0.0, "rq": 0.0, "tp": 0, "fp": 0, "fn": 0}
            continue
        per_class[cls] = {
            "pq": iou / (tp + 0.5 * fp + 0.5 * fn),
            "sq": iou / tp if tp else 0.0,
            "rq": tp / (tp + 0.5 * fp + 0.5 * fn),
            "tp": int(tp),
            "fp": int(fp),
            "fn": int(fn),
        }

    def mean_over(classes: Iterable[int], key: str) -> float:
        values = [
            per_class[c][key]
            for c in classes
            if per_class[c]["tp"] + per_class[c]["fp"] + per_class[c]["fn"] > 0
        ]
        return sum(values) / len(values) if values else 0.0

    return {
        "PQ": mean_over(label_space.evaluated_classes, "pq"),
        "SQ": mean_over(label_space.evaluated_classes, "sq"),
        "RQ": mean_over(label_space.evaluated_classes, "rq"),
        "PQ_things": mean_over(label_space.evaluated_things, "pq"),
        "PQ_stuff": mean_over(label_space.evaluated_stuff, "pq"),
        "per_class": per_class,
    }


def reference_pq(
    sequences: Mapping[str, Sequence[FrameTriple]], label_space: LabelSpace
) -> dict[str, Any]:
    """Image PQ (Kirillov et al. 2019) over every frame of every sequence, counts summed."""
    stats = _new_class_stats(label_space.num_classes)
    for frames in sequences.values():
        for frame in frames:
            _tube_pq_stats([frame], label_space, stats)
    return _summarize(stats, label_space)


def reference_vpq(
    sequences: Mapping[str, Sequence[FrameTriple]],
    label_space: LabelSpace,
    window_sizes: Sequence[int] = (1, 2, 3, 4),
) -> dict[str, Any]:
    """VPQ (Kim et al. 2020, VPSNet eval_vpq): PQ of concatenated stride-1 windows, mean over k.

    Window sizes with no window in any sequence are left out of ``per_window`` and the means.
    """
    per_window: dict[int, dict[str, Any]] = {}
    for size in window_sizes:
        stats = _new_class_stats(label_space.num_classes)
        num_windows = 0
        for frames in sequences.values():
            for start in range(len(frames) - size + 1):
                _tube_pq_stats(frames[start : start + size], label_space, stats)
                num_windows += 1
        if num_windows:
            per_window[size] = _summarize(stats, label_space)

    def mean_over_windows(key: str) -> float:
        values = [result[key] for result in per_window.values()]
        return sum(values) / len(values) if values else 0.0

    return {
        "VPQ": mean_over_windows("PQ"),
        "VPQ_things": mean_over_windows("PQ_things"),
        "VPQ_stuff": mean_over_windows("PQ_stuff"),
        "per_window": per_window,
    }
