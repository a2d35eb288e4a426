"""STQ/AQ/SQ on hand-computed cases (randomised checks against the reference live beside)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vpsbench.datasets.base import LabelSpace
from vpsbench.metrics.stq import segmentation_and_tracking_quality
from vpsbench.statistics import JointHistogram, joint_histogram
from vpsbench.video import PanopticFrame

CITYSCAPES_19 = LabelSpace(
    name="cs19",
    class_names=tuple(f"c{i}" for i in range(19)),
    thing_classes=frozenset(range(11, 19)),
)
ROAD, CAR, VOID = 0, 13, 255


def frame(semantic: list[int], instance: list[int]) -> PanopticFrame:
    return PanopticFrame.from_arrays([semantic], [instance])


def stq_of(frames: list[tuple[PanopticFrame, PanopticFrame]], weights=None):  # type: ignore[no-untyped-def]
    tables = [
        joint_histogram(gt, pred, None if weights is None else weights[i])
        for i, (gt, pred) in enumerate(frames)
    ]
    return segmentation_and_tracking_quality(
        [("seq", JointHistogram.merge(tables), len(frames))], CITYSCAPES_19
    )


def test_crowd_and_ignore_follow_deeplab2() -> None:
    # Pixels:       0     1     2     3    4    5    6    7    8 (crowd) 9 (ignore)
    gt = frame(
        [ROAD, ROAD, ROAD, ROAD, CAR, CAR, CAR, CAR, CAR, VOID], [0, 0, 0, 0, 1, 1, 1, 1, 0, 0]
    )
    pred = frame(
        [ROAD, ROAD, ROAD, CAR, CAR, CAR, CAR, CAR, CAR, CAR], [0, 0, 0, 5, 5, 5, 5, 5, 5, 5]
    )
    result = stq_of([(gt, pred)])
    # AQ: GT tube = pixels 4..7 (4). Predicted tube = pixels 3..9 minus crowd pixel 8 = 6 pixels
    # (the ignore pixel 9 still counts). TPA = 4, TPA+FPA+FNA = 6 → AQ = 1/4 · 4 · 4/6 = 2/3.
    assert result.aq == pytest.approx(2 / 3, abs=1e-12)
    # SQ: road IoU = 3 / (4 + 3 − 3) = 3/4; car IoU = 5 / (5 + 6 − 5) = 5/6 (ignore row zeroed).
    assert result.iou_per_class == pytest.approx({ROAD: 0.75, CAR: 5 / 6}, abs=1e-12)
    assert result.sq == pytest.approx((0.75 + 5 / 6) / 2, abs=1e-12)
    assert result.stq == pytest.approx(math.sqrt(2 / 3 * (0.75 + 5 / 6) / 2), abs=1e-12)


def test_split_track_over_two_frames() -> None:
    gt = frame([CAR, CAR, ROAD, ROAD], [7, 7, 0, 0])
    first = frame([CAR, CAR, ROAD, ROAD], [1, 1, 0, 0])
    second = frame([CAR, CAR, ROAD, ROAD], [2, 2, 0, 0])
    result = stq_of([(gt, first), (gt, second)])
    # One GT tube of 4 pixels; two predicted tubes of 2 pixels each with TPA 2:
    # AQ = 1/4 · (2 · 2/4 + 2 · 2/4) = 1/2. Segmentation is perfect: SQ = 1.
    assert result.aq == pytest.approx(0.5, abs=1e-12)
    assert result.sq == pytest.approx(1.0, abs=1e-12)
    assert result.stq == pytest.approx(math.sqrt(0.5), abs=1e-12)


def test_void_prediction_counts_as_an_iou_zero_class_like_deeplab2() -> None:
    gt = frame([ROAD, ROAD, ROAD, ROAD], [0, 0, 0, 0])
    pred = frame([ROAD, ROAD, ROAD, -1], [0, 0, 0, 0])
    table = joint_histogram(gt, pred)
    with_void = segmentation_and_tracking_quality([("s", table, 1)], CITYSCAPES_19)
    without = segmentation_and_tracking_quality([("s", table, 1)], CITYSCAPES_19, False)
    # Road IoU = 3/4; DeepLab2 adds the void column (union 1, IoU 0) to the mean.
    assert with_void.sq == pytest.approx(0.375, abs=1e-12)
    assert without.sq == pytest.approx(0.75, abs=1e-12)


def test_weights_multiply_every_count() -> None:
    gt = frame([CAR, CAR, CAR, ROAD], [1, 1, 1, 0])
    pred = frame([CAR, CAR, ROAD, ROAD], [3, 3, 0, 0])
    weights = [np.array([[1.0, 1.0, 2.0, 0.5]])]
    result = stq_of([(gt, pred)], weights)
    # GT tube weight 4, predicted tube 2, TPA 2: AQ = 1/4 · 2 · 2/4 = 1/4.
    assert result.aq == pytest.approx(0.25, abs=1e-12)
    # car IoU = 2 / (4 + 2 − 2) = 1/2; road IoU = 0.5 / (0.5 + 2.5 − 0.5) = 0.2.
    assert result.sq == pytest.approx((0.5 + 0.2) / 2, abs=1e-12)


def test_split_aq_is_tube_weighted_and_sequences_are_separate() -> None:
    gt = frame([CAR, CAR, ROAD, ROAD], [1, 1, 0, 0])
    good = joint_histogram(gt, frame([CAR, CAR, ROAD, ROAD], [1, 1, 0, 0]))
    gt_two = frame([CAR, CAR, CAR, CAR], [1, 1, 2, 2])
    merged = joint_histogram(gt_two, frame([CAR, CAR, CAR, CAR], [1, 1, 1, 1]))
    result = segmentation_and_tracking_quality([("a", good, 1), ("b", merged, 1)], CITYSCAPES_19)
    # Sequence a: 1 tube, AQ 1. Sequence b: 2 tubes, each 1/2 · 2 · 2/4 = 1/2 → AQ_b = 1/2.
    # Split AQ = (1 + 1) / 3 tubes = 2/3, not the mean of 1 and 1/2.
    assert [s.aq for s in result.per_sequence] == pytest.approx([1.0, 0.5], abs=1e-12)
    assert result.aq == pytest.approx(2 / 3, abs=1e-12)
    assert [s.num_tubes for s in result.per_sequence] == [1, 2]
