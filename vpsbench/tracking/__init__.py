"""Unsupervised tracking for the VPS baselines: SORT (Bewley et al. 2016) and clip stitching.

``kalman`` is SORT's constant-velocity box filter, ``sort`` the tracker, ``panoptic`` turns
per-frame panoptic predictions into video predictions with it, and ``clips`` aligns instance ids
across overlapping clips (the DepthG + VideoCutLER baseline of the VideoCUPS paper, Sec. 4).
"""

from __future__ import annotations

from vpsbench.tracking.clips import align_clip_ids, split_into_clips, stitch_clips
from vpsbench.tracking.kalman import BoxKalmanFilter, KalmanNoise
from vpsbench.tracking.panoptic import UnconfirmedPolicy, track_panoptic_video
from vpsbench.tracking.sort import (
    Detection,
    Sort,
    SortConfig,
    TrackAssignment,
    TrackedDetection,
    iou_matrix,
)

__all__ = [
    "BoxKalmanFilter",
    "Detection",
    "KalmanNoise",
    "Sort",
    "SortConfig",
    "TrackAssignment",
    "TrackedDetection",
    "UnconfirmedPolicy",
    "align_clip_ids",
    "iou_matrix",
    "split_into_clips",
    "stitch_clips",
    "track_panoptic_video",
]
