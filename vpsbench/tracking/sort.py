"""SORT, Simple Online and Realtime Tracking (Bewley et al. 2016), as the authors' ``sort.py`` runs.

Per frame: every track's Kalman filter predicts its box (a track whose prediction is not finite is
deleted); detections are assigned to the predicted boxes on IoU, matched tracks are corrected
with their detection, every unmatched detection starts a tentative track, and a track unmatched
for more than ``max_age`` consecutive frames is deleted. Track ids start at 1 and are never
reused. Defaults are the paper's (``max_age`` 1, IoU 0.3) and its reference code's
(``min_hits`` 3). Where the paper is silent this follows the reference ``sort.py`` (abewley/sort),
whose output it reproduces row for row (``tests/equivalence/test_sort_mot15.py``):

* association (``"bewley"``): when every detection and every track has at most one partner with
  IoU strictly above the threshold, those pairs are the matches; otherwise the Hungarian
  algorithm maximises the summed *raw* IoU, and matched pairs with IoU below the threshold are
  then rejected (so a valid pair can be traded for two that are rejected afterwards);
* unmatched detections start tracks in the reference's order: those the assignment left out, in
  input order, then those of rejected pairs, in input order;
* a track is output in a frame only when it is matched (or born) in it and its current streak of
  consecutive matches after the birth frame has reached ``min_hits``, or the video is still in its
  first ``min_hits`` frames; so a new object is output from its ``min_hits + 1``-th consecutive
  detection, and a track that misses a frame is hidden again until a new streak of ``min_hits``
  (``SortConfig.sticky_confirmation`` keeps a once-output track output instead);
* deletion happens after association, so with ``max_age = 1`` a track missed in one frame can
  still be matched in the next (a one-frame gap keeps its id, a two-frame gap does not).

``association="threshold-first"`` instead runs the Hungarian algorithm on the admissible pairs
only (IoU ≥ threshold), which never trades a valid pair for rejected ones; it is not SORT's rule.

Two known differences, neither changing tracks or boxes: the Hungarian solver is SciPy's, not
``lap.lapjv``, so where several assignments tie (pairs of zero IoU, all rejected) detections may
be born in another order and same-frame births get their ids swapped; and a prediction that is
infinite but not NaN deletes the track here (the reference drops its row but keeps the track,
misaligning its track indices).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

from vpsbench.tracking.kalman import Box, BoxKalmanFilter, FloatArray, KalmanNoise

IndexArray = npt.NDArray[np.intp]
Association = Literal["bewley", "threshold-first"]
ASSOCIATIONS: tuple[Association, ...] = ("bewley", "threshold-first")


@dataclass(frozen=True)
class Detection:
    """One detected object of a frame: box ``(x1, y1, x2, y2)``, score, and an opaque payload."""

    box: Box
    score: float = 1.0
    payload: object = field(default=None, compare=False)

    def __post_init__(self) -> None:
        x1, y1, x2, y2 = self.box
        if not all(math.isfinite(value) for value in self.box):
            raise ValueError(f"detection box {self.box} is not finite")
        if not (x2 > x1 and y2 > y1):
            raise ValueError(f"detection box {self.box} has no area (need x2 > x1 and y2 > y1)")


@dataclass(frozen=True)
class SortConfig:
    """SORT's hyper-parameters; the defaults are those proposed by Bewley et al. 2016."""

    max_age: int = 1
    min_hits: int = 3
    iou_threshold: float = 0.3
    sticky_confirmation: bool = False
    noise: KalmanNoise = field(default_factory=KalmanNoise)
    association: Association = "bewley"

    def __post_init__(self) -> None:
        if self.max_age < 0:
            raise ValueError(f"max_age must be >= 0, got {self.max_age}")
        if self.min_hits < 0:
            raise ValueError(f"min_hits must be >= 0, got {self.min_hits}")
        if not 0.0 <= self.iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in [0, 1], got {self.iou_threshold}")
        if self.association not in ASSOCIATIONS:
            raise ValueError(f"association must be one of {ASSOCIATIONS}, got {self.association!r}")


@dataclass(frozen=True)
class TrackedDetection:
    """A detection of the current frame that belongs to an output track, with the track's box."""

    track_id: int
    detection: Detection
    box: Box


@dataclass(frozen=True)
class TrackAssignment:
    """The track a detection went to, and whether SORT outputs that track in this frame."""

    detection_index: int
    track_id: int
    detection: Detection
    box: Box
    confirmed: bool


@dataclass(slots=True)
class _Track:
    """A live track: its filter and the match counters SORT's birth and death rules read."""

    track_id: int
    motion: BoxKalmanFilter
    hit_streak: int = 0
    frames_since_update: int = 0
    was_output: bool = False


def iou_matrix(boxes_a: npt.ArrayLike, boxes_b: npt.ArrayLike) -> FloatArray:
    """IoU of every ``(x1, y1, x2, y2)`` box of ``boxes_a`` (N × 4) with each of ``boxes_b``."""
    first = np.asarray(boxes_a, dtype=np.float64).reshape(-1, 4)
    second = np.asarray(boxes_b, dtype=np.float64).reshape(-1, 4)
    left = np.maximum(first[:, None, 0], second[None, :, 0])
    top = np.maximum(first[:, None, 1], second[None, :, 1])
    right = np.minimum(first[:, None, 2], second[None, :, 2])
    bottom = np.minimum(first[:, None, 3], second[None, :, 3])
    intersection = np.clip(right - left, 0.0, None) * np.clip(bottom - top, 0.0, None)
    area_first = (first[:, 2] - first[:, 0]) * (first[:, 3] - first[:, 1])
    area_second = (second[:, 2] - second[:, 0]) * (second[:, 3] - second[:, 1])
    union = area_first[:, None] + area_second[None, :] - intersection
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, intersection / union, 0.0)
    return np.asarray(iou, dtype=np.float64)


def associate(iou: FloatArray, iou_threshold: float) -> tuple[IndexArray, IndexArray]:
    """Threshold-first Hungarian: maximise the IoU of admissible pairs (IoU ≥ threshold, > 0).

    Not SORT's rule (see :func:`associate_bewley`); clip stitching and ``"threshold-first"`` use it.
    """
    if iou.size == 0:
        empty = np.zeros(0, dtype=np.intp)
        return empty, empty
    admissible = (iou >= iou_threshold) & (iou > 0)
    rows, columns = linear_sum_assignment(np.where(admissible, iou, 0.0), maximize=True)
    keep = admissible[rows, columns]
    return rows[keep].astype(np.intp), columns[keep].astype(np.intp)


def associate_bewley(
    iou: FloatArray, iou_threshold: float
) -> tuple[IndexArray, IndexArray, IndexArray]:
    """SORT's association of detections (rows) to tracks (columns), as the reference code does it.

    Returns the matched rows and columns (by row) and the unmatched rows in the order the
    reference starts tracks for them: rows the assignment left out, then rows of rejected pairs.
    """
    num_rows, num_columns = iou.shape
    if min(num_rows, num_columns) == 0:
        rows = columns = np.zeros(0, dtype=np.intp)
    else:
        above = iou > iou_threshold
        if above.sum(axis=1).max() == 1 and above.sum(axis=0).max() == 1:
            rows, columns = np.nonzero(above)
        else:
            rows, columns = linear_sum_assignment(iou, maximize=True)
        rows, columns = rows.astype(np.intp), columns.astype(np.intp)
    keep = iou[rows, columns] >= iou_threshold
    assigned = np.zeros(num_rows, dtype=bool)
    assigned[rows] = True
    unmatched = np.concatenate([np.flatnonzero(~assigned), rows[~keep]]).astype(np.intp)
    return rows[keep], columns[keep], unmatched


def _associate_threshold_first(
    iou: FloatArray, iou_threshold: float
) -> tuple[IndexArray, IndexArray, IndexArray]:
    """:func:`associate` with the unmatched rows in input order, for ``"threshold-first"``."""
    rows, columns = associate(iou, iou_threshold)
    matched = np.zeros(iou.shape[0], dtype=bool)
    matched[rows] = True
    return rows, columns, np.flatnonzero(~matched).astype(np.intp)


class Sort:
    """The SORT multi-object tracker (Bewley et al. 2016): call :meth:`update` once per frame."""

    def __init__(self, config: SortConfig | None = None) -> None:
        """A tracker with no tracks, before the first frame."""
        self.config = config if config is not None else SortConfig()
        self._tracks: list[_Track] = []
        self._next_id = 1
        self._frame_count = 0

    @property
    def frame_count(self) -> int:
        """How many frames have been processed."""
        return self._frame_count

    @property
    def active_track_ids(self) -> tuple[int, ...]:
        """Ids of the tracks still alive (tentative or confirmed), in birth order."""
        return tuple(track.track_id for track in self._tracks)

    def allocate_id(self) -> int:
        """Take the next unused id, so callers can label untracked things without clashes."""
        track_id = self._next_id
        self._next_id += 1
        return track_id

    def update(self, detections: Sequence[Detection]) -> list[TrackedDetection]:
        """Track one frame; returns its detections that belong to output tracks, in input order."""
        return [
            TrackedDetection(assignment.track_id, assignment.detection, assignment.box)
            for assignment in self.assign(detections)
            if assignment.confirmed
        ]

    def assign(self, detections: Sequence[Detection]) -> list[TrackAssignment]:
        """Track one frame; returns every detection's track (tentative ones too), in input order."""
        self._frame_count += 1
        predicted_boxes = self._predict_tracks()
        detection_boxes = np.array([detection.box for detection in detections], dtype=np.float64)
        iou = iou_matrix(detection_boxes, predicted_boxes)
        if self.config.association == "bewley":
            matched_detections, matched_tracks, unmatched = associate_bewley(
                iou, self.config.iou_threshold
            )
        else:
            matched_detections, matched_tracks, unmatched = _associate_threshold_first(
                iou, self.config.iou_threshold
            )

        track_of_detection: dict[int, _Track] = {}
        for detection_index, track_index in zip(
            matched_detections.tolist(), matched_tracks.tolist(), strict=True
        ):
            track = self._tracks[track_index]
            track.motion.update(detections[detection_index].box)
            track.hit_streak += 1
            track.frames_since_update = 0
            track_of_detection[detection_index] = track
        for detection_index in unmatched.tolist():
            detection = detections[detection_index]
            track = _Track(self.allocate_id(), BoxKalmanFilter(detection.box, self.config.noise))
            self._tracks.append(track)
            track_of_detection[detection_index] = track

        assignments = []
        for detection_index, detection in enumerate(detections):
            track = track_of_detection[detection_index]
            confirmed = self._is_output(track)
            track.was_output = track.was_output or confirmed
            assignments.append(
                TrackAssignment(
                    detection_index, track.track_id, detection, track.motion.box, confirmed
                )
            )
        self._tracks = [
            track for track in self._tracks if track.frames_since_update <= self.config.max_age
        ]
        return assignments

    def _predict_tracks(self) -> FloatArray:
        """Advance every track one frame, drop those whose prediction broke, return their boxes.

        As in the reference, a track missed in the previous frame restarts its hit streak here.
        """
        predicted: list[Box] = []
        surviving: list[_Track] = []
        for track in self._tracks:
            box = track.motion.predict()
            if track.frames_since_update > 0:
                track.hit_streak = 0
            track.frames_since_update += 1
            if all(math.isfinite(value) for value in box):
                predicted.append(box)
                surviving.append(track)
        self._tracks = surviving
        return np.array(predicted, dtype=np.float64).reshape(-1, 4)

    def _is_output(self, track: _Track) -> bool:
        """SORT's output rule for a track matched this frame (see the module docstring)."""
        if self._frame_count <= self.config.min_hits or track.hit_streak >= self.config.min_hits:
            return True
        return self.config.sticky_confirmation and track.was_output
