"""Streaming video inference: detect, associate tracks (MaskTrack), fuse panoptic frames.

Frames are read, predicted and yielded one at a time, so memory does not grow with the video.
Each frame is resized to the network's input size; masks and semantic logits of the detections
above the score threshold are brought back to the frame's size; the detections that Panoptic
FPN's fusion rule keeps (:func:`~vpsbench.models.panoptic_cascade_rcnn.fuse_instances`) are
associated with the tracks of earlier frames by :class:`~vpsbench_methods.videocups.model.tracking.
TrackMemory` and fused (:func:`~vpsbench.models.panoptic_cascade_rcnn.combine_panoptic`), each
instance carrying its track id. Ids are mapped back to pseudo-classes (:class:`ClassSpace`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

from vpsbench.models.panoptic_cascade_rcnn import (
    PanopticOutput,
    combine_panoptic,
    fuse_instances,
)
from vpsbench.video import PanopticFrame
from vpsbench_methods.videocups.model.data import ClassSpace, resize_image
from vpsbench_methods.videocups.model.network import FrameDetections, PanopticCascadeMaskTrack
from vpsbench_methods.videocups.model.tracking import TrackerConfig, TrackMemory


def to_frame_size(detections: FrameDetections, size: tuple[int, int]) -> PanopticOutput:
    """Detections at the network's input size → raw panoptic outputs at the frame's size."""
    height, width = detections.semantic_logits.shape[-2:]
    scale_x, scale_y = size[1] / width, size[0] / height
    boxes = detections.boxes * detections.boxes.new_tensor([scale_x, scale_y, scale_x, scale_y])
    masks = detections.masks
    logits = detections.semantic_logits
    if (height, width) != size:
        if masks.shape[0]:
            masks = F.interpolate(masks[None].float(), size=size, mode="nearest")[0] > 0.5
        else:
            masks = masks.new_zeros((0, *size))
        logits = F.interpolate(logits[None], size=size, mode="bilinear", align_corners=False)[0]
    return PanopticOutput(
        boxes=boxes,
        scores=detections.scores,
        classes=detections.classes,
        masks=masks,
        semantic_logits=logits,
    )


@torch.no_grad()
def predict_video(
    model: PanopticCascadeMaskTrack,
    frames: Iterable[torch.Tensor],
    space: ClassSpace,
    tracker: TrackerConfig,
    input_size: tuple[int, int] | None = None,
) -> Iterator[PanopticFrame]:
    """Panoptic pseudo-class frames with track ids of one video, from RGB frames (3, H, W)."""
    model.eval()
    device = next(model.parameters()).device
    memory = TrackMemory(tracker)
    for image in frames:
        size = (int(image.shape[-2]), int(image.shape[-1]))
        network_input = resize_image(image.float(), input_size or size)
        detections = model.detect(network_input[None].to(device))[0]
        output = to_frame_size(detections, size)
        fused = fuse_instances(output, model.config)
        track_ids = associate_shown(detections, [index for index, _ in fused], memory)
        frame = combine_panoptic(output, model.config, track_ids.tolist(), fused)
        yield space.panoptic_to_pseudo(frame)


def associate_shown(
    detections: FrameDetections, shown: Sequence[int], memory: TrackMemory
) -> Tensor:
    """Track ids ``(N,)`` of one frame's detections; 0 for those panoptic fusion drops.

    Only the detections that fusion keeps (``shown``, the indices :func:`fuse_instances`
    returns) are associated: a duplicate that fusion drops must not continue, and so steal,
    the track of the detection that is shown.
    """
    index = torch.tensor(list(shown), dtype=torch.int64, device=detections.scores.device)
    shown_ids = memory.associate(
        detections.boxes[index],
        detections.scores[index],
        detections.classes[index],
        detections.embeddings[index],
    )
    track_ids = torch.zeros(len(detections.scores), dtype=torch.int64)
    track_ids[index.cpu()] = shown_ids
    return track_ids
