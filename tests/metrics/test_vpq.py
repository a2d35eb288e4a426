"""VPQ (Kim et al. 2020, VPSNet eval_vpq): hand-computed tube cases and random checks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytest

from tests.metrics.test_pq import RANDOM_SPACE, TOY, assert_same_pq, frame, tables_of
from tests.random_videos import random_split
from vpsbench.metrics.pq import panoptic_quality
from vpsbench.metrics.reference import reference_vpq
from vpsbench.metrics.vpq import VPQResult, video_panoptic_quality
from vpsbench.statistics import joint_histogram
from vpsbench.video import PanopticFrame

ROAD, CAR = 0, 2
VOID, PRED_VOID = 255, -1

Video = list[tuple[PanopticFrame, PanopticFrame]]


def assert_same_vpq(fast: VPQResult, reference: dict[str, Any], tolerance: float = 1e-12) -> None:
    """Fast and reference VPQ agree on every window size."""
    assert fast.vpq == pytest.approx(reference["VPQ"], abs=tolerance)
    assert fast.vpq_things == pytest.approx(reference["VPQ_things"], abs=tolerance)
    assert fast.vpq_stuff == pytest.approx(reference["VPQ_stuff"], abs=tolerance)
    assert fast.per_window.keys() == reference["per_window"].keys()
    for size, result in fast.per_window.items():
        assert_same_pq(result, reference["per_window"][size], tolerance)


def vpq_both_ways(videos: Mapping[str, Video], window_sizes: Sequence[int]) -> VPQResult:
    """Fast VPQ of the videos, after checking that the reference agrees on it."""
    fast = video_panoptic_quality(
        ([joint_histogram(gt, pred) for gt, pred in video] for video in videos.values()),
        TOY,
        window_sizes,
    )
    with_weights = {
        name: [(gt, pred, None) for gt, pred in video] for name, video in videos.items()
    }
    assert_same_vpq(fast, reference_vpq(with_weights, TOY, window_sizes))
    return fast


def car_counts(result: VPQResult, size: int) -> tuple[int, int, int]:
    value = result.per_window[size].per_class[CAR]
    return value.tp, value.fp, value.fn


CAR_GT = frame([CAR] * 5 + [VOID] * 3, [1] * 5 + [0] * 3)


def test_tube_iou_is_the_pooled_iou_of_its_frames() -> None:
    frame_a = (CAR_GT, frame([CAR] * 2 + [PRED_VOID] * 6, [7] * 2 + [0] * 6))
    frame_b = (CAR_GT, frame([CAR] * 4 + [PRED_VOID] * 4, [7] * 4 + [0] * 4))
    result = vpq_both_ways({"video": [frame_a, frame_b]}, (1, 2))
    # k = 1: frame a: IoU = 2 / (2 + 5 − 2) = 0.4 → FN + FP; frame b: IoU = 4/5 = 0.8 → TP.
    #        PQ_car = 0.8 / (1 + 1/2 + 1/2) = 0.4.
    assert car_counts(result, 1) == (1, 1, 1)
    assert result.per_window[1].pq == pytest.approx(0.4)
    # k = 2: one tube, |p∩g| = 2 + 4 = 6, union = 6 + 10 − 6 = 10 → IoU 0.6 > 0.5 → TP.
    assert car_counts(result, 2) == (1, 0, 0)
    assert result.per_window[2].pq == pytest.approx(0.6)
    # VPQ = (0.4 + 0.6) / 2; car is the only present class, a thing.
    assert result.vpq == pytest.approx(0.5)
    assert result.vpq_things == pytest.approx(0.5)
    assert result.vpq_stuff == 0.0


def test_identity_switch_breaks_the_tube() -> None:
    gt = frame([CAR] * 4, [1] * 4)
    frame_a = (gt, frame([CAR] * 4, [7] * 4))
    frame_b = (gt, frame([CAR] * 4, [8] * 4))
    result = vpq_both_ways({"video": [frame_a, frame_b]}, (1, 2))
    # k = 1: each frame a perfect TP → PQ = 2 / 2 = 1.
    assert car_counts(result, 1) == (2, 0, 0)
    assert result.per_window[1].pq == pytest.approx(1.0)
    # k = 2: GT tube 8 px; pred 7 and pred 8 each cover 4 → IoU 4/8 = 0.5, not > 0.5.
    #        FN 1, FP 2 → PQ = 0 / (0 + 2/2 + 1/2) = 0.
    assert car_counts(result, 2) == (0, 2, 1)
    assert result.per_window[2].pq == 0.0
    assert result.vpq == pytest.approx(0.5)


def test_windows_slide_with_stride_one_within_each_sequence() -> None:
    perfect = (frame([CAR, CAR, ROAD], [1, 1, 0]), frame([CAR, CAR, ROAD], [4, 4, 0]))
    result = vpq_both_ways({"long": [perfect] * 3, "short": [perfect]}, (1, 2, 3, 4))
    # 3 + 1 windows of one frame, 2 of two frames, 1 of three, none of four (both too short).
    assert car_counts(result, 1) == (4, 0, 0)
    assert car_counts(result, 2) == (2, 0, 0)
    assert car_counts(result, 3) == (1, 0, 0)
    assert set(result.per_window) == {1, 2, 3}
    assert result.vpq == pytest.approx(1.0)


def test_tubes_do_not_cross_sequences() -> None:
    gt = frame([CAR] * 4, [1] * 4)
    frame_a = (gt, frame([CAR] * 2 + [ROAD] * 2, [7] * 2 + [0] * 2))
    frame_b = (gt, frame([CAR] * 4, [7] * 4))
    result = vpq_both_ways({"first": [frame_a], "second": [frame_b]}, (1, 2))
    # Two one-frame sequences: no two-frame window, so only k = 1 is scored.
    assert set(result.per_window) == {1}
    # frame a: car IoU 2/4 → FN + FP, road FP (on GT car); frame b: TP. PQ_car = 1/2, PQ_road = 0.
    assert car_counts(result, 1) == (1, 1, 1)
    assert result.vpq == pytest.approx((0.5 + 0.0) / 2)


def test_single_frame_windows_are_image_pq() -> None:
    rng = np.random.default_rng(3)
    split = random_split(rng, 3, (2, 5), 16, 24, 8, (4, 5, 6, 7))
    tables = [tables_of(video) for video in split.values()]
    image = panoptic_quality((table for video in tables for table in video), RANDOM_SPACE)
    video = video_panoptic_quality(tables, RANDOM_SPACE, window_sizes=(1,))
    assert video.vpq == pytest.approx(image.pq, abs=1e-15)


def test_window_sizes_are_checked() -> None:
    with pytest.raises(ValueError, match="positive"):
        video_panoptic_quality([], TOY, window_sizes=(0, 1))
    empty = video_panoptic_quality([], TOY)
    assert (empty.vpq, empty.per_window) == (0.0, {})


# -- randomised comparison against the reference on full label arrays ------------------------

RANDOM_CASES: list[dict[str, Any]] = [
    {},
    {"num_tracks": 14, "max_instance": 3, "crowd_probability": 0.3},
    {"ignore_boxes": 3, "void_probability": 0.6, "stuff_instances_in_prediction": True},
    {"id_switch_probability": 0.5, "class_error_probability": 0.25, "weighted": True},
]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("case", range(len(RANDOM_CASES)))
def test_matches_reference_on_random_videos(seed: int, case: int) -> None:
    rng = np.random.default_rng(2000 + 100 * case + seed)
    split = random_split(rng, 4, (1, 2, 3, 5, 6), 16, 24, 8, (4, 5, 6, 7), **RANDOM_CASES[case])
    window_sizes = (1, 2, 3, 4) if seed != 2 else (2, 5)
    fast = video_panoptic_quality(
        (tables_of(video) for video in split.values()), RANDOM_SPACE, window_sizes
    )
    assert_same_vpq(fast, reference_vpq(split, RANDOM_SPACE, window_sizes))
    assert fast.per_window, "the random split should have windows"
