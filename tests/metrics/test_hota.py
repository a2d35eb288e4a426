"""HOTA from the joint histograms equals TrackEval's HOTA on the same masks; hand cases."""

from __future__ import annotations

import numpy as np
import pytest

from tests.metrics.trackeval_oracle import (
    assert_matches_trackeval,
    preprocessed_sequences,
    trackeval_scores,
)
from tests.random_videos import Frame, random_split
from vpsbench.datasets.base import LabelSpace
from vpsbench.metrics.detections import class_tracks
from vpsbench.metrics.hota import ALPHAS
from vpsbench.metrics.tracking import TrackingResult, tracking_quality
from vpsbench.statistics import joint_histogram
from vpsbench.video import PanopticFrame

NUM_CLASSES = 5
THINGS = (3, 4)
SPACE = LabelSpace("tracks", tuple(f"c{i}" for i in range(NUM_CLASSES)), frozenset(THINGS))


def score(split: dict[str, list[Frame]], space: LabelSpace = SPACE) -> TrackingResult:
    """vpsbench's tracking metrics of a split whose predictions are already in the label space."""
    tables = (
        (name, [joint_histogram(gt, pred) for gt, pred, _ in video])
        for name, video in split.items()
    )
    return tracking_quality(tables, space)


def random_tracking_split(seed: int) -> dict[str, list[Frame]]:
    """Three short random videos with crowd, ignore regions, id switches and merged tracks."""
    rng = np.random.default_rng(seed)
    return random_split(
        rng, 3, (1, 4, 7), 24, 32, NUM_CLASSES, THINGS,
        num_tracks=7, crowd_probability=0.2, ignore_boxes=2,
    )  # fmt: skip


@pytest.mark.parametrize("seed", range(8))
def test_hota_equals_trackeval_on_random_videos(seed: int) -> None:
    split = random_tracking_split(seed)
    compared = assert_matches_trackeval(
        score(split), trackeval_scores(split, THINGS, 255), "HOTA", THINGS, 1e-9
    )
    assert compared > 100


def test_hota_arrays_over_alpha_equal_trackeval() -> None:
    split = random_tracking_split(11)
    ours = score(split)
    reference = trackeval_scores(split, THINGS, 255)
    assert ALPHAS.size == 19
    for c in THINGS:
        hota = ours.per_class[c].hota
        assert hota is not None
        for field, values in hota.arrays.items():
            np.testing.assert_allclose(values, reference[c]["HOTA"][field], rtol=0, atol=1e-9)
        for field, values in hota.per_alpha().items():
            np.testing.assert_allclose(values, reference[c]["HOTA"][field], rtol=0, atol=1e-9)


@pytest.mark.parametrize("seed", range(4))
def test_detections_and_ignore_rule_equal_trackeval_preprocessing(seed: int) -> None:
    """Same detections, ids and IoUs as TrackEval's KITTI-MOTS preprocessing, frame by frame."""
    split = random_tracking_split(seed)
    removed = 0
    for name, video in split.items():
        reference = preprocessed_sequences(video, THINGS, 255, name)
        tables = [joint_histogram(gt, pred) for gt, pred, _ in video]
        for c in THINGS:
            tracks = class_tracks(tables, c, 255)
            kept_all = class_tracks(tables, c, 255, remove_ignored=False)
            removed += kept_all.num_pred_dets - tracks.num_pred_dets
            expected = reference[c]
            assert tracks.num_gt_ids == expected["num_gt_ids"]
            assert tracks.num_pred_ids == expected["num_tracker_ids"]
            for t in range(len(video)):
                np.testing.assert_array_equal(tracks.gt_ids[t], expected["gt_ids"][t])
                np.testing.assert_array_equal(tracks.pred_ids[t], expected["tracker_ids"][t])
                np.testing.assert_allclose(
                    tracks.similarity[t], expected["similarity_scores"][t], rtol=0, atol=1e-12
                )
    assert removed > 0  # the data exercise the ignore-region rule


def _frame(boxes: list[tuple[int, int, int, int, int, int]], size: int = 12) -> PanopticFrame:
    """A frame of class-0 background with (class, instance, top, left, height, width) boxes."""
    semantic = np.zeros((size, size), dtype=np.int32)
    instance = np.zeros((size, size), dtype=np.int32)
    for cls, inst, top, left, height, width in boxes:
        semantic[top : top + height, left : left + width] = cls
        instance[top : top + height, left : left + width] = inst
    return PanopticFrame(semantic, instance)


CAR = 3
HAND_SPACE = LabelSpace("hand", ("bg", "a", "b", "car"), frozenset({CAR}))


def test_perfect_tracking_scores_one() -> None:
    video = [
        (_frame([(CAR, 1, t, 0, 3, 3), (CAR, 2, 6, t, 3, 3)]),) * 2 + (None,) for t in range(4)
    ]
    result = score({"s": video}, HAND_SPACE)  # type: ignore[dict-item]
    summary = result.class_averaged.summary()
    for field in ("HOTA", "DetA", "AssA", "LocA", "DetRe", "DetPr", "AssRe", "AssPr"):
        assert summary[field] == pytest.approx(1.0, abs=1e-12), field
    assert summary["MOTA"] == 1.0 and summary["IDF1"] == 1.0 and summary["IDSW"] == 0


def test_one_id_switch_halves_association() -> None:
    """A track predicted with id 1 for 2 frames then id 2 for 2: DetA 1, AssA 1/2."""
    video = [
        (_frame([(CAR, 1, 0, t, 3, 3)]), _frame([(CAR, 1 if t < 2 else 2, 0, t, 3, 3)]), None)
        for t in range(4)
    ]
    summary = score({"s": video}, HAND_SPACE).per_class[CAR].summary()
    assert summary["DetA"] == 1.0
    assert summary["AssA"] == pytest.approx(0.5)
    assert summary["HOTA"] == pytest.approx(np.sqrt(0.5))
    assert summary["IDSW"] == 1
