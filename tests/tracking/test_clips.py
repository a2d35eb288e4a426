"""Overlapping clips and id alignment across them (DepthG + VideoCutLER baseline)."""

from __future__ import annotations

import numpy as np
import pytest

from vpsbench.tracking.clips import align_clip_ids, overlap_iou, split_into_clips, stitch_clips
from vpsbench.video import PanopticFrame

CAR = 2
SHAPE = (10, 20)


def frame_with(*objects: tuple[int, slice, slice]) -> PanopticFrame:
    """A frame with the given ``(instance id, rows, columns)`` rectangles, class CAR."""
    semantic = np.zeros(SHAPE, dtype=np.int32)
    instance = np.zeros(SHAPE, dtype=np.int32)
    for instance_id, rows, columns in objects:
        semantic[rows, columns] = CAR
        instance[rows, columns] = instance_id
    return PanopticFrame(semantic, instance)


def ids_in(frame: PanopticFrame) -> list[int]:
    """Sorted positive instance ids of a frame."""
    return sorted(int(value) for value in np.unique(frame.instance) if value > 0)


def test_split_into_clips_of_the_paper() -> None:
    """70 frames in clips of 30 overlapping by 5: starts every 25 frames, the last one short."""
    assert split_into_clips(70, 30, 5) == [range(0, 30), range(25, 55), range(50, 70)]


@pytest.mark.parametrize(
    ("num_frames", "expected"),
    [
        (0, []),
        (12, [range(0, 12)]),
        (30, [range(0, 30)]),
        (55, [range(0, 30), range(25, 55)]),
        (56, [range(0, 30), range(25, 55), range(50, 56)]),
    ],
)
def test_split_into_clips_edges(num_frames: int, expected: list[range]) -> None:
    """Short videos are one clip; a clip is added only while frames remain uncovered."""
    assert split_into_clips(num_frames) == expected


def test_split_into_clips_rejects_bad_arguments() -> None:
    """The overlap must be shorter than a clip, and sizes non-negative."""
    with pytest.raises(ValueError, match="overlap"):
        split_into_clips(10, 5, 5)
    with pytest.raises(ValueError, match="clip_length"):
        split_into_clips(10, 0, 0)
    with pytest.raises(ValueError, match="num_frames"):
        split_into_clips(-1)


def test_overlap_iou_sums_over_frames() -> None:
    """IoU over the overlap is summed intersection over summed union, not a mean of IoUs."""
    previous = [
        frame_with((4, slice(0, 2), slice(0, 4))),
        frame_with((4, slice(0, 2), slice(0, 4))),
    ]
    following = [
        frame_with((1, slice(0, 2), slice(0, 4))),
        frame_with((1, slice(0, 2), slice(2, 6))),
    ]
    previous_ids, next_ids, iou = overlap_iou(previous, following)
    assert previous_ids.tolist() == [4]
    assert next_ids.tolist() == [1]
    # intersections 8 + 4, unions 8 + 12
    np.testing.assert_allclose(iou, [[12 / 20]])


def test_matched_id_is_inherited_and_new_object_gets_a_fresh_id() -> None:
    """Over two overlap frames: 1 ↔ 7 inherit, 2 is new, 3 appears later, 9 has ended."""
    car = (slice(1, 5), slice(2, 8))
    car_shifted = (slice(1, 5), slice(3, 9))
    leaving = (slice(6, 9), slice(14, 18))
    arriving = (slice(6, 9), slice(2, 5))
    previous_overlap = [frame_with((7, *car), (9, *leaving)), frame_with((7, *car_shifted))]
    next_overlap = [frame_with((1, *car), (2, *arriving)), frame_with((1, *car_shifted))]
    later = frame_with((1, *car_shifted), (3, slice(6, 9), slice(10, 13)))
    next_clip = [*next_overlap, later]
    relabelled, next_free_id = align_clip_ids(previous_overlap, next_overlap, next_clip, 10)
    assert next_free_id == 12
    assert ids_in(relabelled[0]) == [7, 10]
    assert int(relabelled[0].instance[arriving][0, 0]) == 10
    assert ids_in(relabelled[2]) == [7, 11]
    for original, new in zip(next_clip, relabelled, strict=True):
        np.testing.assert_array_equal(new.semantic, original.semantic)
        np.testing.assert_array_equal(new.instance > 0, original.instance > 0)


def test_low_overlap_is_not_inherited() -> None:
    """A pair below the IoU threshold does not inherit: the object gets a fresh id."""
    previous_overlap = [frame_with((5, slice(0, 4), slice(0, 4)))]
    next_overlap = [frame_with((1, slice(0, 4), slice(2, 6)))]  # IoU 8 / 24
    relabelled, next_free_id = align_clip_ids(previous_overlap, next_overlap, next_overlap, 6)
    assert ids_in(relabelled[0]) == [6]
    assert next_free_id == 7
    relabelled, _ = align_clip_ids(
        previous_overlap, next_overlap, next_overlap, 6, iou_threshold=0.3
    )
    assert ids_in(relabelled[0]) == [5]


def test_one_previous_track_is_inherited_once() -> None:
    """If a previous object splits into two, only the better-overlapping part inherits its id."""
    previous_overlap = [frame_with((3, slice(0, 4), slice(0, 10)))]
    next_overlap = [frame_with((1, slice(0, 4), slice(0, 7)), (2, slice(0, 4), slice(7, 10)))]
    relabelled, next_free_id = align_clip_ids(
        previous_overlap, next_overlap, next_overlap, 4, iou_threshold=0.2
    )
    assert int(relabelled[0].instance[0, 0]) == 3
    assert int(relabelled[0].instance[0, 9]) == 4
    assert next_free_id == 5


def test_first_clip_without_overlap_is_numbered_from_the_free_id() -> None:
    """With nothing before it, a clip's ids are renumbered in order from next_free_id."""
    clip = [frame_with((40, slice(0, 2), slice(0, 2)), (8, slice(5, 7), slice(5, 7)))]
    relabelled, next_free_id = align_clip_ids([], [], clip, 1)
    assert int(relabelled[0].instance[5, 5]) == 1
    assert int(relabelled[0].instance[0, 0]) == 2
    assert next_free_id == 3


def test_inconsistent_arguments_are_rejected() -> None:
    """Overlaps of different lengths, and a free id already in use, raise ValueError."""
    frame = frame_with((5, slice(0, 2), slice(0, 2)))
    with pytest.raises(ValueError, match="length"):
        align_clip_ids([frame], [], [frame], 6)
    with pytest.raises(ValueError, match="next_free_id"):
        align_clip_ids([frame], [frame], [frame], 5)


def test_stitching_clips_of_a_video_gives_one_id_per_object() -> None:
    """Clips with clip-local ids, stitched, give every object one id over all 70 frames."""

    def true_frame(index: int) -> list[tuple[int, slice, slice]]:
        sliding = (1, slice(0, 4), slice(index % 14, index % 14 + 6))
        objects = [sliding]
        if index >= 40:
            objects.append((2, slice(6, 9), slice(2, 6)))
        return objects

    clips = []
    for clip_number, frames in enumerate(split_into_clips(70, 30, 5)):
        clip = []
        for index in frames:
            local = [(100 * (clip_number + 1) + oid, r, c) for oid, r, c in true_frame(index)]
            clip.append(frame_with(*local))
        clips.append(clip)
    video = list(stitch_clips(clips, overlap=5))
    assert len(video) == 70
    assert {int(video[index].instance[0, index % 14]) for index in range(70)} == {1}
    assert {int(video[index].instance[7, 3]) for index in range(40, 70)} == {2}
