"""SORT (Bewley et al. 2016) on hand-built trajectories whose correct ids are known."""

from __future__ import annotations

import numpy as np
import pytest

from vpsbench.tracking.kalman import Box, KalmanNoise
from vpsbench.tracking.sort import (
    Detection,
    Sort,
    SortConfig,
    TrackedDetection,
    associate,
    associate_bewley,
    iou_matrix,
)


def square(centre_x: float, centre_y: float = 50.0, side: float = 20.0) -> Box:
    """An axis-aligned square box around a centre."""
    half = side / 2
    return (centre_x - half, centre_y - half, centre_x + half, centre_y + half)


def detect(name: str, box: Box) -> Detection:
    """A detection whose payload names the true object, so tests can read the ground truth."""
    return Detection(box, payload=name)


def ids_by_object(output: list[TrackedDetection]) -> dict[str, int]:
    """``{true object name: track id}`` of one frame's output."""
    return {str(tracked.detection.payload): tracked.track_id for tracked in output}


def run(frames: list[list[Detection]], config: SortConfig | None = None) -> list[dict[str, int]]:
    """Output of SORT on every frame, as ``{object: track id}``."""
    tracker = Sort(config)
    return [ids_by_object(tracker.update(detections)) for detections in frames]


def run_all(
    frames: list[list[Detection]], config: SortConfig | None = None
) -> list[dict[str, int]]:
    """Track of every detection, output or not, on every frame."""
    tracker = Sort(config)
    return [
        {str(item.detection.payload): item.track_id for item in tracker.assign(detections)}
        for detections in frames
    ]


def walker(frame: int) -> Box:
    """One object moving +6 px per frame."""
    return square(30.0 + 6 * frame)


def test_iou_matrix_hand_values() -> None:
    """IoU of identical, half-shifted and disjoint boxes, vectorised over both sides."""
    first = [(0.0, 0.0, 2.0, 2.0), (10.0, 10.0, 11.0, 11.0)]
    second = [(0.0, 0.0, 2.0, 2.0), (1.0, 0.0, 3.0, 2.0), (5.0, 5.0, 6.0, 6.0)]
    expected = [[1.0, 1.0 / 3.0, 0.0], [0.0, 0.0, 0.0]]
    np.testing.assert_allclose(iou_matrix(first, second), expected)
    assert iou_matrix(np.zeros((0, 4)), second).shape == (0, 3)


def strip(x1: float, x2: float) -> Box:
    """A box spanning ``x1..x2`` and ``y 0..10``: IoU of two strips is that of their x-ranges."""
    return (x1, 0.0, x2, 10.0)


def test_threshold_first_never_trades_a_valid_pair_for_rejected_ones() -> None:
    """Only admissible pairs (IoU ≥ threshold) count, so the one valid assignment survives."""
    iou = np.array([[0.35, 0.31], [0.29, 0.0]])
    rows, columns = associate(iou, 0.3)
    assert rows.tolist() == [0]
    assert columns.tolist() == [0]


def test_bewley_assigns_raw_iou_then_rejects_pairs_below_the_threshold() -> None:
    """Detection 0 has two partners above 0.3, so the Hungarian runs on raw IoU: 0.31 + 0.29
    beats 0.35, detection 0 goes to track 1 and the 0.29 pair is rejected afterwards."""
    iou = np.array([[0.35, 0.31], [0.29, 0.0]])
    rows, columns, unmatched = associate_bewley(iou, 0.3)
    assert (rows.tolist(), columns.tolist(), unmatched.tolist()) == ([0], [1], [1])


def test_bewley_takes_unique_partners_above_the_threshold_directly() -> None:
    """With at most one partner above 0.3 per detection and track, those pairs are the matches,
    even where raw-IoU Hungarian would prefer 0.29 + 0.29 over 0.35."""
    iou = np.array([[0.35, 0.29], [0.29, 0.0]])
    rows, columns, unmatched = associate_bewley(iou, 0.3)
    assert (rows.tolist(), columns.tolist(), unmatched.tolist()) == ([0], [0], [1])


def test_raw_iou_hungarian_and_threshold_first_continue_different_tracks() -> None:
    """Tracks A (x 0..10) and B (x 10..20) stand still; detection 0 (x 2..17) overlaps A by
    8/17 = 0.471 and B by 7/18 = 0.389, detection 1 (x -7..3) overlaps A by 3/17 = 0.176.
    SORT maximises raw IoU (0.389 + 0.176 > 0.471): detection 0 continues B and the 0.176 pair is
    rejected; threshold-first continues A. Detection 1 starts track 3 either way."""
    detections = [Detection(strip(2.0, 17.0)), Detection(strip(-7.0, 3.0))]
    np.testing.assert_allclose(
        iou_matrix([d.box for d in detections], [strip(0.0, 10.0), strip(10.0, 20.0)]),
        [[8 / 17, 7 / 18], [3 / 17, 0.0]],
    )
    ids = {}
    for association in ("bewley", "threshold-first"):
        tracker = Sort(SortConfig(association=association))
        tracker.assign([Detection(strip(0.0, 10.0)), Detection(strip(10.0, 20.0))])
        ids[association] = [item.track_id for item in tracker.assign(detections)]
    assert ids == {"bewley": [2, 3], "threshold-first": [1, 3]}


def test_births_follow_the_reference_order() -> None:
    """Unmatched detections start tracks as in the reference: those the assignment left out
    first, then those of rejected pairs. Here detection 0 (x -7..3, IoU 3/17 with track 1) is
    assigned and rejected, detection 1 (far away) is left out, so detection 1 is born first."""
    tracker = Sort()
    tracker.assign([Detection(strip(0.0, 10.0))])
    later = [Detection(strip(-7.0, 3.0)), Detection(strip(100.0, 110.0))]
    assert [item.track_id for item in tracker.assign(later)] == [3, 2]
    tracker = Sort(SortConfig(association="threshold-first"))
    tracker.assign([Detection(strip(0.0, 10.0))])
    assert [item.track_id for item in tracker.assign(later)] == [2, 3]


def test_track_with_a_nan_prediction_is_deleted() -> None:
    """A negative measurement variance makes the gain overshoot (k = 10011 / 5011 ≈ 2): the
    area goes from 10000 to 10000 + 2 * (3600 - 10000) < 0, so the track's box and its next
    prediction are NaN. As in the reference the track is deleted before association, and the
    next detection starts track 2 (a kept track would linger until max_age)."""
    tracker = Sort(SortConfig(noise=KalmanNoise(measurement_shape_variance=-5000.0)))
    tracker.assign([Detection((0.0, 0.0, 100.0, 100.0))])
    [second] = tracker.assign([Detection((0.0, 0.0, 60.0, 60.0))])
    assert second.track_id == 1
    assert all(np.isnan(second.box))
    [third] = tracker.assign([Detection((0.0, 0.0, 60.0, 60.0))])
    assert third.track_id == 2
    assert tracker.active_track_ids == (2,)


def test_assignments_below_the_threshold_are_rejected() -> None:
    """A detection overlapping a predicted box by less than the IoU threshold starts a new track."""
    tracker = Sort(SortConfig(min_hits=0))
    assert ids_by_object(tracker.update([detect("a", square(50.0))])) == {"a": 1}
    # side 20, shifted by 12 px: IoU = 8 / 32 = 0.25 < 0.3
    assert ids_by_object(tracker.update([detect("a", square(62.0))])) == {"a": 2}


def test_single_object_keeps_id_one() -> None:
    """A steadily detected object is one track with id 1, output from the first frame."""
    outputs = run([[detect("a", walker(frame))] for frame in range(10)])
    assert outputs == [{"a": 1}] * 10


def test_output_box_is_the_filtered_box() -> None:
    """The output box is the track's Kalman estimate; for a new track it is the detection's box."""
    tracker = Sort()
    [tracked] = tracker.update([detect("a", walker(0))])
    np.testing.assert_allclose(tracked.box, walker(0))
    for frame in range(1, 6):
        [tracked] = tracker.update([detect("a", walker(frame))])
    np.testing.assert_allclose(tracked.box, walker(5), atol=0.05)


def test_crossing_objects_keep_their_ids() -> None:
    """Two objects cross; the velocity prediction resolves what last-position IoU would swap."""

    def left_to_right(frame: int) -> Box:
        return square(40.0 + 8 * frame)

    def right_to_left(frame: int) -> Box:
        return square(160.0 - 8 * frame)

    # At the crossing (frame 7 → 8) each detection overlaps the *other* object's last box more.
    last_boxes = [left_to_right(7), right_to_left(7)]
    iou_with_last = iou_matrix([left_to_right(8)], last_boxes)[0]
    assert iou_with_last[1] > iou_with_last[0]

    frames = []
    for frame in range(16):
        pair = [detect("L", left_to_right(frame)), detect("R", right_to_left(frame))]
        frames.append(pair if frame % 2 == 0 else pair[::-1])  # input order must not matter
    assert run(frames) == [{"L": 1, "R": 2}] * 16


def test_one_frame_gap_keeps_the_id_with_max_age_one() -> None:
    """A track missed in one frame is still matched in the next (deleted only after the miss)."""
    frames = [[detect("a", walker(frame))] if frame != 5 else [] for frame in range(12)]
    assert all(ids == {"a": 1} for ids in run_all(frames) if ids)


def test_two_frame_gap_starts_a_new_id_with_max_age_one() -> None:
    """A track missed in two consecutive frames is deleted; the object comes back as track 2."""
    frames = [[detect("a", walker(frame))] if frame not in (5, 6) else [] for frame in range(12)]
    tracks = run_all(frames)
    assert tracks[:5] == [{"a": 1}] * 5
    assert tracks[7:] == [{"a": 2}] * 5


def test_longer_max_age_bridges_longer_gaps() -> None:
    """With max_age = 2 the two-frame gap is bridged by the velocity prediction."""
    frames = [[detect("a", walker(frame))] if frame not in (5, 6) else [] for frame in range(12)]
    tracks = run_all(frames, SortConfig(max_age=2))
    assert all(ids == {"a": 1} for ids in tracks if ids)


def test_track_is_hidden_after_a_miss_until_a_new_hit_streak() -> None:
    """As in the reference SORT, a miss resets the hit streak: output resumes after min_hits."""
    frames = [[detect("a", walker(frame))] if frame != 5 else [] for frame in range(12)]
    outputs = run(frames)
    shown = [frame for frame, ids in enumerate(outputs) if ids]
    assert shown == [0, 1, 2, 3, 4, 8, 9, 10, 11]
    assert all(ids == {"a": 1} for ids in outputs if ids)


def test_sticky_confirmation_keeps_showing_a_track_after_a_miss() -> None:
    """With sticky_confirmation a once-output track is output whenever it is matched."""
    frames = [[detect("a", walker(frame))] if frame != 5 else [] for frame in range(12)]
    outputs = run(frames, SortConfig(sticky_confirmation=True))
    assert [frame for frame, ids in enumerate(outputs) if ids] == [
        0,
        1,
        2,
        3,
        4,
        6,
        7,
        8,
        9,
        10,
        11,
    ]


def test_birth_is_tentative_until_min_hits_matches() -> None:
    """An object appearing at frame 10 gets the next id and is output after 3 more matches."""
    frames = []
    for frame in range(20):
        detections = [detect("a", walker(frame))]
        if frame >= 10:
            detections.append(detect("b", square(200.0 - 5 * frame, 120.0)))
        frames.append(detections)
    outputs = run(frames)
    assert outputs[:13] == [{"a": 1}] * 13
    assert outputs[13:] == [{"a": 1, "b": 2}] * 7
    assert run_all(frames)[10] == {"a": 1, "b": 2}


def test_death_after_max_age_misses() -> None:
    """A vanished object's track lives through max_age missed frames and is then deleted."""
    tracker = Sort()
    for frame in range(6):
        tracker.update([detect("a", walker(frame)), detect("b", square(200.0, 120.0))])
    assert list(tracker.active_track_ids) == [1, 2]
    tracker.update([detect("b", square(200.0, 120.0))])
    assert list(tracker.active_track_ids) == [1, 2]
    tracker.update([detect("b", square(200.0, 120.0))])
    assert list(tracker.active_track_ids) == [2]
    tracker.update([])
    tracker.update([])
    assert list(tracker.active_track_ids) == []


def test_every_track_is_output_during_the_first_min_hits_frames() -> None:
    """Frames 1..min_hits output every track at once; later births wait for their hit streak."""
    frames = []
    for frame in range(10):
        detections = [detect("first", walker(frame))]
        if frame >= 1:
            detections.append(detect("second", square(200.0, 120.0)))
        if frame >= 4:
            detections.append(detect("late", square(300.0, 200.0)))
        frames.append(detections)
    outputs = run(frames)
    shown_second = [frame for frame, ids in enumerate(outputs) if "second" in ids]
    shown_late = [frame for frame, ids in enumerate(outputs) if "late" in ids]
    assert all(ids["first"] == 1 for ids in outputs)
    # born in frame 2 (index 1): shown during warm-up, hidden at index 3 (streak 2), then shown
    assert shown_second == [1, 2, 4, 5, 6, 7, 8, 9]
    assert shown_late == [7, 8, 9]


def test_min_hits_zero_outputs_every_detection() -> None:
    """With min_hits = 0 there is no probation: every detection is output with its track."""
    frames = [[detect("a", walker(frame))] if frame != 5 else [] for frame in range(12)]
    outputs = run(frames, SortConfig(min_hits=0))
    assert [len(ids) for ids in outputs] == [1] * 5 + [0] + [1] * 6


def test_ids_are_deterministic_and_never_reused() -> None:
    """Same input, same ids; a frame's new tracks get the next ids, above every earlier one."""
    rng = np.random.default_rng(0)
    frames = []
    for _ in range(40):
        centres = rng.uniform(0, 300, size=(int(rng.integers(0, 6)), 2))
        frames.append([detect(str(i), square(x, y)) for i, (x, y) in enumerate(centres)])
    first, second = Sort(), Sort()
    seen_ids: set[int] = set()
    newest_id = 0
    for detections in frames:
        assignments = first.assign(detections)
        assert assignments == second.assign(detections)
        ids = [item.track_id for item in assignments]
        assert len(set(ids)) == len(ids)
        born = sorted(set(ids) - seen_ids)
        assert born == list(range(newest_id + 1, newest_id + 1 + len(born)))
        newest_id += len(born)
        seen_ids.update(born)
    assert newest_id > 1


def test_empty_frames_and_no_detections() -> None:
    """Frames without detections are valid input and produce no output."""
    tracker = Sort()
    assert tracker.update([]) == []
    assert tracker.frame_count == 1


def test_invalid_input_is_rejected() -> None:
    """Bad hyper-parameters and boxes without area raise ValueError."""
    with pytest.raises(ValueError, match="max_age"):
        SortConfig(max_age=-1)
    with pytest.raises(ValueError, match="min_hits"):
        SortConfig(min_hits=-1)
    with pytest.raises(ValueError, match="iou_threshold"):
        SortConfig(iou_threshold=1.5)
    with pytest.raises(ValueError, match="association"):
        SortConfig(association="greedy")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no area"):
        Detection((0.0, 0.0, 0.0, 5.0))
    with pytest.raises(ValueError, match="not finite"):
        Detection((0.0, 0.0, float("nan"), 5.0))


def test_payload_does_not_take_part_in_equality() -> None:
    """Detections carrying array payloads stay comparable and hashable."""
    mask = np.ones((2, 2), dtype=bool)
    first = Detection((0.0, 0.0, 2.0, 2.0), payload=mask)
    assert first == Detection((0.0, 0.0, 2.0, 2.0), payload=mask.copy())
    assert hash(first) == hash(Detection((0.0, 0.0, 2.0, 2.0)))
