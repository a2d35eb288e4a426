"""VideoCUPS stage 1 (paper Sec. 3.1): panoptic video pseudo-labels of one clip, step by step.

For every frame: class-agnostic instances by motion/depth region growing (Eq. 1) and semantic
pseudo-classes from clustered features with depth-guided fusion of a coarse and a fine
prediction (Eq. 2) and a dense CRF; then over the clip: instance propagation and tracking with
optical flow, temporal semantic smoothing, and the alignment of one pseudo-class per track.
Every step can be switched off (the paper's Table 3 ablation). The thing/stuff split needs all
clips, so it is applied afterwards (:func:`finalize_clip`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from vpsbench.cues import DepthProvider, FeatureProvider, FlowProvider, VideoClip
from vpsbench.video import PanopticFrame
from vpsbench_methods.videocups.instances import region_growing
from vpsbench_methods.videocups.semantics import (
    CRF_ITERATIONS,
    DEFAULT_TEMPERATURE,
    LOW_RESOLUTION_SCALE,
    CrfParameters,
    semantic_pseudo_labels,
)
from vpsbench_methods.videocups.temporal import (
    align_semantics_to_tracks,
    propagate_and_track,
    temporal_semantic_smoothing,
)

LabelMap = npt.NDArray[np.int32]


@dataclass(frozen=True)
class PseudoLabelSettings:
    """The paper's hyper-parameters (Sec. 3.1, 4) and the ablation switches (Table 3).

    ``window`` / ``window_stride`` (px; None: CUPS' half / quarter frame height) and
    ``low_scale`` (CUPS: ½) set Eq. 2's P_high windows and P_low resolution.
    """

    alpha: float = 0.15
    radius: int = 8
    tau_depth: float = 0.02
    tau_flow: float = 0.04
    min_instance_area: int = 0
    depth_guided: bool = True
    window: int | None = None
    window_stride: int | None = None
    low_scale: float = LOW_RESOLUTION_SCALE
    crf: bool = True
    crf_iterations: int = CRF_ITERATIONS  # CUPS' MAX_ITER
    #: None: numpy/scipy CRF and region growing; a torch device ("cpu", "cuda"): both in torch
    #: there (same results: methods/vpsbench_methods/videocups/crf_torch.py, instances_torch.py).
    device: str | None = None
    temperature: float = DEFAULT_TEMPERATURE
    propagation: bool = True
    tau_match: float = 0.4
    min_track_length: int = 2
    smoothing: bool = True


@dataclass
class CueSet:
    """The providers a clip is pseudo-labelled with (S's features at any image: one provider)."""

    flow: FlowProvider
    depth: DepthProvider
    features: FeatureProvider


def frame_semantics(
    clip: VideoClip,
    t: int,
    cues: CueSet,
    centroids: npt.NDArray[np.float64],
    depth: npt.NDArray[np.float32],
    settings: PseudoLabelSettings,
) -> LabelMap:
    """Pseudo-class map of one frame: P_low (+ P_high fused by depth, Eq. 2) (+ dense CRF).

    Without ``depth_guided`` it is the vanilla low-resolution inference (Table 3's first row).
    """
    return semantic_pseudo_labels(
        clip.image(t),
        cues.features.image_features,
        centroids,
        depth if settings.depth_guided else None,
        low_scale=settings.low_scale,
        window=settings.window,
        window_stride=settings.window_stride,
        use_sliding_window=settings.depth_guided,
        use_depth_guidance=settings.depth_guided,
        use_crf=settings.crf,
        crf=CrfParameters(iterations=settings.crf_iterations, device=settings.device),
        temperature=settings.temperature,
    )


def _torch_region_growing(device: str) -> Callable[..., LabelMap]:
    """Region growing in torch on ``device`` (torch is imported only when asked for)."""
    from vpsbench_methods.videocups.instances_torch import region_growing_torch

    return functools.partial(region_growing_torch, device=device)


def clip_pseudo_labels(
    clip: VideoClip,
    cues: CueSet,
    centroids: npt.NDArray[np.float64],
    settings: PseudoLabelSettings,
) -> list[PanopticFrame]:
    """Video pseudo-labels of a clip before the thing/stuff split (ids consistent over the clip)."""
    count = len(clip)
    forward = [cues.flow.flow(clip, t, t + 1) for t in range(count - 1)]
    backward = [cues.flow.flow(clip, t + 1, t) for t in range(count - 1)]
    semantics: list[LabelMap] = []
    instances: list[LabelMap] = []
    for t in range(count):
        cue = cues.depth.depth_motion(clip, t)
        flow = forward[t] if t < count - 1 else -backward[t - 1] if count > 1 else None
        if flow is None:
            flow = np.zeros((*cue.depth.shape, 2), dtype=np.float32)
        grow = region_growing if settings.device is None else _torch_region_growing(settings.device)
        instances.append(
            grow(
                cue.depth,
                flow,
                cue.motion,
                alpha=settings.alpha,
                radius=settings.radius,
                tau_depth=settings.tau_depth,
                tau_flow=settings.tau_flow,
                min_area=settings.min_instance_area,
            ).astype(np.int32)
        )
        semantics.append(frame_semantics(clip, t, cues, centroids, cue.depth, settings))
    if settings.propagation and count > 1:
        instances = [
            m.astype(np.int32)
            for m in propagate_and_track(
                instances,
                forward,
                backward,
                tau_match=settings.tau_match,
                min_track_length=settings.min_track_length,
            )
        ]
    else:
        instances = _unique_ids_per_frame(instances)
    if settings.smoothing and count > 1:
        semantics = [
            s.astype(np.int32) for s in temporal_semantic_smoothing(semantics, forward, backward)
        ]
    aligned, _ = align_semantics_to_tracks(semantics, instances)
    return [
        PanopticFrame(np.asarray(s, dtype=np.int32), m)
        for s, m in zip(aligned, instances, strict=True)
    ]


def _unique_ids_per_frame(instances: Sequence[LabelMap]) -> list[LabelMap]:
    """Without tracking, every frame's instances get ids of their own (no temporal links)."""
    result: list[LabelMap] = []
    offset = 0
    for mask in instances:
        shifted = np.where(mask > 0, mask + offset, 0).astype(np.int32)
        offset = max(offset, int(shifted.max(initial=0)))
        result.append(shifted)
    return result


def finalize_clip(
    frames: Sequence[PanopticFrame], thing_classes: npt.NDArray[np.bool_]
) -> list[PanopticFrame]:
    """Apply the thing/stuff split: instances of stuff pseudo-classes lose their ids."""
    final = []
    for frame in frames:
        is_thing = np.zeros(frame.semantic.shape, dtype=bool)
        valid = (frame.semantic >= 0) & (frame.semantic < thing_classes.size)
        is_thing[valid] = thing_classes[frame.semantic[valid]]
        final.append(PanopticFrame(frame.semantic, np.where(is_thing, frame.instance, 0)))
    return final
