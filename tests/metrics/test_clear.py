"""CLEAR (MOTA/MOTSA, MOTP, sMOTSA, IDSW, Frag) equals TrackEval and motmetrics; hand cases."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.metrics.test_hota import (
    CAR,
    HAND_SPACE,
    SPACE,
    THINGS,
    _frame,
    random_tracking_split,
    score,
)
from tests.metrics.trackeval_oracle import (
    assert_matches_trackeval,
    preprocessed_sequences,
    trackeval_scores,
)
from tests.random_videos import Frame

mm = pytest.importorskip("motmetrics", reason="motmetrics is not installed (dev extra)")
if not hasattr(np, "asfarray"):  # motmetrics 1.4 calls np.asfarray, removed in numpy 2 (test shim)
    np.asfarray = lambda a, dtype=np.float64: np.asarray(a, dtype=dtype)  # type: ignore[attr-defined]

MM_METRICS = [
    "num_matches", "num_false_positives", "num_misses", "num_switches", "mota", "motp",
    "idf1", "idp", "idr", "num_fragmentations",
]  # fmt: skip


@pytest.mark.parametrize("seed", range(8))
def test_clear_equals_trackeval_on_random_videos(seed: int) -> None:
    split = random_tracking_split(seed)
    compared = assert_matches_trackeval(
        score(split), trackeval_scores(split, THINGS, 255), "CLEAR", THINGS, 1e-9
    )
    assert compared > 100


def motmetrics_summary(sequences: list[dict[str, Any]]) -> dict[str, float]:
    """motmetrics over TrackEval-preprocessed sequences of one class (distance 1 − IoU ≤ 0.5)."""
    accumulators = []
    for data in sequences:
        accumulator = mm.MOTAccumulator(auto_id=True)
        for gt_ids, pred_ids, similarity in zip(
            data["gt_ids"], data["tracker_ids"], data["similarity_scores"], strict=True
        ):
            distance = np.where(similarity >= 0.5, 1.0 - similarity, np.nan)
            accumulator.update(
                list(gt_ids), list(pred_ids), distance.reshape(len(gt_ids), len(pred_ids))
            )
        accumulators.append(accumulator)
    summary = mm.metrics.create().compute_many(
        accumulators, metrics=MM_METRICS, names=[str(i) for i in range(len(accumulators))],
        generate_overall=True,
    )  # fmt: skip
    return {name: float(summary.loc["OVERALL", name]) for name in MM_METRICS}


def assert_equals_motmetrics(
    ours: dict[str, float], theirs: dict[str, float], check_frag: bool = False
) -> None:
    """The numbers both define the same way agree (motmetrics' MOTP is a distance, 1 − IoU).

    Frag only where no object leaves the ground truth for a while: TrackEval (and vpsbench) count
    a new fragment when an object returns after frames without it, motmetrics does not.
    """
    assert ours["CLR_TP"] == theirs["num_matches"] + theirs["num_switches"]  # a switch matches
    assert ours["CLR_FP"] == theirs["num_false_positives"]
    assert ours["CLR_FN"] == theirs["num_misses"]
    assert ours["IDSW"] == theirs["num_switches"]
    assert ours["MOTA"] == pytest.approx(theirs["mota"], abs=1e-9)
    if ours["CLR_TP"]:
        assert ours["MOTP"] == pytest.approx(1.0 - theirs["motp"], abs=1e-9)
    if check_frag:
        assert ours["Frag"] == theirs["num_fragmentations"]
    for name in ("IDF1", "IDP", "IDR"):
        assert ours[name] == pytest.approx(theirs[name.lower()], abs=1e-9)


@pytest.mark.parametrize("seed", range(6))
def test_clear_and_identity_equal_motmetrics_on_masks(seed: int) -> None:
    """Mask IoU, crowd and ignore regions removed as TrackEval's KITTI-MOTS reader does."""
    split = random_tracking_split(seed)
    ours = score(split)
    for c in THINGS:
        data = [preprocessed_sequences(v, THINGS, 255, n)[c] for n, v in split.items()]
        assert_equals_motmetrics(ours.per_class[c].summary(), motmetrics_summary(data))


def random_box_video(rng: np.random.Generator, frames: int, size: int = 40) -> list[Frame]:
    """Non-overlapping ground-truth boxes on a grid and jittered, sometimes relabelled boxes."""
    slots = [(top, left) for top in range(0, size, 10) for left in range(0, size, 10)]
    tracks = rng.choice(len(slots), size=6, replace=False)
    pred_ids = {int(t): int(t) + 1 for t in tracks}
    video: list[Frame] = []
    for _ in range(frames):
        gt, pred = [], []
        for number, slot in enumerate(tracks):
            top, left = slots[int(slot)]
            if rng.random() < 0.15:
                continue  # the object is not in this frame
            height, width = (int(v) for v in rng.integers(4, 9, size=2))
            gt.append((CAR, number + 1, top, left, height, width))
            if rng.random() < 0.15:
                pred_ids[int(slot)] = int(rng.integers(1, 12))  # id switch or merge
            if rng.random() < 0.85:
                shift = (int(v) for v in rng.integers(-1, 2, size=2))
                dy, dx = shift
                pred.append(
                    (CAR, pred_ids[int(slot)], max(0, top + dy), max(0, left + dx), height, width)
                )
        pred_used: set[int] = set()
        unique_pred = [b for b in pred if not (b[1] in pred_used or pred_used.add(b[1]))]
        video.append((_frame(gt, size), _frame(unique_pred, size), None))
    return video


def boxes_of(frame: Any) -> tuple[list[int], list[list[int]]]:
    """Instance ids and (x, y, w, h) boxes of the CAR segments of a box-painted frame."""
    ids, boxes = [], []
    for instance in np.unique(frame.instance[frame.semantic == CAR]):
        rows, cols = np.nonzero((frame.semantic == CAR) & (frame.instance == instance))
        ids.append(int(instance))
        boxes.append(
            [int(cols.min()), int(rows.min()), int(np.ptp(cols)) + 1, int(np.ptp(rows)) + 1]
        )
    return ids, boxes


@pytest.mark.parametrize("seed", range(4))
def test_clear_and_identity_equal_motmetrics_on_boxes(seed: int) -> None:
    """Boxes painted as masks: pixel IoU = box IoU, so motmetrics' iou_matrix is the oracle."""
    rng = np.random.default_rng(seed)
    videos = {f"s{i}": random_box_video(rng, 8) for i in range(2)}
    accumulators = []
    for video in videos.values():
        accumulator = mm.MOTAccumulator(auto_id=True)
        for gt, pred, _ in video:
            gt_ids, gt_boxes = boxes_of(gt)
            pred_ids, pred_boxes = boxes_of(pred)
            distance = mm.distances.iou_matrix(gt_boxes, pred_boxes, max_iou=0.5)
            accumulator.update(gt_ids, pred_ids, np.reshape(distance, (len(gt_ids), len(pred_ids))))
        accumulators.append(accumulator)
    summary = mm.metrics.create().compute_many(
        accumulators, metrics=MM_METRICS, names=list(videos), generate_overall=True
    )
    theirs = {name: float(summary.loc["OVERALL", name]) for name in MM_METRICS}
    ours = score(videos, HAND_SPACE).per_class[CAR].summary()
    assert theirs["num_switches"] > 0 and theirs["num_misses"] > 0
    assert_equals_motmetrics(ours, theirs)


def _track(ids: list[int | None]) -> list[Frame]:
    """One ground-truth car moving right; the prediction uses ``ids[t]`` (None: a false positive
    elsewhere instead, so that the frame still has a prediction)."""
    return [
        (
            _frame([(CAR, 1, 2, t, 3, 3)]),
            _frame([(CAR, 9, 8, 8, 3, 3)] if pred is None else [(CAR, pred, 2, t, 3, 3)]),
            None,
        )
        for t, pred in enumerate(ids)
    ]


def test_an_id_switch_is_counted_once() -> None:
    summary = score({"s": _track([1, 1, 2, 2, 2])}, HAND_SPACE).per_class[CAR].summary()
    assert summary["IDSW"] == 1
    assert summary["MOTA"] == pytest.approx(1 - 1 / 5)
    assert summary["MOTSA"] == summary["MOTA"]
    assert summary["sMOTSA"] == pytest.approx(1 - 1 / 5)
    assert summary["Frag"] == 0


def test_fragmentation_and_switch_after_a_gap() -> None:
    """Tracked, lost, tracked, lost, tracked with another id: 2 Frag, 1 IDSW (motmetrics too)."""
    video = _track([1, None, 1, None, 3])
    summary = score({"s": video}, HAND_SPACE).per_class[CAR].summary()
    assert summary["Frag"] == 2
    assert summary["IDSW"] == 1
    assert (summary["CLR_TP"], summary["CLR_FN"], summary["CLR_FP"]) == (3, 2, 2)
    assert summary["MOTA"] == pytest.approx((3 - 2 - 1) / 5)
    accumulator = mm.MOTAccumulator(auto_id=True)
    for gt, pred, _ in video:
        gt_ids, gt_boxes = boxes_of(gt)
        pred_ids, pred_boxes = boxes_of(pred)
        distance = mm.distances.iou_matrix(gt_boxes, pred_boxes, max_iou=0.5)
        accumulator.update(gt_ids, pred_ids, np.reshape(distance, (len(gt_ids), len(pred_ids))))
    theirs = mm.metrics.create().compute(accumulator, metrics=MM_METRICS, name="s")
    assert_equals_motmetrics(summary, {m: float(theirs.loc["s", m]) for m in MM_METRICS}, True)


def test_predictions_on_ignore_and_crowd_are_not_false_positives() -> None:
    """An unmatched prediction lying mostly on void or on crowd of its class is dropped."""
    gt = _frame([(CAR, 1, 0, 0, 3, 3), (CAR, 0, 6, 6, 4, 4)])
    gt.semantic[0:4, 8:12] = 255
    pred = _frame(
        [(CAR, 1, 0, 0, 3, 3), (CAR, 2, 6, 6, 4, 4), (CAR, 3, 0, 8, 4, 4), (CAR, 4, 8, 0, 3, 3)]
    )
    summary = score({"s": [(gt, pred, None)]}, HAND_SPACE).per_class[CAR].summary()
    assert summary["CLR_TP"] == 1
    assert summary["CLR_FP"] == 1  # only instance 4 (on background)
    assert SPACE.ignore_label == 255
