"""Segmentation and Tracking Quality (STQ) of Weber et al., NeurIPS 2021, as DeepLab2 computes it.

STQ = sqrt(AQ · SQ). SQ is the mean IoU of the semantic confusion matrix summed over the split.
AQ rewards every ground-truth tube g for each predicted tube p it overlaps:

    AQ = 1/Σ_s |G_s| · Σ_s Σ_{g∈G_s} 1/|g| · Σ_{p, |p∩g|>0} TPA · TPA / (TPA + FPA + FNA)

with TPA = |p∩g|, FPA = |p| − TPA, FNA = |g| − TPA, all counted over thing pixels outside crowd
(a ground-truth thing pixel with instance 0). Ground-truth ignore pixels are *not* removed from the
predicted tubes (as in DeepLab2). Per-pixel weights (Waymo wSTQ) multiply every count.

Everything is computed from the per-sequence joint histograms of :mod:`vpsbench.statistics`
after the pseudo-classes have been mapped to ground-truth classes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from vpsbench.datasets.base import LabelSpace
from vpsbench.statistics import JointHistogram, segment_groups

Float64Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class SequenceSTQ:
    """STQ, AQ and SQ of one sequence (its own AQ normalisation and its own confusion matrix)."""

    name: str
    stq: float
    aq: float
    sq: float
    num_tubes: int
    num_frames: int


@dataclass(frozen=True)
class STQResult:
    """STQ over a split with its parts, per-class IoU and per-sequence values."""

    stq: float
    aq: float
    sq: float
    iou_per_class: dict[int, float]
    per_sequence: tuple[SequenceSTQ, ...]


def _group_sum(
    classes: npt.NDArray[np.int32], instances: npt.NDArray[np.int32], values: Float64Array
) -> tuple[npt.NDArray[np.intp], Float64Array]:
    """Sum ``values`` over rows sharing (class, instance); return each row's group and the sums."""
    group, segment_class, _ = segment_groups(classes, instances)
    sums = np.bincount(group, weights=values, minlength=segment_class.size)
    return group, sums.astype(np.float64)


def association_quality_terms(table: JointHistogram, label_space: LabelSpace) -> tuple[float, int]:
    """The AQ numerator Σ_g 1/|g| Σ_p TPA²/(TPA+FPA+FNA) of one sequence and its tube count."""
    is_thing = np.zeros(max(256, label_space.num_classes), dtype=bool)
    is_thing[list(label_space.thing_classes)] = True
    gt_thing = is_thing[table.gt_class]
    crowd = gt_thing & (table.gt_instance == 0)
    pred_thing = np.zeros(len(table), dtype=bool)
    predicted = table.pred_class >= 0
    pred_thing[predicted] = is_thing[table.pred_class[predicted]]
    pred_thing &= ~crowd
    gt_tube = gt_thing & ~crowd

    if not gt_tube.any():
        return 0.0, 0
    gt_group, gt_area = _group_sum(
        table.gt_class[gt_tube], table.gt_instance[gt_tube], table.weight[gt_tube]
    )
    pred_area_of_row = np.zeros(len(table))
    if pred_thing.any():
        pred_group, pred_area = _group_sum(
            table.pred_class[pred_thing], table.pred_instance[pred_thing], table.weight[pred_thing]
        )
        pred_area_of_row[pred_thing] = pred_area[pred_group]
    gt_area_of_row = np.zeros(len(table))
    gt_area_of_row[gt_tube] = gt_area[gt_group]

    hit = gt_tube & pred_thing
    tpa = table.weight[hit]
    union = pred_area_of_row[hit] + gt_area_of_row[hit] - tpa  # TPA + FPA + FNA
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(union > 0, tpa * tpa / union, 0.0)
        terms = np.where(gt_area_of_row[hit] > 0, terms / gt_area_of_row[hit], 0.0)
    return float(terms.sum()), int(gt_area.size)


def confusion_matrix(table: JointHistogram, label_space: LabelSpace) -> Float64Array:
    """Weighted (C+1)×(C+1) confusion matrix (rows GT, columns prediction, index C = void).

    The ground-truth ignore row is zeroed: predictions on ignore pixels are never false positives.
    """
    size = label_space.num_classes
    rows = np.where(table.gt_class == label_space.ignore_label, size, table.gt_class)
    cols = np.where(table.pred_class < 0, size, table.pred_class)
    if rows.size and (rows.max() > size or cols.max() > size):
        raise ValueError("class id outside the label space in a mapped histogram")
    matrix = np.zeros((size + 1, size + 1))
    np.add.at(matrix, (rows, cols), table.weight)
    matrix[size, :] = 0.0
    return matrix


def intersection_over_union(
    confusion: Float64Array, label_space: LabelSpace, count_void_column: bool = True
) -> tuple[float, dict[int, float]]:
    """Mean IoU over evaluated classes with a non-empty union, and the IoU of each of them.

    With ``count_void_column`` (DeepLab2's behaviour) ground-truth pixels predicted as void form
    an extra "class" of IoU 0 in the mean whenever there are any.
    """
    true_positive = np.diag(confusion)
    union = confusion.sum(axis=0) + confusion.sum(axis=1) - true_positive
    per_class = {
        c: float(true_positive[c] / union[c]) for c in label_space.evaluated_classes if union[c] > 0
    }
    ious = list(per_class.values())
    if count_void_column and union[label_space.num_classes] > 0:
        ious.append(0.0)
    return (float(np.mean(ious)) if ious else 0.0), per_class


def segmentation_and_tracking_quality(
    sequences: Iterable[tuple[str, JointHistogram, int]],
    label_space: LabelSpace,
    count_void_column: bool = True,
) -> STQResult:
    """STQ/AQ/SQ of a split from mapped per-sequence histograms ``(name, table, num_frames)``.

    AQ over the split is tube-weighted (Σ numerators / Σ tube counts), SQ is the mean IoU of the
    summed confusion matrix, STQ = sqrt(AQ·SQ); per-sequence values use the sequence alone.
    """
    total_confusion = np.zeros((label_space.num_classes + 1,) * 2)
    aq_numerator, tube_count = 0.0, 0
    per_sequence = []
    for name, table, num_frames in sequences:
        numerator, tubes = association_quality_terms(table, label_space)
        confusion = confusion_matrix(table, label_space)
        total_confusion += confusion
        aq_numerator += numerator
        tube_count += tubes
        sequence_aq = numerator / tubes if tubes else 0.0
        sequence_sq, _ = intersection_over_union(confusion, label_space, count_void_column)
        per_sequence.append(
            SequenceSTQ(
                name=name,
                stq=float(np.sqrt(sequence_aq * sequence_sq)),
                aq=sequence_aq,
                sq=sequence_sq,
                num_tubes=tubes,
                num_frames=num_frames,
            )
        )
    aq = aq_numerator / tube_count if tube_count else 0.0
    sq, per_class = intersection_over_union(total_confusion, label_space, count_void_column)
    return STQResult(
        stq=float(np.sqrt(aq * sq)),
        aq=aq,
        sq=sq,
        iou_per_class=per_class,
        per_sequence=tuple(per_sequence),
    )
