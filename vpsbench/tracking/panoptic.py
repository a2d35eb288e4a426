"""Per-frame panoptic predictions + SORT → video panoptic predictions (VideoCUPS Sec. 4).

Each frame's thing segments (one per ``(class, instance)`` with instance > 0) become detections
whose box is the segment's pixel extent; SORT (Bewley et al. 2016) gives them track ids. In the
output, the semantic map is the input's and the instance map is 0 everywhere except on tracked
thing segments: a segment of a confirmed (output) track gets the track id; a segment whose track
SORT does not output yet (or any more) keeps its class and gets instance 0 (``"drop-instance"``,
like SORT, which reports only confirmed tracks) or a fresh one-frame id (``"new-id"``, from the
tracker's id counter, so it never clashes with a track). With ``carry_class`` the pixels of a
confirmed track get the track's class, the majority over all its detections so far (ties keep the
class that reached the count first), so a track has one class; otherwise (the default: SORT only
assigns ids, and the paper's baselines add nothing to it) each segment keeps its own. Streaming:
one frame in, one frame out; state is the live tracks only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from vpsbench.tracking.kalman import Box
from vpsbench.tracking.sort import Detection, Sort, SortConfig
from vpsbench.video import LabelMap, PanopticFrame

_INSTANCE_BITS = 32


class UnconfirmedPolicy(StrEnum):
    """What a thing segment gets when its SORT track is not output in this frame."""

    DROP_INSTANCE = "drop-instance"  # keep the class, instance 0 (SORT reports confirmed only)
    NEW_ID = "new-id"  # keep the class, a fresh id used by no other segment or track


@dataclass(frozen=True)
class ThingSegment:
    """One thing segment of a frame: class, input instance id and its mask cropped to its box."""

    semantic_class: int
    source_instance: int
    rows: slice
    columns: slice
    mask: npt.NDArray[np.bool_] = field(compare=False)

    @property
    def box(self) -> Box:
        """Pixel-edge box ``(x1, y1, x2, y2)``: a segment on columns 3..5 spans x 3.0 to 6.0."""
        return (
            float(self.columns.start),
            float(self.rows.start),
            float(self.columns.stop),
            float(self.rows.stop),
        )

    def paint(self, label_map: LabelMap, value: int) -> None:
        """Write ``value`` into ``label_map`` on this segment's pixels."""
        label_map[self.rows, self.columns][self.mask] = value


@dataclass(slots=True)
class _ClassVotes:
    """A track's class votes; the leader changes only when another class strictly overtakes it."""

    counts: Counter[int] = field(default_factory=Counter)
    leader: int | None = None

    def add(self, semantic_class: int) -> int:
        """Count one detection of ``semantic_class`` and return the track's majority class."""
        self.counts[semantic_class] += 1
        if self.leader is None or self.counts[semantic_class] > self.counts[self.leader]:
            self.leader = semantic_class
        return self.leader


def extract_thing_segments(
    frame: PanopticFrame, thing_classes: Collection[int] | None = None
) -> list[ThingSegment]:
    """The frame's thing segments, sorted by (class, instance); void classes (< 0) never count."""
    candidate = (frame.instance > 0) & (frame.semantic >= 0)
    if thing_classes is not None:
        candidate &= np.isin(frame.semantic, np.fromiter(thing_classes, dtype=np.int64))
    if not candidate.any():
        return []
    keys = (frame.semantic[candidate].astype(np.int64) << _INSTANCE_BITS) | frame.instance[
        candidate
    ].astype(np.int64)
    unique_keys, segment_of_pixel = np.unique(keys, return_inverse=True)
    labels = np.zeros(frame.shape, dtype=np.int32)
    labels[candidate] = segment_of_pixel.reshape(-1) + 1
    segments = []
    for index, (key, bounds) in enumerate(
        zip(unique_keys.tolist(), ndimage.find_objects(labels), strict=True)
    ):
        rows, columns = bounds
        segments.append(
            ThingSegment(
                semantic_class=key >> _INSTANCE_BITS,
                source_instance=key & ((1 << _INSTANCE_BITS) - 1),
                rows=rows,
                columns=columns,
                mask=labels[rows, columns] == index + 1,
            )
        )
    return segments


def track_panoptic_video(
    frames: Iterable[PanopticFrame],
    thing_classes: Collection[int] | None = None,
    config: SortConfig | None = None,
    carry_class: bool = False,
    unconfirmed: UnconfirmedPolicy | str = UnconfirmedPolicy.DROP_INSTANCE,
) -> Iterator[PanopticFrame]:
    """Give per-frame thing segments temporally consistent ids with SORT (Bewley et al. 2016)."""
    policy = UnconfirmedPolicy(unconfirmed)
    tracker = Sort(config)
    votes_of_track: dict[int, _ClassVotes] = {}
    for frame in frames:
        segments = extract_thing_segments(frame, thing_classes)
        detections = [Detection(segment.box, payload=segment) for segment in segments]
        semantic = frame.semantic.copy()
        instance = np.zeros_like(frame.instance)
        for assignment, segment in zip(tracker.assign(detections), segments, strict=True):
            votes = votes_of_track.setdefault(assignment.track_id, _ClassVotes())
            majority_class = votes.add(segment.semantic_class)
            if assignment.confirmed:
                segment.paint(instance, assignment.track_id)
                if carry_class:
                    segment.paint(semantic, majority_class)
            elif policy is UnconfirmedPolicy.NEW_ID:
                segment.paint(instance, tracker.allocate_id())
        live_tracks = set(tracker.active_track_ids)
        votes_of_track = {
            track_id: votes for track_id, votes in votes_of_track.items() if track_id in live_tracks
        }
        yield PanopticFrame(semantic, instance)
