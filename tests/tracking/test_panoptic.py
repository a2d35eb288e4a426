"""Per-frame panoptic maps + SORT → video panoptic maps, on small synthetic moving rectangles."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest

from vpsbench.tracking.panoptic import extract_thing_segments, track_panoptic_video
from vpsbench.tracking.sort import SortConfig
from vpsbench.video import PanopticFrame

ROAD, SKY, CAR, PERSON, POLE = 0, 1, 2, 3, 4
VOID = -1
HEIGHT, WIDTH = 40, 160


@dataclass(frozen=True)
class Rectangle:
    """A moving object: class, first frame, top-left corner at frame 0, size and velocity."""

    name: str
    semantic_class: int
    top: int
    left: int
    height: int
    width: int
    step: int
    first_frame: int = 0

    def region(self, frame: int) -> tuple[slice, slice]:
        """Rows and columns covered at ``frame``."""
        left = self.left + self.step * frame
        return slice(self.top, self.top + self.height), slice(left, left + self.width)


def render(
    frame: int, objects: list[Rectangle], flicker: dict[tuple[str, int], int] | None = None
) -> PanopticFrame:
    """Road with sky on top, objects painted with per-frame instance ids (reversed each frame)."""
    semantic = np.full((HEIGHT, WIDTH), ROAD, dtype=np.int32)
    semantic[:5] = SKY
    instance = np.zeros((HEIGHT, WIDTH), dtype=np.int32)
    visible = [obj for obj in objects if frame >= obj.first_frame]
    for order, obj in enumerate(visible):
        rows, columns = obj.region(frame)
        class_now = (flicker or {}).get((obj.name, frame), obj.semantic_class)
        semantic[rows, columns] = class_now
        # per-frame ids carry no temporal meaning, as from an image panoptic model
        instance[rows, columns] = (order + frame) % len(visible) + 1
    return PanopticFrame(semantic, instance)


def object_ids(frame: PanopticFrame, objects: list[Rectangle], index: int) -> dict[str, int]:
    """``{object name: output instance id}`` for the objects visible at ``index``."""
    ids = {}
    for obj in objects:
        if index >= obj.first_frame:
            values = np.unique(frame.instance[obj.region(index)])
            assert values.size == 1, f"{obj.name} has mixed ids {values}"
            ids[obj.name] = int(values[0])
    return ids


CAR_A = Rectangle("car_a", CAR, top=10, left=2, height=8, width=12, step=4)
CAR_B = Rectangle("car_b", CAR, top=24, left=60, height=10, width=14, step=3)
WALKER = Rectangle("walker", PERSON, top=8, left=140, height=12, width=5, step=-2)
LATE_CAR = Rectangle("late_car", CAR, top=28, left=2, height=6, width=10, step=2, first_frame=5)


def test_segments_become_boxes_and_cropped_masks() -> None:
    """One segment per (class, instance) with its pixel-edge box and its mask inside the box."""
    semantic = np.zeros((6, 8), dtype=np.int32)
    instance = np.zeros((6, 8), dtype=np.int32)
    semantic[1:3, 2:5] = CAR
    instance[1:3, 2:5] = 7
    semantic[4, 0] = PERSON
    instance[4, 0] = 7
    semantic[4, 1] = VOID
    instance[4, 1] = 9
    segments = extract_thing_segments(PanopticFrame(semantic, instance))
    assert [(s.semantic_class, s.source_instance) for s in segments] == [(CAR, 7), (PERSON, 7)]
    assert segments[0].box == (2.0, 1.0, 5.0, 3.0)
    assert segments[0].mask.shape == (2, 3)
    assert segments[0].mask.all()
    assert segments[1].box == (0.0, 4.0, 1.0, 5.0)
    assert extract_thing_segments(PanopticFrame(semantic, instance), {PERSON}) == [segments[1]]


def test_ids_are_consistent_and_semantics_preserved() -> None:
    """Every object keeps one id over the video; the semantic map passes through unchanged."""
    objects = [CAR_A, CAR_B, WALKER]
    frames = [render(index, objects) for index in range(12)]
    outputs = list(track_panoptic_video(frames))
    assert len(outputs) == len(frames)
    first_ids = object_ids(outputs[0], objects, 0)
    assert sorted(first_ids.values()) == [1, 2, 3]
    for index, (frame, output) in enumerate(zip(frames, outputs, strict=True)):
        np.testing.assert_array_equal(output.semantic, frame.semantic)
        assert object_ids(output, objects, index) == first_ids
        assert not output.instance[frame.instance == 0].any()


def test_unconfirmed_detections_drop_their_instance() -> None:
    """A late object keeps its class but has instance 0 until SORT confirms its track."""
    objects = [CAR_A, LATE_CAR]
    frames = [render(index, objects) for index in range(12)]
    outputs = list(track_panoptic_video(frames, unconfirmed="drop-instance"))
    late_ids = [
        object_ids(output, objects, index).get("late_car") for index, output in enumerate(outputs)
    ]
    assert late_ids[:5] == [None] * 5
    assert late_ids[5:8] == [0, 0, 0]
    assert len(set(late_ids[8:])) == 1
    assert late_ids[8] not in (0, None, object_ids(outputs[8], objects, 8)["car_a"])
    for frame, output in zip(frames, outputs, strict=True):
        np.testing.assert_array_equal(output.semantic, frame.semantic)


def test_unconfirmed_detections_get_fresh_ids() -> None:
    """With "new-id" a tentative object gets a new id per frame, never any track's id."""
    objects = [CAR_A, LATE_CAR]
    frames = [render(index, objects) for index in range(12)]
    outputs = list(track_panoptic_video(frames, unconfirmed="new-id"))
    per_frame = [object_ids(output, objects, index) for index, output in enumerate(outputs)]
    tentative = [ids["late_car"] for ids in per_frame[5:8]]
    confirmed = {ids["late_car"] for ids in per_frame[8:]}
    car_a = {ids["car_a"] for ids in per_frame}
    assert len(set(tentative)) == 3
    assert 0 not in tentative
    assert len(confirmed) == 1
    assert not set(tentative) & (confirmed | car_a)


def test_carry_class_gives_a_track_its_majority_class() -> None:
    """A car misclassified as a person in one frame is a car throughout with carry_class."""
    objects = [CAR_A]
    flicker = {("car_a", 6): PERSON}
    frames = [render(index, objects, flicker) for index in range(10)]
    carried = list(track_panoptic_video(frames, carry_class=True))
    rows, columns = CAR_A.region(6)
    assert (carried[6].semantic[rows, columns] == CAR).all()
    assert (carried[6].instance[rows, columns] == 1).all()
    kept = list(track_panoptic_video(frames, carry_class=False))
    assert (kept[6].semantic[rows, columns] == PERSON).all()
    assert (kept[6].instance[rows, columns] == 1).all()


def test_given_thing_classes_exclude_other_instances() -> None:
    """Instances of a class that is not a thing class are dropped to 0; semantics unchanged."""
    pole = Rectangle("pole", POLE, top=6, left=100, height=30, width=3, step=0)
    objects = [CAR_A, pole]
    frames = [render(index, objects) for index in range(6)]
    outputs = list(track_panoptic_video(frames, thing_classes={CAR, PERSON}))
    for index, (frame, output) in enumerate(zip(frames, outputs, strict=True)):
        ids = object_ids(output, objects, index)
        assert ids["pole"] == 0
        assert ids["car_a"] == 1
        np.testing.assert_array_equal(output.semantic, frame.semantic)
    inferred = list(track_panoptic_video(frames))
    assert object_ids(inferred[0], objects, 0)["pole"] > 0


def test_sort_config_is_passed_through() -> None:
    """With min_hits = 0 a late object has its track id from its first frame."""
    objects = [CAR_A, LATE_CAR]
    frames = [render(index, objects) for index in range(8)]
    outputs = list(track_panoptic_video(frames, config=SortConfig(min_hits=0)))
    late = [object_ids(outputs[index], objects, index)["late_car"] for index in range(5, 8)]
    assert late == [2, 2, 2]


def test_streaming_consumes_one_frame_per_output() -> None:
    """The tracker reads its input lazily, so it runs on an endless video."""
    consumed = 0

    def endless_video() -> Iterator[PanopticFrame]:
        nonlocal consumed
        for index in itertools.count():
            consumed += 1
            yield render(index % 20, [CAR_A])

    outputs = list(itertools.islice(track_panoptic_video(endless_video()), 3))
    assert len(outputs) == 3
    assert consumed == 3


def test_unknown_unconfirmed_policy_is_rejected() -> None:
    """Only "drop-instance" and "new-id" are accepted."""
    with pytest.raises(ValueError, match="keep"):
        next(track_panoptic_video([render(0, [CAR_A])], unconfirmed="keep"))
