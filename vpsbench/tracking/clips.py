"""Clip-wise video instance segmentation stitched into one video (DepthG + VideoCutLER baseline).

VideoCUPS (Sec. 4) runs VideoCutLER on clips of 30 frames overlapping by 5, because whole videos
exhaust memory, and aligns instance ids across clips by IoU. Here a track is an instance id
(class ignored); its IoU with another is accumulated over all overlap frames (summed
intersections over summed unions), and tracks are paired by the Hungarian algorithm (as in SORT,
Bewley et al. 2016), keeping pairs with IoU ≥ the threshold. The overlap frames are emitted from
the earlier clip.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import numpy.typing as npt

from vpsbench.tracking.sort import associate
from vpsbench.video import PanopticFrame

IdArray = npt.NDArray[np.int64]


def split_into_clips(num_frames: int, clip_length: int = 30, overlap: int = 5) -> list[range]:
    """Frame ranges of clips of ``clip_length`` overlapping by ``overlap`` (last may be short)."""
    if num_frames < 0:
        raise ValueError(f"num_frames must be >= 0, got {num_frames}")
    if clip_length < 1:
        raise ValueError(f"clip_length must be >= 1, got {clip_length}")
    if not 0 <= overlap < clip_length:
        raise ValueError(f"overlap must be in [0, clip_length), got {overlap}")
    clips: list[range] = []
    start = 0
    while start < num_frames:
        stop = min(start + clip_length, num_frames)
        clips.append(range(start, stop))
        if stop == num_frames:
            break
        start += clip_length - overlap
    return clips


def _instance_ids(frames: Sequence[PanopticFrame]) -> IdArray:
    """Sorted positive instance ids present in any of the frames."""
    if not frames:
        return np.zeros(0, dtype=np.int64)
    stacked = np.concatenate([frame.instance.reshape(-1) for frame in frames])
    return np.unique(stacked[stacked > 0]).astype(np.int64)


def overlap_iou(
    previous_overlap: Sequence[PanopticFrame], next_overlap: Sequence[PanopticFrame]
) -> tuple[IdArray, IdArray, npt.NDArray[np.float64]]:
    """Ids of both sides and their IoU matrix, intersections and unions summed over the frames."""
    if len(previous_overlap) != len(next_overlap):
        raise ValueError(
            f"overlaps differ in length: {len(previous_overlap)} != {len(next_overlap)}"
        )
    for previous, following in zip(previous_overlap, next_overlap, strict=True):
        if previous.shape != following.shape:
            raise ValueError(f"overlap frame shapes differ: {previous.shape} != {following.shape}")
    previous_ids, next_ids = _instance_ids(previous_overlap), _instance_ids(next_overlap)
    intersection = np.zeros((previous_ids.size, next_ids.size), dtype=np.int64)
    previous_area = np.zeros(previous_ids.size, dtype=np.int64)
    next_area = np.zeros(next_ids.size, dtype=np.int64)
    for previous, following in zip(previous_overlap, next_overlap, strict=True):
        previous_flat = previous.instance.reshape(-1)
        next_flat = following.instance.reshape(-1)
        previous_index = np.searchsorted(previous_ids, previous_flat[previous_flat > 0])
        next_index = np.searchsorted(next_ids, next_flat[next_flat > 0])
        previous_area += np.bincount(previous_index, minlength=previous_ids.size)
        next_area += np.bincount(next_index, minlength=next_ids.size)
        both = (previous_flat > 0) & (next_flat > 0)
        pair_index = np.searchsorted(previous_ids, previous_flat[both]) * next_ids.size
        pair_index += np.searchsorted(next_ids, next_flat[both])
        intersection += np.bincount(pair_index, minlength=intersection.size).reshape(
            intersection.shape
        )
    union = previous_area[:, None] + next_area[None, :] - intersection
    iou = np.divide(
        intersection, union, out=np.zeros(intersection.shape, dtype=np.float64), where=union > 0
    )
    return previous_ids, next_ids, iou


def align_clip_ids(
    previous_overlap: Sequence[PanopticFrame],
    next_overlap: Sequence[PanopticFrame],
    next_clip: Sequence[PanopticFrame],
    next_free_id: int,
    iou_threshold: float = 0.5,
) -> tuple[list[PanopticFrame], int]:
    """Relabel ``next_clip``: ids matched over the overlap inherit, the rest get fresh ids."""
    if next_free_id < 1:
        raise ValueError(f"next_free_id must be >= 1, got {next_free_id}")
    previous_ids, next_ids, iou = overlap_iou(previous_overlap, next_overlap)
    if previous_ids.size and int(previous_ids[-1]) >= next_free_id:
        raise ValueError(
            f"next_free_id {next_free_id} is not above the previous clip's id {previous_ids[-1]}"
        )
    inherited: dict[int, int] = {}
    for previous_index, next_index in zip(*associate(iou, iou_threshold), strict=True):
        inherited[int(next_ids[next_index])] = int(previous_ids[previous_index])
    clip_ids = _instance_ids(next_clip)
    new_ids = np.zeros(clip_ids.size, dtype=np.int64)
    for index, clip_id in enumerate(clip_ids.tolist()):
        if clip_id in inherited:
            new_ids[index] = inherited[clip_id]
        else:
            new_ids[index] = next_free_id
            next_free_id += 1
    relabelled = []
    for frame in next_clip:
        instance = np.zeros_like(frame.instance)
        positive = frame.instance > 0
        instance[positive] = new_ids[np.searchsorted(clip_ids, frame.instance[positive])]
        relabelled.append(PanopticFrame(frame.semantic, instance))
    return relabelled, next_free_id


def stitch_clips(
    clips: Iterable[Sequence[PanopticFrame]],
    overlap: int = 5,
    iou_threshold: float = 0.5,
    first_id: int = 1,
) -> Iterator[PanopticFrame]:
    """Stream the frames of consecutive overlapping clips as one video with aligned ids."""
    previous_clip: list[PanopticFrame] = []
    next_free_id = first_id
    for clip in clips:
        shared = overlap if previous_clip else 0
        if len(clip) <= shared or len(previous_clip) < shared:
            raise ValueError(f"clips must be longer than the overlap of {overlap} frames")
        previous_overlap = previous_clip[len(previous_clip) - shared :]
        previous_clip, next_free_id = align_clip_ids(
            previous_overlap, clip[:shared], clip, next_free_id, iou_threshold
        )
        yield from previous_clip[shared:]
