"""Per-frame detections of one thing class, as the TrackEval metrics (HOTA, CLEAR, ID) see them.

A *detection* is a segment with a track id in one frame: a ground-truth segment of the class with
instance > 0, or a predicted segment of the (matched) class with instance > 0. The similarity of a
(ground truth, prediction) pair is their mask IoU |g∩p| / (|g| + |p| − |g∩p|) in pixels, read from
the frame's joint histogram (which holds every gt×pred overlap), equal to the RLE mask IoU that
TrackEval's KITTI-MOTS / MOTS-Challenge readers compute. Per-pixel weights are not used.

Ignore regions follow TrackEval's KITTI-MOTS/MOTS-Challenge preprocessing: a predicted detection
that is not matched (Hungarian on IoU, pairs with IoU ≥ 0.5) to a ground-truth detection and lies
by more than half of its area on the ignore region is removed. The ignore region is ground-truth
void (the ignore label: MOTS's 10000 "ignore region") plus the crowd region of the evaluated class
(a ground-truth pixel of the class with instance 0, which KITTI-STEP and Cityscapes-VPS have).
Track ids are then renumbered 0..n−1 in increasing order, as TrackEval does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

from vpsbench.statistics import JointHistogram

IntArray = npt.NDArray[np.int64]
Float64Array = npt.NDArray[np.float64]

EPS = float(np.finfo(np.float64).eps)  # TrackEval's tolerance on every threshold comparison
MATCH_THRESHOLD = 0.5  # IoU of a match for the ignore-region rule, CLEAR and Identity


@dataclass(frozen=True)
class ClassTracks:
    """Detections of one class in one sequence: per frame, ids (0..n−1) and the IoU matrix."""

    gt_ids: tuple[IntArray, ...]
    pred_ids: tuple[IntArray, ...]
    similarity: tuple[Float64Array, ...]  # per frame, gt detections × predicted detections
    num_gt_ids: int
    num_pred_ids: int

    @property
    def num_frames(self) -> int:
        return len(self.gt_ids)

    @property
    def num_gt_dets(self) -> int:
        return sum(ids.size for ids in self.gt_ids)

    @property
    def num_pred_dets(self) -> int:
        return sum(ids.size for ids in self.pred_ids)


def _areas(ids: npt.NDArray[np.int32], pixels: npt.NDArray[np.int64]) -> tuple[IntArray, IntArray]:
    """Sorted unique ids and the summed pixels of each."""
    unique, inverse = np.unique(ids, return_inverse=True)
    return unique.astype(np.int64), np.bincount(inverse.reshape(-1), weights=pixels).astype(
        np.int64
    )


def frame_detections(
    table: JointHistogram, class_id: int, ignore_label: int, remove_ignored: bool = True
) -> tuple[IntArray, IntArray, Float64Array]:
    """Ground-truth ids, predicted ids and their IoU matrix in one mapped frame table.

    With ``remove_ignored``, unmatched predictions lying by more than half on the ignore region
    are dropped (TrackEval's KITTI-MOTS/MOTS-Challenge preprocessing).
    """
    gt_row = (table.gt_class == class_id) & (table.gt_instance > 0)
    pred_row = (table.pred_class == class_id) & (table.pred_instance > 0)
    gt_ids, gt_area = _areas(table.gt_instance[gt_row], table.pixels[gt_row])
    pred_ids, pred_area = _areas(table.pred_instance[pred_row], table.pixels[pred_row])
    both = gt_row & pred_row
    intersection = np.zeros((gt_ids.size, pred_ids.size), dtype=np.float64)
    np.add.at(
        intersection,
        (
            np.searchsorted(gt_ids, table.gt_instance[both]),
            np.searchsorted(pred_ids, table.pred_instance[both]),
        ),
        table.pixels[both],
    )
    union = gt_area[:, None] + pred_area[None, :] - intersection
    similarity = np.divide(intersection, union, out=np.zeros_like(intersection), where=union > 0)
    if not remove_ignored or pred_ids.size == 0:
        return gt_ids, pred_ids, similarity

    unmatched = np.ones(pred_ids.size, dtype=bool)
    if gt_ids.size:
        scores = np.where(similarity < MATCH_THRESHOLD - EPS, -10000.0, similarity)
        rows, cols = linear_sum_assignment(-scores)
        unmatched[cols[scores[rows, cols] > EPS]] = False
    on_ignore = pred_row & (
        (table.gt_class == ignore_label) | ((table.gt_class == class_id) & (table.gt_instance == 0))
    )
    ignored_pixels = np.zeros(pred_ids.size, dtype=np.float64)
    np.add.at(
        ignored_pixels,
        np.searchsorted(pred_ids, table.pred_instance[on_ignore]),
        table.pixels[on_ignore],
    )
    inside = ignored_pixels / np.maximum(pred_area, 1) > MATCH_THRESHOLD + EPS
    keep = ~(unmatched & inside)
    return gt_ids, pred_ids[keep], similarity[:, keep]


def _renumber(per_frame: Sequence[IntArray]) -> tuple[tuple[IntArray, ...], int]:
    """Map the ids present in any frame to 0..n−1 in increasing order."""
    present = np.unique(np.concatenate([np.zeros(0, np.int64), *per_frame]))
    return tuple(np.searchsorted(present, ids).astype(np.int64) for ids in per_frame), int(
        present.size
    )


def class_tracks(
    frames: Sequence[JointHistogram],
    class_id: int,
    ignore_label: int,
    remove_ignored: bool = True,
) -> ClassTracks:
    """The detections of ``class_id`` in every frame of a sequence (mapped tables, in order)."""
    detections = [frame_detections(f, class_id, ignore_label, remove_ignored) for f in frames]
    gt_ids, num_gt = _renumber([d[0] for d in detections])
    pred_ids, num_pred = _renumber([d[1] for d in detections])
    return ClassTracks(
        gt_ids=gt_ids,
        pred_ids=pred_ids,
        similarity=tuple(d[2] for d in detections),
        num_gt_ids=num_gt,
        num_pred_ids=num_pred,
    )
