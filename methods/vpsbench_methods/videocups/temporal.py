"""From image to video pseudo-labels (VideoCUPS, paper Sec. 3.1): tracking, smoothing, alignment.

Four steps turn frame-wise pseudo-labels into video panoptic pseudo-labels:

* *instance propagation and tracking* (:func:`propagate_and_track`) — frame-wise, class-agnostic
  instance masks get video-consistent ids by warping them back with optical flow, ignoring pixels
  that fail the forward–backward check (:func:`occlusion_mask`), and matching them by IoU with the
  Hungarian algorithm (pairs with IoU > τ_m = 0.4); a track lost in frame t is recovered from
  frame t+1, and tracks seen in fewer than 2 frames are dropped;
* *temporal semantic smoothing* (:func:`temporal_semantic_smoothing`) — a per-pixel majority vote
  over the semantic pseudo-labels of frames t−1, t, t+1 warped to frame t;
* *alignment* (:func:`align_semantics_to_tracks`) — one pseudo-class per track, by majority vote
  over all its pixels in the clip;
* *thing/stuff split* (:func:`accumulate_split_counts`, :func:`thing_stuff_split`) — a
  pseudo-class is a "thing" when the share of its pixels inside instance masks exceeds ψ_ts.

Flow convention (as :mod:`vpsbench.cues.base`): a flow ``(H, W, 2)`` holds ``(dx, dy)`` in pixels
from a source frame to a target frame, defined on the source grid: pixel p of the source ↦
p + flow[p]. ``flows_forward[t]`` goes from frame t to t+1 (grid of t), ``flows_backward[t]`` from
frame t+1 to t (grid of t+1); a clip of T frames has T−1 of each.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

LabelMap = npt.NDArray[np.int32]
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolMap = npt.NDArray[np.bool_]
FlowField = npt.NDArray[np.floating]
#: Instance id of M_{t+1} → (track recovered for it, IoU of the recovery match).
Recoveries = dict[int, tuple[int, float]]

#: Label of warped pixels that have no source: read from outside the frame or occluded.
UNKNOWN_LABEL = -1
#: Paper Sec. 3.1: instances match when their IoU exceeds τ_m.
TAU_MATCH = 0.4
#: Paper Sec. 3.1: tracks present in fewer frames are removed.
MIN_TRACK_LENGTH = 2
#: Forward–backward consistency constants of Sundaram et al. (2010), also used by UnFlow.
OCCLUSION_ALPHA1 = 0.01
OCCLUSION_ALPHA2 = 0.5
#: ψ_ts: the paper gives no value; 0.08 is the thing/stuff threshold of CUPS' public default
#: configuration (VideoCUPS builds on CUPS [41]). Moving-object pseudo-masks cover only a small
#: share of a thing class's pixels (parked cars are never masked), so the threshold must be low.
PSI_THING_STUFF = 0.08


def _check_flow(flow: FlowField, shape: tuple[int, ...], name: str) -> None:
    """Reject a flow field whose shape is not ``(H, W, 2)`` for the label map it warps."""
    if flow.ndim != 3 or flow.shape[2] != 2 or flow.shape[:2] != shape[:2]:
        raise ValueError(f"{name} must have shape {(*shape[:2], 2)}, got {flow.shape}")


def _sample_positions(flow: FlowField) -> tuple[FloatArray, FloatArray]:
    """Where each source pixel lands in the target: column and row of p + flow[p]."""
    height, width = flow.shape[:2]
    rows, columns = np.mgrid[0:height, 0:width].astype(np.float64)
    return columns + flow[..., 0], rows + flow[..., 1]


def _nearest_source(flow: FlowField) -> tuple[IntArray, IntArray, BoolMap]:
    """Row and column of the pixel nearest to p + flow[p] (rounded half up), and if in frame."""
    height, width = flow.shape[:2]
    sample_x, sample_y = _sample_positions(flow)
    column = np.floor(sample_x + 0.5).astype(np.int64)
    row = np.floor(sample_y + 0.5).astype(np.int64)
    inside = (column >= 0) & (column < width) & (row >= 0) & (row < height)
    return np.clip(row, 0, height - 1), np.clip(column, 0, width - 1), inside


def backward_warp(
    labels: npt.ArrayLike, flow_to_target: FlowField, fill_value: int = UNKNOWN_LABEL
) -> LabelMap:
    """Nearest-neighbour backward warp of a target label map onto the source grid (Sec. 3.1).

    ``labels`` belong to the target frame (e.g. M_t) and ``flow_to_target`` goes from the source
    frame to the target (e.g. t−1 → t); pixel p of the source reads ``labels`` at p + flow[p],
    rounded half up, and pixels that land outside the frame take ``fill_value``. Labels cannot be
    interpolated, hence nearest neighbour.
    """
    label_map = np.asarray(labels)
    if label_map.ndim != 2:
        raise ValueError(f"labels must be 2-D, got shape {label_map.shape}")
    _check_flow(flow_to_target, label_map.shape, "flow_to_target")
    row, column, inside = _nearest_source(flow_to_target)
    warped: LabelMap = np.where(inside, label_map[row, column], fill_value).astype(np.int32)
    return warped


def _bilinear_sample(
    image: FloatArray, sample_x: FloatArray, sample_y: FloatArray
) -> tuple[FloatArray, BoolMap]:
    """Bilinear samples of ``image`` (H, W, C) at the positions, and whether each is in frame."""
    height, width = image.shape[:2]
    inside = (sample_x >= 0) & (sample_x <= width - 1) & (sample_y >= 0) & (sample_y <= height - 1)
    x = np.clip(sample_x, 0, width - 1)
    y = np.clip(sample_y, 0, height - 1)
    left = np.floor(x).astype(np.int64)
    top = np.floor(y).astype(np.int64)
    right = np.minimum(left + 1, width - 1)
    bottom = np.minimum(top + 1, height - 1)
    weight_x = (x - left)[..., None]
    weight_y = (y - top)[..., None]
    pixels = image.reshape(height * width, -1)
    upper = pixels[top * width + left] * (1 - weight_x) + pixels[top * width + right] * weight_x
    lower = pixels[bottom * width + left] * (1 - weight_x)
    lower += pixels[bottom * width + right] * weight_x
    samples: FloatArray = upper * (1 - weight_y) + lower * weight_y
    return samples, inside


def backward_warp_image(
    image: npt.ArrayLike, flow_to_target: FlowField, fill_value: float = 0.0
) -> FloatArray:
    """Bilinear backward warp of a target image (H, W) or (H, W, C) onto the source grid.

    Same convention as :func:`backward_warp`, for continuous values (flows, probabilities);
    pixels that land outside the frame take ``fill_value``.
    """
    values = np.asarray(image, dtype=np.float64)
    if values.ndim not in (2, 3):
        raise ValueError(f"image must be (H, W) or (H, W, C), got shape {values.shape}")
    _check_flow(flow_to_target, values.shape, "flow_to_target")
    channels = values if values.ndim == 3 else values[..., None]
    sample_x, sample_y = _sample_positions(flow_to_target)
    samples, inside = _bilinear_sample(channels, sample_x, sample_y)
    samples[~inside] = fill_value
    warped: FloatArray = samples if values.ndim == 3 else samples[..., 0]
    return warped


def occlusion_mask(
    flow_forward: FlowField,
    flow_backward: FlowField,
    alpha1: float = OCCLUSION_ALPHA1,
    alpha2: float = OCCLUSION_ALPHA2,
) -> BoolMap:
    """Source pixels without a reliable correspondence, by forward–backward consistency (Sec. 3.1).

    Rule of Sundaram et al. (2010), as in UnFlow (Meister et al. 2018): with f = flow_forward[p]
    (source → target) and b = flow_backward sampled bilinearly at p + f (target → source), p is
    occluded when |f + b|² > α1 (|f|² + |b|²) + α2. Pixels whose p + f leaves the frame have no
    correspondence and are flagged as well.
    """
    forward = np.asarray(flow_forward, dtype=np.float64)
    backward = np.asarray(flow_backward, dtype=np.float64)
    _check_flow(forward, forward.shape, "flow_forward")
    _check_flow(backward, forward.shape, "flow_backward")
    sample_x, sample_y = _sample_positions(forward)
    backward_at_target, inside = _bilinear_sample(backward, sample_x, sample_y)
    round_trip = np.sum((forward + backward_at_target) ** 2, axis=2)
    magnitudes = np.sum(forward**2, axis=2) + np.sum(backward_at_target**2, axis=2)
    occluded: BoolMap = (round_trip > alpha1 * magnitudes + alpha2) | ~inside
    return occluded


def _warp_and_mask(labels: npt.ArrayLike, flow: FlowField, reverse_flow: FlowField) -> LabelMap:
    """M̂: ``labels`` warped back along ``flow``; occluded or out-of-frame pixels are unknown."""
    warped = backward_warp(labels, flow, fill_value=UNKNOWN_LABEL)
    warped[occlusion_mask(flow, reverse_flow)] = UNKNOWN_LABEL
    return warped


def _overlap_iou(reference: LabelMap, warped: LabelMap) -> tuple[IntArray, IntArray, FloatArray]:
    """Ids of both maps and their mask IoU, counted only where ``warped`` is known (Sec. 3.1)."""
    known = warped != UNKNOWN_LABEL
    reference_known = reference[known].astype(np.int64)
    warped_known = warped[known].astype(np.int64)
    reference_ids = np.unique(reference_known[reference_known > 0])
    warped_ids = np.unique(warped_known[warped_known > 0])
    reference_index = np.searchsorted(reference_ids, reference_known[reference_known > 0])
    warped_index = np.searchsorted(warped_ids, warped_known[warped_known > 0])
    reference_area = np.bincount(reference_index, minlength=reference_ids.size)
    warped_area = np.bincount(warped_index, minlength=warped_ids.size)
    both = (reference_known > 0) & (warped_known > 0)
    pair_index = np.searchsorted(reference_ids, reference_known[both]) * warped_ids.size
    pair_index += np.searchsorted(warped_ids, warped_known[both])
    shape = (reference_ids.size, warped_ids.size)
    intersection = np.bincount(pair_index, minlength=shape[0] * shape[1]).reshape(shape)
    union = reference_area[:, None] + warped_area[None, :] - intersection
    iou = np.divide(
        intersection, union, out=np.zeros(shape, dtype=np.float64), where=union > 0
    ).astype(np.float64)
    return reference_ids, warped_ids, iou


def _hungarian_above(iou: FloatArray, tau_match: float) -> list[tuple[int, int]]:
    """Row/column pairs of the Hungarian assignment maximising IoU over pairs with IoU > τ_m."""
    if iou.size == 0:
        return []
    admissible = iou > tau_match
    rows, columns = linear_sum_assignment(np.where(admissible, iou, 0.0), maximize=True)
    return [(int(r), int(c)) for r, c in zip(rows, columns, strict=True) if admissible[r, c]]


def _check_clip(
    frames: Sequence[npt.ArrayLike],
    flows_forward: Sequence[FlowField],
    flows_backward: Sequence[FlowField],
) -> list[IntArray]:
    """The frames as 2-D int64 arrays of one shape, with T−1 flows each way of matching shape."""
    maps = [np.asarray(frame).astype(np.int64) for frame in frames]
    if maps and any(m.ndim != 2 or m.shape != maps[0].shape for m in maps):
        raise ValueError("frames must be 2-D label maps of one shape")
    expected = max(len(maps) - 1, 0)
    if len(flows_forward) != expected or len(flows_backward) != expected:
        raise ValueError(
            f"{len(maps)} frames need {expected} forward and backward flows, got "
            f"{len(flows_forward)} and {len(flows_backward)}"
        )
    for t in range(expected):
        _check_flow(flows_forward[t], maps[0].shape, f"flows_forward[{t}]")
        _check_flow(flows_backward[t], maps[0].shape, f"flows_backward[{t}]")
    return maps


def _relabel(instances: IntArray, assignment: dict[int, int]) -> LabelMap:
    """Instance map with each instance id replaced by its assigned track id (others → 0)."""
    ids, inverse = np.unique(instances, return_inverse=True)
    track_of_id = np.array([assignment.get(int(i), 0) for i in ids], dtype=np.int32)
    relabelled: LabelMap = track_of_id[inverse.reshape(instances.shape)]
    return relabelled


def _ids_in_raster_order(instances: IntArray) -> list[int]:
    """Positive instance ids ordered by their first pixel in raster order (deterministic)."""
    ids, first_pixel = np.unique(instances, return_index=True)
    order = np.argsort(first_pixel[ids > 0], kind="stable")
    return [int(i) for i in ids[ids > 0][order]]


def propagate_and_track(
    instances: Sequence[npt.ArrayLike],
    flows_forward: Sequence[FlowField],
    flows_backward: Sequence[FlowField],
    tau_match: float = TAU_MATCH,
    min_track_length: int = MIN_TRACK_LENGTH,
) -> list[LabelMap]:
    """Video-consistent instance ids by flow propagation and IoU matching (paper Sec. 3.1).

    ``instances`` are frame-wise instance maps (0 = no instance, ids arbitrary per frame). For each
    step t−1 → t: M_t is warped back to t−1 (occluded pixels ignored in the IoU), and tracks of
    frame t−1 are paired with instances of M_t by the Hungarian algorithm over pairs with
    IoU > ``tau_match``; the unmatched instances of M_t start new tracks. Tracks of frame t−1 left
    unmatched are recovered from t+1: M_{t+1} is warped to t (M̂_{t+1→t}) and on to t−1, matched to
    the lost masks with the same threshold, and a recovered track is written into frame t at
    M̂_{t+1→t}'s mask where no instance of M_t lies. The recovered pair then enters the
    Hungarian step t → t+1 with (at least) its recovery IoU, so a recovery also survives a
    resurrected mask emptied by a neighbour's mask that swallowed it in frame t. Tracks present
    in fewer than ``min_track_length`` frames are removed; ids are 1, 2, … in order of first
    appearance (ties: raster order of the first pixel).
    """
    if min_track_length < 1:
        raise ValueError(f"min_track_length must be >= 1, got {min_track_length}")
    maps = _check_clip(instances, flows_forward, flows_backward)
    if any((m < 0).any() for m in maps):
        raise ValueError("instance ids must be >= 0 (0 = no instance)")
    if not maps:
        return []
    next_track_id = 1
    first_assignment: dict[int, int] = {}
    for instance_id in _ids_in_raster_order(maps[0]):
        first_assignment[instance_id] = next_track_id
        next_track_id += 1
    tracked = [_relabel(maps[0], first_assignment)]
    recovered: Recoveries = {}  # made at step t−2 → t−1 for instances of M_t
    for t in range(1, len(maps)):
        previous = tracked[t - 1]
        warped_current = _warp_and_mask(maps[t], flows_forward[t - 1], flows_backward[t - 1])
        track_ids, instance_ids, iou = _with_recoveries(
            *_overlap_iou(previous, warped_current), recovered
        )
        assignment: dict[int, int] = {}
        for row, column in _hungarian_above(iou, tau_match):
            assignment[int(instance_ids[column])] = int(track_ids[row])
        taken_tracks = set(assignment.values())
        for instance_id in _ids_in_raster_order(maps[t]):
            if instance_id not in assignment:
                assignment[instance_id] = next_track_id
                next_track_id += 1
        current = _relabel(maps[t], assignment)
        recovered = {}
        lost_tracks = [int(i) for i in np.unique(previous) if i > 0 and int(i) not in taken_tracks]
        if lost_tracks and t + 1 < len(maps):
            recovered = _recover_lost_tracks(
                previous,
                current,
                maps[t + 1],
                lost_tracks,
                (flows_forward[t - 1], flows_backward[t - 1]),
                (flows_forward[t], flows_backward[t]),
                tau_match,
            )
        tracked.append(current)
    return _drop_short_tracks(tracked, next_track_id, min_track_length)


def _with_recoveries(
    track_ids: IntArray, instance_ids: IntArray, iou: FloatArray, recovered: Recoveries
) -> tuple[IntArray, IntArray, FloatArray]:
    """The IoU matrix of a step with each recovered pair entered at its recovery IoU (or more).

    A recovered track may have no pixels left in frame t (its warped mask was taken by another
    instance), so its row, and its instance's column, are added when missing.
    """
    if not recovered:
        return track_ids, instance_ids, iou
    recovered_tracks = np.array([track for track, _ in recovered.values()], dtype=np.int64)
    recovered_instances = np.array(list(recovered), dtype=np.int64)
    all_tracks = np.union1d(track_ids, recovered_tracks)
    all_instances = np.union1d(instance_ids, recovered_instances)
    grown = np.zeros((all_tracks.size, all_instances.size), dtype=np.float64)
    rows = np.searchsorted(all_tracks, track_ids)
    columns = np.searchsorted(all_instances, instance_ids)
    grown[np.ix_(rows, columns)] = iou
    recovery_rows = np.searchsorted(all_tracks, recovered_tracks)
    recovery_columns = np.searchsorted(all_instances, recovered_instances)
    recovery_iou = np.array([value for _, value in recovered.values()], dtype=np.float64)
    grown[recovery_rows, recovery_columns] = np.maximum(
        grown[recovery_rows, recovery_columns], recovery_iou
    )
    return all_tracks, all_instances, grown


def _recover_lost_tracks(
    previous: LabelMap,
    current: LabelMap,
    next_instances: IntArray,
    lost_tracks: list[int],
    flows_previous_step: tuple[FlowField, FlowField],
    flows_next_step: tuple[FlowField, FlowField],
    tau_match: float,
) -> Recoveries:
    """Resurrect tracks lost in frame t from M_{t+1} (Sec. 3.1); writes into ``current``.

    M̂_{t+1→t} is warped once more to t−1 so the lost masks of frame t−1 and the candidates are
    compared on one grid with the same IoU rule.
    """
    warped_next = _warp_and_mask(next_instances, *flows_next_step)
    flow_to_current, flow_to_previous = flows_previous_step
    warped_next_on_previous = backward_warp(warped_next, flow_to_current, UNKNOWN_LABEL)
    warped_next_on_previous[occlusion_mask(flow_to_current, flow_to_previous)] = UNKNOWN_LABEL
    lost_masks = np.where(np.isin(previous, lost_tracks), previous, 0).astype(np.int32)
    track_ids, next_ids, iou = _overlap_iou(lost_masks, warped_next_on_previous)
    recovered: Recoveries = {}
    free = current == 0
    for row, column in _hungarian_above(iou, tau_match):
        track_id, next_id = int(track_ids[row]), int(next_ids[column])
        current[(warped_next == next_id) & free] = track_id
        recovered[next_id] = (track_id, float(iou[row, column]))
    return recovered


def _drop_short_tracks(
    tracked: list[LabelMap], id_bound: int, min_track_length: int
) -> list[LabelMap]:
    """Remove tracks seen in fewer than ``min_track_length`` frames; renumber the rest 1, 2, …."""
    frames_per_track = np.zeros(id_bound, dtype=np.int64)
    for frame in tracked:
        frames_per_track[np.unique(frame)] += 1
    keep = frames_per_track >= min_track_length
    keep[0] = False
    new_id = np.where(keep, np.cumsum(keep), 0).astype(np.int32)
    return [new_id[frame] for frame in tracked]


def _warped_neighbour(
    labels: IntArray, flow: FlowField, reverse_flow: FlowField
) -> tuple[IntArray, BoolMap]:
    """A neighbour's labels warped to frame t along ``flow``, and where they are usable."""
    row, column, inside = _nearest_source(flow)
    return labels[row, column], inside & ~occlusion_mask(flow, reverse_flow)


def temporal_semantic_smoothing(
    semantics: Sequence[npt.ArrayLike],
    flows_forward: Sequence[FlowField],
    flows_backward: Sequence[FlowField],
) -> list[LabelMap]:
    """Per-pixel majority vote over {P̂_{t−1→t}, P*_t, P̂_{t+1→t}} (paper Sec. 3.1).

    Neighbours are warped to frame t with the flows; a neighbour that is out of frame or occluded
    (forward–backward check) does not vote, and ties keep P*_t. With three voters this reduces to:
    both neighbours available and agreeing override P*_t; otherwise P*_t stays. Votes use the
    unsmoothed labels (a sliding window, not a recursion). Any integer labels, −1 included.
    """
    maps = _check_clip(semantics, flows_forward, flows_backward)
    smoothed: list[LabelMap] = []
    for t, current in enumerate(maps):
        if t == 0 or t == len(maps) - 1:
            smoothed.append(current.astype(np.int32))
            continue
        from_previous, previous_usable = _warped_neighbour(
            maps[t - 1], flows_backward[t - 1], flows_forward[t - 1]
        )
        from_next, next_usable = _warped_neighbour(maps[t + 1], flows_forward[t], flows_backward[t])
        neighbours_agree = previous_usable & next_usable & (from_previous == from_next)
        smoothed.append(np.where(neighbours_agree, from_previous, current).astype(np.int32))
    return smoothed


def align_semantics_to_tracks(
    semantics: Sequence[npt.ArrayLike], tracks: Sequence[npt.ArrayLike]
) -> tuple[list[LabelMap], dict[int, int]]:
    """One pseudo-class per track, its majority over the clip, written to its pixels (Sec. 3.1).

    The vote counts every pixel of a track (id > 0) in every frame whose class is ≥ 0 (negative =
    void does not vote); ties go to the smallest class. A track with only void pixels is left out
    of the mapping and its pixels unchanged. Returns the aligned semantics and track → class.
    """
    if len(semantics) != len(tracks):
        raise ValueError(f"{len(semantics)} semantic maps but {len(tracks)} track maps")
    semantic_maps = [np.asarray(s).astype(np.int64) for s in semantics]
    track_maps = [np.asarray(t).astype(np.int64) for t in tracks]
    for semantic, track in zip(semantic_maps, track_maps, strict=True):
        if semantic.shape != track.shape or semantic.ndim != 2:
            raise ValueError(f"shapes differ or are not 2-D: {semantic.shape} vs {track.shape}")
    pair_tracks, pair_classes, pair_counts = [], [], []
    for semantic, track in zip(semantic_maps, track_maps, strict=True):
        voting = (track > 0) & (semantic >= 0)
        if not voting.any():
            continue
        base = int(semantic[voting].max()) + 1
        keys, counts = np.unique(track[voting] * base + semantic[voting], return_counts=True)
        pair_tracks.append(keys // base)
        pair_classes.append(keys % base)
        pair_counts.append(counts)
    mapping: dict[int, int] = {}
    if pair_tracks:
        all_tracks = np.concatenate(pair_tracks)
        all_classes = np.concatenate(pair_classes)
        base = int(all_classes.max()) + 1
        keys, inverse = np.unique(all_tracks * base + all_classes, return_inverse=True)
        counts = np.bincount(inverse, weights=np.concatenate(pair_counts)).astype(np.int64)
        key_tracks, key_classes = keys // base, keys % base
        order = np.lexsort((key_classes, -counts, key_tracks))
        winner_tracks, first = np.unique(key_tracks[order], return_index=True)
        winner_classes = key_classes[order][first]
        mapping = {int(k): int(c) for k, c in zip(winner_tracks, winner_classes, strict=True)}
    if not mapping:
        return [semantic.astype(np.int32) for semantic in semantic_maps], mapping
    track_ids = np.array(sorted(mapping), dtype=np.int64)
    class_of_track = np.array([mapping[int(k)] for k in track_ids], dtype=np.int64)
    aligned: list[LabelMap] = []
    for semantic, track in zip(semantic_maps, track_maps, strict=True):
        position = np.minimum(np.searchsorted(track_ids, track), track_ids.size - 1)
        has_class = track_ids[position] == track
        aligned.append(np.where(has_class, class_of_track[position], semantic).astype(np.int32))
    return aligned, mapping


def accumulate_split_counts(
    semantic: npt.ArrayLike, instance: npt.ArrayLike, num_classes: int
) -> tuple[IntArray, IntArray]:
    """Pixels per pseudo-class, overall and inside instance masks, for the split (Sec. 3.1).

    Works on a frame or a stacked clip; sum the results over all clips before calling
    :func:`thing_stuff_split`. Negative classes (void) are not counted.
    """
    semantic_map = np.asarray(semantic).astype(np.int64)
    instance_map = np.asarray(instance)
    if semantic_map.shape != instance_map.shape:
        raise ValueError(f"shapes differ: {semantic_map.shape} vs {instance_map.shape}")
    if semantic_map.size and int(semantic_map.max()) >= num_classes:
        raise ValueError(f"class {int(semantic_map.max())} >= num_classes={num_classes}")
    labelled = semantic_map >= 0
    class_pixels = np.bincount(semantic_map[labelled], minlength=num_classes).astype(np.int64)
    in_instances = semantic_map[labelled & (instance_map > 0)]
    class_pixels_in_instances = np.bincount(in_instances, minlength=num_classes).astype(np.int64)
    return class_pixels, class_pixels_in_instances


def thing_stuff_split(
    class_pixels: npt.ArrayLike,
    class_pixels_in_instances: npt.ArrayLike,
    psi: float = PSI_THING_STUFF,
) -> BoolMap:
    """True for "thing" pseudo-classes: share of pixels inside instances > ψ_ts (Sec. 3.1).

    A class with no pixels has share 0 and is "stuff". ψ_ts is not stated in the paper; the
    default 0.08 follows CUPS (see :data:`PSI_THING_STUFF`).
    """
    totals = np.asarray(class_pixels, dtype=np.float64)
    inside = np.asarray(class_pixels_in_instances, dtype=np.float64)
    if totals.shape != inside.shape or totals.ndim != 1:
        raise ValueError(f"counts must be 1-D of one shape, got {totals.shape}, {inside.shape}")
    if (inside > totals).any() or (inside < 0).any():
        raise ValueError("pixels inside instances must lie in [0, class pixels]")
    share = np.divide(inside, totals, out=np.zeros_like(totals), where=totals > 0)
    things: BoolMap = share > psi
    return things
