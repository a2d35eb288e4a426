"""VideoCUPS' image-to-video pseudo-label steps (paper Sec. 3.1) on inputs with known answers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pytest
from vpsbench_methods.videocups.temporal import (
    UNKNOWN_LABEL,
    accumulate_split_counts,
    align_semantics_to_tracks,
    backward_warp,
    backward_warp_image,
    occlusion_mask,
    propagate_and_track,
    temporal_semantic_smoothing,
    thing_stuff_split,
)

SHAPE = (20, 32)
Box = tuple[int, int, int, int]  # top, left, height, width
Flow = npt.NDArray[np.float32]
Labels = npt.NDArray[np.int32]


def constant_flow(dx: float, dy: float, shape: tuple[int, int] = SHAPE) -> Flow:
    """The same displacement (dx, dy) at every pixel."""
    flow = np.zeros((*shape, 2), dtype=np.float32)
    flow[..., 0], flow[..., 1] = dx, dy
    return flow


def boxes_map(boxes: Sequence[tuple[int, Box]]) -> Labels:
    """A label map with each ``(label, (top, left, height, width))`` box painted in order."""
    labels = np.zeros(SHAPE, dtype=np.int32)
    for label, (top, left, height, width) in boxes:
        labels[max(top, 0) : max(top + height, 0), max(left, 0) : max(left + width, 0)] = label
    return labels


def moving_scene_flows(
    boxes_per_frame: Sequence[Sequence[Box]], velocities: Sequence[tuple[int, int]]
) -> tuple[list[Flow], list[Flow]]:
    """Exact forward/backward flows of boxes moving rigidly over a static background."""
    forward, backward = [], []
    for t in range(len(boxes_per_frame) - 1):
        flow_forward = np.zeros((*SHAPE, 2), dtype=np.float32)
        flow_backward = np.zeros((*SHAPE, 2), dtype=np.float32)
        for box, later_box, (dx, dy) in zip(
            boxes_per_frame[t], boxes_per_frame[t + 1], velocities, strict=True
        ):
            flow_forward[boxes_map([(1, box)]) == 1] = (dx, dy)
            flow_backward[boxes_map([(1, later_box)]) == 1] = (-dx, -dy)
        forward.append(flow_forward)
        backward.append(flow_backward)
    return forward, backward


def static_flows(num_frames: int) -> tuple[list[Flow], list[Flow]]:
    """Zero flows for a clip of ``num_frames`` frames (a static camera and scene)."""
    zeros = [constant_flow(0, 0) for _ in range(num_frames - 1)]
    return zeros, list(zeros)


def track_ids(frame: Labels) -> list[int]:
    """Sorted positive ids present in a frame."""
    return sorted(int(i) for i in np.unique(frame) if i > 0)


def test_backward_warp_moves_labels_by_a_constant_translation() -> None:
    """Flow (+3, −2) from t−1 to t: pixel (y, x) of t−1 reads labels_t at (y − 2, x + 3)."""
    labels_t = np.arange(SHAPE[0] * SHAPE[1], dtype=np.int32).reshape(SHAPE)
    warped = backward_warp(labels_t, constant_flow(3, -2))
    expected = np.full(SHAPE, UNKNOWN_LABEL, dtype=np.int32)
    expected[2:, :-3] = labels_t[:-2, 3:]
    np.testing.assert_array_equal(warped, expected)
    assert warped.dtype == np.int32


def test_backward_warp_rounds_to_the_nearest_pixel_and_fills_out_of_frame() -> None:
    """A flow of 0.6 px reads the next pixel; 0.4 px the same one; leaving the frame fills."""
    labels_t = np.tile(np.arange(SHAPE[1], dtype=np.int32), (SHAPE[0], 1))
    np.testing.assert_array_equal(backward_warp(labels_t, constant_flow(0.4, 0)), labels_t)
    shifted = backward_warp(labels_t, constant_flow(0.6, 0), fill_value=99)
    np.testing.assert_array_equal(shifted[:, :-1], labels_t[:, 1:])
    assert (shifted[:, -1] == 99).all()


def test_backward_warp_image_interpolates_bilinearly() -> None:
    """Half a pixel to the right averages neighbours; values outside the frame take the fill."""
    ramp = np.tile(np.arange(SHAPE[1], dtype=np.float64) * 2, (SHAPE[0], 1))
    warped = backward_warp_image(ramp, constant_flow(0.5, 0), fill_value=-7.0)
    np.testing.assert_allclose(warped[:, :-1], ramp[:, :-1] + 1.0)
    np.testing.assert_allclose(warped[:, -1], -7.0)
    channels = backward_warp_image(np.stack([ramp, -ramp], axis=2), constant_flow(0, 0))
    np.testing.assert_allclose(channels[..., 1], -ramp)


def test_occlusion_mask_flags_disagreeing_flows_and_leaving_pixels() -> None:
    """Consistent ±2 px flows pass; where the backward flow disagrees, or p + f leaves, flagged."""
    forward = constant_flow(2, 0)
    backward = constant_flow(-2, 0)
    assert not occlusion_mask(forward, backward)[:, :-2].any()
    backward[5:8, 10:14] = (3, 0)  # target pixels whose backward flow does not lead back
    occluded = occlusion_mask(forward, backward)
    expected = np.zeros(SHAPE, dtype=bool)
    expected[5:8, 8:12] = True  # sources landing on the disagreeing region (x + 2 ∈ [10, 14))
    expected[:, -2:] = True  # sources leaving the frame
    np.testing.assert_array_equal(occluded, expected)


def test_occlusion_mask_tolerates_small_errors_relative_to_the_motion() -> None:
    """|f + b|² within α1 (|f|² + |b|²) + α2 is consistent: a 0.6 px error on 10 px passes."""
    assert not occlusion_mask(constant_flow(10, 0), constant_flow(-9.4, 0))[:, :-10].any()
    assert occlusion_mask(constant_flow(10, 0), constant_flow(-8.0, 0))[:, :-10].all()


def test_a_moving_object_keeps_one_id_through_the_clip() -> None:
    """A box moving +2 px per frame, with a different raw id in every frame, stays track 1."""
    boxes = [[(6, 2 + 2 * t, 5, 6)] for t in range(6)]
    forward, backward = moving_scene_flows(boxes, [(2, 0)])
    instances = [boxes_map([(10 + 7 * t, frame_boxes[0])]) for t, frame_boxes in enumerate(boxes)]
    tracked = propagate_and_track(instances, forward, backward)
    for t, frame in enumerate(tracked):
        np.testing.assert_array_equal(frame, (instances[t] > 0).astype(np.int32))


def test_an_object_missed_in_one_frame_is_recovered_from_the_next() -> None:
    """Visible at t−1, missing at t, visible at t+1: resurrected at t, the same id at t+1."""
    boxes = [[(6, 2 + 3 * t, 5, 6)] for t in range(5)]
    forward, backward = moving_scene_flows(boxes, [(3, 0)])
    instances = [boxes_map([(1, frame_boxes[0])]) for frame_boxes in boxes]
    instances[2][:] = 0  # the segmenter misses the object in frame 2
    tracked = propagate_and_track(instances, forward, backward)
    for t in range(5):
        np.testing.assert_array_equal(tracked[t], boxes_map([(1, boxes[t][0])]), err_msg=f"{t}")


def test_an_object_leaving_the_frame_keeps_its_id() -> None:
    """Pixels warped out of frame are ignored: 2 of 7 columns left still match (not IoU 2/7)."""
    boxes = [[(6, 20 + 5 * t, 5, 10)] for t in range(3)]
    forward, backward = moving_scene_flows(boxes, [(5, 0)])
    instances = [boxes_map([(3, frame_boxes[0])]) for frame_boxes in boxes]
    tracked = propagate_and_track(instances, forward, backward)
    for t in range(3):
        np.testing.assert_array_equal(tracked[t], (instances[t] > 0).astype(np.int32))


def test_recovery_survives_a_mask_merged_into_a_neighbour() -> None:
    """Two boxes merged into one mask in frame 1 and separate again: both keep their ids."""
    big, small = (4, 4, 4, 6), (4, 10, 4, 4)  # IoU(big ∪ small, small) = 16 / 40 ≤ τ_m
    separate = boxes_map([(5, big), (9, small)])
    merged = boxes_map([(3, big), (3, small)])
    forward, backward = static_flows(4)
    tracked = propagate_and_track([separate, merged, separate, separate], forward, backward)
    big_mask, small_mask = separate == 5, separate == 9
    assert set(np.unique(tracked[0][big_mask])) == {1}
    assert set(np.unique(tracked[0][small_mask])) == {2}
    assert (tracked[1][big_mask | small_mask] == 1).all()  # the merged mask follows the big box
    for t in (2, 3):
        assert (tracked[t][big_mask] == 1).all() and (tracked[t][small_mask] == 2).all()


def test_adjacent_objects_passing_each_other_keep_separate_ids() -> None:
    """Two touching boxes moving in opposite directions; raw ids swap every frame."""
    boxes = [[(3, 2 + 2 * t, 4, 6), (7, 22 - 2 * t, 4, 6)] for t in range(7)]
    forward, backward = moving_scene_flows(boxes, [(2, 0), (-2, 0)])
    instances = [
        boxes_map([(1 + t % 2, first), (2 - t % 2, second)])
        for t, (first, second) in enumerate(boxes)
    ]
    tracked = propagate_and_track(instances, forward, backward)
    for t, (first, second) in enumerate(boxes):
        np.testing.assert_array_equal(tracked[t], boxes_map([(1, first), (2, second)]))


def test_a_one_frame_blip_is_dropped() -> None:
    """An object seen in a single frame is removed; one seen in two frames is kept."""
    forward, backward = static_flows(5)
    instances = [np.zeros(SHAPE, dtype=np.int32) for _ in range(5)]
    instances[2] = boxes_map([(4, (2, 2, 4, 4))])
    instances[3] = boxes_map([(8, (12, 20, 5, 5))])
    instances[4] = boxes_map([(8, (12, 20, 5, 5))])
    tracked = propagate_and_track(instances, forward, backward)
    assert [track_ids(frame) for frame in tracked] == [[], [], [], [1], [1]]
    kept = propagate_and_track(instances, forward, backward, min_track_length=1)
    assert [track_ids(frame) for frame in kept] == [[], [], [1], [2], [2]]


@pytest.mark.parametrize(("shift", "same_track"), [(3, False), (2, True)])
def test_iou_at_the_threshold_does_not_match(shift: int, same_track: bool) -> None:
    """Boxes 7 px wide shifted by 3 px have IoU 4/10 = τ_m: a new id; by 2 px (5/9) they match."""
    forward, backward = static_flows(2)
    instances = [boxes_map([(1, (5, 5, 5, 7))]), boxes_map([(1, (5, 5 + shift, 5, 7))])]
    tracked = propagate_and_track(instances, forward, backward, min_track_length=1)
    assert track_ids(tracked[0]) == [1]
    assert track_ids(tracked[1]) == ([1] if same_track else [2])


def test_tracking_validates_its_inputs() -> None:
    """Flows must number T − 1 each way; an empty clip gives no frames."""
    frames = [np.zeros(SHAPE, dtype=np.int32)] * 3
    with pytest.raises(ValueError, match="need 2 forward"):
        propagate_and_track(frames, [constant_flow(0, 0)], [constant_flow(0, 0)])
    assert propagate_and_track([], [], []) == []


def test_smoothing_fixes_a_one_frame_flicker_but_keeps_a_persistent_change() -> None:
    """Static scene: a region flips 1 → 3 for one frame (fixed) and 1 → 2 from frame 4 (kept)."""
    semantics = [boxes_map([(1, (2, 2, 6, 6)), (1, (10, 14, 6, 6))]) for _ in range(7)]
    semantics[2][2:8, 2:8] = 3
    for t in range(4, 7):
        semantics[t][10:16, 14:20] = 2
    forward, backward = static_flows(7)
    smoothed = temporal_semantic_smoothing(semantics, forward, backward)
    assert (smoothed[2][2:8, 2:8] == 1).all()
    for t in range(7):
        expected = semantics[t].copy()
        expected[2:8, 2:8] = 1
        np.testing.assert_array_equal(smoothed[t], expected, err_msg=f"frame {t}")


def test_smoothing_follows_motion_and_keeps_the_ends() -> None:
    """A moving region mislabelled in frame 2 is fixed via the flows; frame 0 has no majority."""
    boxes = [[(6, 2 + 3 * t, 5, 6)] for t in range(5)]
    forward, backward = moving_scene_flows(boxes, [(3, 0)])
    semantics = [boxes_map([(4, frame_boxes[0])]) for frame_boxes in boxes]
    semantics[2][semantics[2] == 4] = 7
    semantics[0][semantics[0] == 4] = 7
    smoothed = temporal_semantic_smoothing(semantics, forward, backward)
    np.testing.assert_array_equal(smoothed[2], boxes_map([(4, boxes[2][0])]))
    np.testing.assert_array_equal(smoothed[0], semantics[0])


def test_alignment_gives_each_track_its_majority_class() -> None:
    """Track 1 is mostly class 2 over the clip, track 2 class 5; other pixels are untouched."""
    track_one, track_two = (2, 2, 4, 4), (10, 10, 4, 4)
    tracks = [boxes_map([(1, track_one), (2, track_two)]) for _ in range(3)]
    semantics = [boxes_map([(0, (0, 0, *SHAPE)), (2, track_one), (5, track_two)]) for _ in range(3)]
    semantics[0][2:4, 2:6] = 3  # 8 of track 1's 48 pixels disagree
    semantics[1][10:14, 10:14] = 6  # 16 of track 2's 48 pixels disagree
    semantics[2][0, 0] = -1  # void outside every track stays void
    aligned, mapping = align_semantics_to_tracks(semantics, tracks)
    assert mapping == {1: 2, 2: 5}
    for t in range(3):
        expected = semantics[t].copy()
        expected[tracks[t] == 1] = 2
        expected[tracks[t] == 2] = 5
        np.testing.assert_array_equal(aligned[t], expected)


def test_alignment_ties_go_to_the_smaller_class_and_void_does_not_vote() -> None:
    """Equal votes pick the smaller class; void pixels inside a track take the track's class."""
    tracks = [boxes_map([(4, (0, 0, 2, 4))])]
    semantic = np.full(SHAPE, 9, dtype=np.int32)
    semantic[0, :4] = [7, 7, 3, 3]
    semantic[1, :4] = [-1, -1, -1, -1]
    aligned, mapping = align_semantics_to_tracks([semantic], tracks)
    assert mapping == {4: 3}
    assert (aligned[0][:2, :4] == 3).all() and (aligned[0][:, 4:] == 9).all()


def test_thing_stuff_split_on_hand_counts() -> None:
    """Shares 0.5, 0.08, 0.0, 0.09 and an empty class with ψ = 0.08: things are 0 and 3."""
    totals = np.array([100, 100, 500, 100, 0])
    inside = np.array([50, 8, 0, 9, 0])
    np.testing.assert_array_equal(thing_stuff_split(totals, inside), [1, 0, 0, 1, 0])
    np.testing.assert_array_equal(thing_stuff_split(totals, inside, psi=0.4), [1, 0, 0, 0, 0])
    with pytest.raises(ValueError, match="inside instances"):
        thing_stuff_split(np.array([1]), np.array([2]))


def test_split_counts_accumulate_over_clips() -> None:
    """Counts per class overall and inside instances; void is skipped; clips add up."""
    semantic = np.array([[0, 0, 1, 2], [2, 2, -1, 1]])
    instance = np.array([[0, 3, 3, 0], [5, 5, 5, 0]])
    class_pixels, in_instances = accumulate_split_counts(semantic, instance, num_classes=4)
    np.testing.assert_array_equal(class_pixels, [2, 2, 3, 0])
    np.testing.assert_array_equal(in_instances, [1, 1, 2, 0])
    other_pixels, other_in = accumulate_split_counts(np.full((2, 2), 3), np.ones((2, 2)), 4)
    things = thing_stuff_split(class_pixels + other_pixels, in_instances + other_in, psi=0.5)
    np.testing.assert_array_equal(things, [False, False, True, True])
    with pytest.raises(ValueError, match="num_classes"):
        accumulate_split_counts(semantic, instance, num_classes=2)
