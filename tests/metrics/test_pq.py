"""PQ (Kirillov et al. 2019) with the VPSNet eval_vpq rules: hand-computed cases, random checks."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.random_videos import Frame, random_split
from vpsbench.datasets.base import LabelSpace
from vpsbench.metrics.pq import PQCounts, PQResult, panoptic_quality, pq_counts
from vpsbench.metrics.reference import reference_pq
from vpsbench.statistics import JointHistogram, joint_histogram
from vpsbench.video import PanopticFrame

TOY = LabelSpace(
    name="toy", class_names=("road", "sky", "car", "person"), thing_classes=frozenset({2, 3})
)
ROAD, SKY, CAR, PERSON = 0, 1, 2, 3
VOID, PRED_VOID = 255, -1


def frame(semantic: list[int], instance: list[int]) -> PanopticFrame:
    """A one-row frame."""
    return PanopticFrame.from_arrays([semantic], [instance])


def pq_both_ways(
    frames: list[tuple[PanopticFrame, PanopticFrame]], label_space: LabelSpace = TOY
) -> PQResult:
    """Fast PQ of the frames, after checking that the reference agrees on it."""
    fast = panoptic_quality([joint_histogram(gt, pred) for gt, pred in frames], label_space)
    reference = reference_pq({"seq": [(gt, pred, None) for gt, pred in frames]}, label_space)
    assert_same_pq(fast, reference)
    return fast


def assert_same_pq(fast: PQResult, reference: dict[str, Any], tolerance: float = 1e-12) -> None:
    """Fast and reference PQ agree: counts exactly, scores to ``tolerance``."""
    assert fast.pq == pytest.approx(reference["PQ"], abs=tolerance)
    assert fast.sq == pytest.approx(reference["SQ"], abs=tolerance)
    assert fast.rq == pytest.approx(reference["RQ"], abs=tolerance)
    assert fast.pq_things == pytest.approx(reference["PQ_things"], abs=tolerance)
    assert fast.pq_stuff == pytest.approx(reference["PQ_stuff"], abs=tolerance)
    assert fast.per_class.keys() == reference["per_class"].keys()
    for cls, value in fast.per_class.items():
        expected = reference["per_class"][cls]
        assert (value.tp, value.fp, value.fn) == (expected["tp"], expected["fp"], expected["fn"])
        assert value.pq == pytest.approx(expected["pq"], abs=tolerance)
        assert value.sq == pytest.approx(expected["sq"], abs=tolerance)
        assert value.rq == pytest.approx(expected["rq"], abs=tolerance)


def counts_of(result: PQResult, cls: int) -> tuple[int, int, int]:
    value = result.per_class[cls]
    return value.tp, value.fp, value.fn


def test_true_positive_with_iou_three_quarters() -> None:
    gt = frame([CAR, CAR, CAR, CAR, ROAD, ROAD, ROAD, ROAD], [1, 1, 1, 1, 0, 0, 0, 0])
    pred = frame([CAR, CAR, CAR, ROAD, ROAD, ROAD, ROAD, ROAD], [7, 7, 7, 0, 0, 0, 0, 0])
    result = pq_both_ways([(gt, pred)])
    # car: |p∩g| = 3, union = 3 + 4 − 3 = 4 → IoU 0.75 > 0.5, TP.
    # road: |p∩g| = 4, union = 5 + 4 − 4 = 5 → IoU 0.8, TP.
    assert counts_of(result, CAR) == (1, 0, 0)
    assert counts_of(result, ROAD) == (1, 0, 0)
    assert result.per_class[CAR].pq == pytest.approx(0.75)
    assert result.per_class[ROAD].pq == pytest.approx(0.8)
    # PQ = (0.75 + 0.8) / 2; RQ = 1 for both; things = car, stuff = road.
    assert result.pq == pytest.approx(0.775)
    assert result.sq == pytest.approx(0.775)
    assert result.rq == pytest.approx(1.0)
    assert result.pq_things == pytest.approx(0.75)
    assert result.pq_stuff == pytest.approx(0.8)


def test_prediction_mostly_on_void_is_not_a_false_positive() -> None:
    gt = frame([ROAD, ROAD, ROAD, VOID, VOID, VOID], [0] * 6)
    pred = frame([ROAD, ROAD, CAR, CAR, CAR, CAR], [0, 0, 5, 5, 5, 6])
    result = pq_both_ways([(gt, pred)])
    # car 5: 3 pixels, 2 on void → 2/3 > 1/2: ignored. car 6: 1 pixel, all on void: ignored.
    # road: |p∩g| = 2, union = 2 + 3 − 2 = 3 → IoU 2/3, TP.
    assert counts_of(result, CAR) == (0, 0, 0)
    assert counts_of(result, ROAD) == (1, 0, 0)
    # Only road is present: PQ = 2/3; no thing class present → PQ^Th = 0.
    assert result.pq == pytest.approx(2 / 3)
    assert result.pq_things == 0.0
    assert result.pq_stuff == pytest.approx(2 / 3)


def test_prediction_exactly_half_on_void_is_a_false_positive() -> None:
    gt = frame([ROAD, ROAD, ROAD, VOID], [0] * 4)
    pred = frame([ROAD, ROAD, CAR, CAR], [0, 0, 5, 5])
    result = pq_both_ways([(gt, pred)])
    # car 5: 2 pixels, 1 on void → 1/2 is not more than half: FP.
    # road: IoU = 2 / (2 + 3 − 2) = 2/3, TP.
    assert counts_of(result, CAR) == (0, 1, 0)
    assert counts_of(result, ROAD) == (1, 0, 0)
    # PQ_car = 0 / (0 + 1/2) = 0, PQ_road = 2/3 → PQ = 1/3.
    assert result.pq == pytest.approx(1 / 3)


def test_prediction_on_crowd_of_its_own_class_is_not_a_false_positive() -> None:
    gt = frame([CAR, CAR, CAR, CAR, ROAD, ROAD, ROAD], [0, 0, 0, 0, 0, 0, 0])  # car crowd
    pred = frame([CAR, CAR, CAR, PERSON, CAR, ROAD, ROAD], [9, 9, 9, 4, 9, 0, 0])
    result = pq_both_ways([(gt, pred)])
    # car 9: 4 pixels, 3 on car crowd → 3/4 > 1/2: ignored. The crowd is never a FN.
    # person 4: 1 pixel on *car* crowd (another class) → FP.
    # road: IoU = 2 / (2 + 3 − 2) = 2/3, TP.
    assert counts_of(result, CAR) == (0, 0, 0)
    assert counts_of(result, PERSON) == (0, 1, 0)
    assert counts_of(result, ROAD) == (1, 0, 0)
    # PQ = (PQ_person 0 + PQ_road 2/3) / 2 = 1/3; PQ^Th = 0; PQ^St = 2/3.
    assert result.pq == pytest.approx(1 / 3)
    assert result.pq_things == 0.0
    assert result.pq_stuff == pytest.approx(2 / 3)


def test_crowd_never_matches() -> None:
    gt = frame([CAR, CAR, ROAD, ROAD], [0, 0, 0, 0])
    pred = frame([CAR, CAR, ROAD, ROAD], [9, 9, 0, 0])
    result = pq_both_ways([(gt, pred)])
    # car 9 covers the crowd exactly (IoU 1) but crowd never matches; it lies fully on crowd of
    # its class, so it is no FP either. Road is a perfect TP: PQ = 1 over the one present class.
    assert counts_of(result, CAR) == (0, 0, 0)
    assert result.pq == pytest.approx(1.0)


def test_unmatched_ground_truth_is_a_false_negative() -> None:
    gt = frame([PERSON, PERSON, PERSON, ROAD, ROAD, ROAD], [3, 3, 3, 0, 0, 0])
    pred = frame([PRED_VOID] * 3 + [ROAD] * 3, [0] * 6)
    result = pq_both_ways([(gt, pred)])
    # person 3 is predicted void: FN. road: IoU 3/3 = 1, TP.
    assert counts_of(result, PERSON) == (0, 0, 1)
    assert counts_of(result, ROAD) == (1, 0, 0)
    # PQ = (0 / (0 + 1/2) + 1) / 2 = 0.5; SQ = (0 + 1) / 2; RQ = (0 + 1) / 2.
    assert result.pq == pytest.approx(0.5)
    assert result.sq == pytest.approx(0.5)
    assert result.rq == pytest.approx(0.5)


def test_union_leaves_out_the_prediction_on_void() -> None:
    gt = frame([CAR, CAR, VOID, VOID, VOID, ROAD], [1, 1, 0, 0, 0, 0])
    pred = frame([CAR, CAR, CAR, CAR, CAR, ROAD], [7, 7, 7, 7, 7, 0])
    result = pq_both_ways([(gt, pred)])
    # car: |p∩g| = 2, union = |p| 5 + |g| 2 − 2 − |p∩void| 3 = 2 → IoU 1 (0.4 with void counted).
    assert counts_of(result, CAR) == (1, 0, 0)
    assert result.per_class[CAR].sq == pytest.approx(1.0)
    assert result.pq == pytest.approx(1.0)


def test_instance_ids_on_stuff_predictions_are_dropped() -> None:
    gt = frame([ROAD] * 4, [0] * 4)
    pred = frame([ROAD] * 4, [3, 3, 4, 4])
    result = pq_both_ways([(gt, pred)])
    # Stuff has one segment per class: road 3 and road 4 are one segment, IoU 1.
    assert counts_of(result, ROAD) == (1, 0, 0)
    assert result.pq == pytest.approx(1.0)


def test_counts_are_summed_over_frames_before_averaging() -> None:
    frame_a = (
        frame([CAR, CAR, CAR, CAR, ROAD, ROAD, ROAD, ROAD], [1, 1, 1, 1, 0, 0, 0, 0]),
        frame([CAR, CAR, CAR, ROAD, ROAD, ROAD, ROAD, ROAD], [7, 7, 7, 0, 0, 0, 0, 0]),
    )
    frame_b = (
        frame([PERSON, PERSON, PERSON, ROAD, ROAD, ROAD], [3, 3, 3, 0, 0, 0]),
        frame([PRED_VOID] * 3 + [ROAD] * 3, [0] * 6),
    )
    result = pq_both_ways([frame_a, frame_b])
    # car: TP 0.75 (frame a). road: TPs 0.8 (a) and 1.0 (b) → PQ_road = 1.8 / 2 = 0.9.
    # person: FN (b) → 0. PQ = (0.75 + 0.9 + 0) / 3 = 0.55 (the mean of per-frame PQs would
    # be (0.775 + 0.5) / 2 = 0.6375).
    assert counts_of(result, ROAD) == (2, 0, 0)
    assert result.pq == pytest.approx(0.55)
    assert result.pq_things == pytest.approx(0.375)
    assert result.pq_stuff == pytest.approx(0.9)


def test_classes_outside_the_evaluated_set_are_not_averaged() -> None:
    space = LabelSpace(
        name="toy-subset",
        class_names=TOY.class_names,
        thing_classes=TOY.thing_classes,
        evaluated=frozenset({ROAD, CAR, PERSON}),
    )
    gt = frame([ROAD] * 4, [0] * 4)
    pred = frame([ROAD, ROAD, ROAD, SKY], [0] * 4)
    result = pq_both_ways([(gt, pred)], space)
    # road: IoU 3/4, TP. sky would be a FP (PQ 0), but sky is not evaluated: PQ = 0.75.
    assert SKY not in result.per_class
    assert result.pq == pytest.approx(0.75)


def test_empty_input_gives_zero() -> None:
    result = panoptic_quality([], TOY)
    assert (result.pq, result.sq, result.rq, result.pq_things, result.pq_stuff) == (0, 0, 0, 0, 0)
    assert not any(value.present for value in result.per_class.values())
    assert pq_counts(JointHistogram.empty(), TOY).tp.tolist() == [0, 0, 0, 0]


def test_counts_add_and_merge() -> None:
    one = PQCounts(
        tp=np.array([1, 0, 2, 0]),
        fp=np.array([0, 1, 0, 0]),
        fn=np.array([0, 0, 1, 1]),
        iou_sum=np.array([0.9, 0.0, 1.5, 0.0]),
    )
    total = PQCounts.merge([one, one, PQCounts.zeros(4)], num_classes=4)
    assert total.tp.tolist() == [2, 0, 4, 0]
    assert total.fp.tolist() == [0, 2, 0, 0]
    assert total.fn.tolist() == [0, 0, 2, 2]
    assert total.iou_sum.tolist() == pytest.approx([1.8, 0.0, 3.0, 0.0])
    assert PQCounts.merge([], num_classes=3).tp.tolist() == [0, 0, 0]
    with pytest.raises(ValueError):
        one + PQCounts.zeros(5)


def test_class_outside_the_label_space_is_rejected() -> None:
    table = joint_histogram(frame([ROAD, ROAD], [0, 0]), frame([ROAD, 7], [0, 0]))
    with pytest.raises(ValueError, match="predicted class 7"):
        pq_counts(table, TOY)
    table = joint_histogram(frame([ROAD, 9], [0, 0]), frame([ROAD, ROAD], [0, 0]))
    with pytest.raises(ValueError, match="ground-truth class 9"):
        pq_counts(table, TOY)


# -- randomised comparison against the reference on full label arrays ------------------------

RANDOM_SPACE = LabelSpace(
    name="random",
    class_names=tuple(f"class{i}" for i in range(8)),
    thing_classes=frozenset({4, 5, 6, 7}),
    evaluated=frozenset({0, 1, 2, 4, 5, 6}),  # 3 and 7 are predicted but never scored
)
RANDOM_CASES: list[dict[str, Any]] = [
    {},
    {"stuff_instances_in_prediction": True},
    {"num_tracks": 14, "max_instance": 3, "crowd_probability": 0.3},
    {"ignore_boxes": 3, "void_probability": 0.6, "noise_boxes": 8},
    {"id_switch_probability": 0.5, "class_error_probability": 0.3, "weighted": True},
]


def tables_of(video: list[Frame]) -> list[JointHistogram]:
    return [joint_histogram(gt, pred, weights) for gt, pred, weights in video]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("case", range(len(RANDOM_CASES)))
def test_matches_reference_on_random_videos(seed: int, case: int) -> None:
    rng = np.random.default_rng(1000 * case + seed)
    split = random_split(rng, 3, (1, 2, 4), 18, 26, 8, (4, 5, 6, 7), **RANDOM_CASES[case])
    fast = panoptic_quality(
        (table for video in split.values() for table in tables_of(video)), RANDOM_SPACE
    )
    assert_same_pq(fast, reference_pq(split, RANDOM_SPACE))
    assert sum(value.tp for value in fast.per_class.values()) > 0


def test_large_instance_ids_give_the_same_result() -> None:
    rng = np.random.default_rng(7)
    split = random_split(rng, 2, (3,), 16, 20, 8, (4, 5, 6, 7))
    spread = {
        name: [
            (
                PanopticFrame.from_arrays(gt.semantic, gt.instance * 1_000_003),
                PanopticFrame.from_arrays(pred.semantic, pred.instance * 65_537),
                weights,
            )
            for gt, pred, weights in video
        ]
        for name, video in split.items()
    }
    original = panoptic_quality((t for v in split.values() for t in tables_of(v)), RANDOM_SPACE)
    spread_out = panoptic_quality((t for v in spread.values() for t in tables_of(v)), RANDOM_SPACE)
    assert spread_out.pq == pytest.approx(original.pq, abs=1e-15)
    assert_same_pq(spread_out, reference_pq(spread, RANDOM_SPACE))
