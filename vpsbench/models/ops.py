"""Detection operators in plain PyTorch: box IoU, NMS, box coding, anchors, RoIAlign, mask pasting.

torchvision's compiled operators are not available on the CPU wheel we pin, so every operator a
Mask R-CNN (He et al., 2017) needs at inference is written here from its published definition:

* :func:`roi_align` — RoIAlign (He et al., 2017) with detectron2's ``ROIAlignV2`` conventions
  (``aligned=True``: half-pixel offset; ``sampling_ratio=0``: ``ceil(roi_size / output_size)``
  samples per bin), evaluated with :func:`torch.nn.functional.grid_sample`;
* :func:`nms` / :func:`batched_nms` — greedy non-maximum suppression (a box is dropped when its
  IoU with a kept, higher-scoring box is ``> iou_threshold``), per class for the batched form;
* :class:`BoxCoder` — the R-CNN box parametrisation (Girshick et al., 2014) with per-coordinate
  weights and a clamp on the log-size deltas, as in Cascade R-CNN (Cai & Vasconcelos, 2018);
* :func:`cell_anchors` / :func:`grid_anchors` — FPN anchors (Lin et al., 2017), one size per level
  and three aspect ratios, enumerated location-major then (size, ratio);
* :func:`assign_boxes_to_levels` / :func:`multilevel_roi_align` — the FPN RoI-to-level rule
  ``k = floor(k0 + log2(sqrt(wh) / 224))`` (Lin et al., 2017, Eq. 1);
* :func:`paste_masks_in_image` — bilinear resampling of fixed-size mask probabilities into boxes.

Boxes are ``(x1, y1, x2, y2)`` in continuous pixel coordinates (pixel ``i`` covers ``[i, i+1)``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

DEFAULT_SCALE_CLAMP = math.log(1000.0 / 16)
"""Largest log-size delta applied when decoding boxes (detectron2's ``_DEFAULT_SCALE_CLAMP``)."""

_MAX_SAMPLES_PER_CHUNK = 1 << 24  # bounds RoIAlign's intermediate tensor (elements)


def box_area(boxes: Tensor) -> Tensor:
    """Area ``(x2 - x1) * (y2 - y1)`` of each box, shape (N,)."""
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise intersection over union (N, M) of two box sets, vectorised."""
    area1 = box_area(boxes1)
    area2 = box_area(boxes2)
    top_left = torch.maximum(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = torch.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    size = (bottom_right - top_left).clamp(min=0)
    intersection = size[..., 0] * size[..., 1]
    return intersection / (area1[:, None] + area2[None, :] - intersection)


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy NMS: indices of kept boxes by decreasing score (ties keep input order)."""
    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.int64, device=boxes.device)
    order = torch.argsort(scores, descending=True, stable=True)
    overlaps = (box_iou(boxes[order], boxes[order]) > iou_threshold).cpu().numpy()
    suppressed = np.zeros(order.shape[0], dtype=bool)
    kept: list[int] = []
    for rank in range(order.shape[0]):
        if suppressed[rank]:
            continue
        kept.append(rank)
        suppressed |= overlaps[rank]
    return order[torch.as_tensor(kept, dtype=torch.int64, device=order.device)]


def batched_nms(boxes: Tensor, scores: Tensor, groups: Tensor, iou_threshold: float) -> Tensor:
    """NMS within each group (class or level) independently; kept indices by decreasing score."""
    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.int64, device=boxes.device)
    kept = [
        members[nms(boxes[members], scores[members], iou_threshold)]
        for members in (torch.nonzero(groups == group).flatten() for group in torch.unique(groups))
    ]
    keep = torch.cat(kept)
    return keep[torch.argsort(scores[keep], descending=True, stable=True)]


def clip_boxes(boxes: Tensor, height: int, width: int) -> Tensor:
    """Clamp ``x`` to ``[0, width]`` and ``y`` to ``[0, height]`` (a new tensor)."""
    x = boxes[:, 0::2].clamp(min=0, max=width)
    y = boxes[:, 1::2].clamp(min=0, max=height)
    return torch.stack((x[:, 0], y[:, 0], x[:, 1], y[:, 1]), dim=1)


def nonempty_boxes(boxes: Tensor, threshold: float = 0.0) -> Tensor:
    """Mask of boxes whose width and height both exceed ``threshold``."""
    widths = boxes[:, 2] - boxes[:, 0]
    heights = boxes[:, 3] - boxes[:, 1]
    return (widths > threshold) & (heights > threshold)


class BoxCoder:
    """R-CNN box deltas ``(dx, dy, dw, dh)`` scaled by ``weights`` (Girshick et al., 2014)."""

    def __init__(
        self,
        weights: tuple[float, float, float, float],
        scale_clamp: float = DEFAULT_SCALE_CLAMP,
    ) -> None:
        self.weights = weights
        self.scale_clamp = scale_clamp

    def encode(self, sources: Tensor, targets: Tensor) -> Tensor:
        """Deltas (N, 4) that turn each source box into its target box."""
        weight_x, weight_y, weight_w, weight_h = self.weights
        source_widths = sources[:, 2] - sources[:, 0]
        source_heights = sources[:, 3] - sources[:, 1]
        source_x = sources[:, 0] + 0.5 * source_widths
        source_y = sources[:, 1] + 0.5 * source_heights
        target_widths = targets[:, 2] - targets[:, 0]
        target_heights = targets[:, 3] - targets[:, 1]
        target_x = targets[:, 0] + 0.5 * target_widths
        target_y = targets[:, 1] + 0.5 * target_heights
        return torch.stack(
            (
                weight_x * (target_x - source_x) / source_widths,
                weight_y * (target_y - source_y) / source_heights,
                weight_w * torch.log(target_widths / source_widths),
                weight_h * torch.log(target_heights / source_heights),
            ),
            dim=1,
        )

    def decode(self, deltas: Tensor, boxes: Tensor) -> Tensor:
        """Apply deltas (N, 4k) to boxes (N, 4): boxes (N, 4k), log-size deltas clamped."""
        deltas = deltas.float()
        boxes = boxes.to(deltas.dtype)
        weight_x, weight_y, weight_w, weight_h = self.weights
        widths = (boxes[:, 2] - boxes[:, 0])[:, None]
        heights = (boxes[:, 3] - boxes[:, 1])[:, None]
        center_x = boxes[:, 0, None] + 0.5 * widths
        center_y = boxes[:, 1, None] + 0.5 * heights
        dx = deltas[:, 0::4] / weight_x
        dy = deltas[:, 1::4] / weight_y
        dw = (deltas[:, 2::4] / weight_w).clamp(max=self.scale_clamp)
        dh = (deltas[:, 3::4] / weight_h).clamp(max=self.scale_clamp)
        predicted_x = dx * widths + center_x
        predicted_y = dy * heights + center_y
        predicted_w = torch.exp(dw) * widths
        predicted_h = torch.exp(dh) * heights
        decoded = torch.stack(
            (
                predicted_x - 0.5 * predicted_w,
                predicted_y - 0.5 * predicted_h,
                predicted_x + 0.5 * predicted_w,
                predicted_y + 0.5 * predicted_h,
            ),
            dim=2,
        )
        return decoded.reshape(deltas.shape)


def cell_anchors(sizes: Sequence[float], aspect_ratios: Sequence[float]) -> Tensor:
    """Anchors (len(sizes)·len(ratios), 4) centred on 0; ratio = height / width, area = size²."""
    anchors = []
    for size in sizes:
        area = float(size) ** 2
        for ratio in aspect_ratios:
            width = math.sqrt(area / ratio)
            height = ratio * width
            anchors.append((-width / 2, -height / 2, width / 2, height / 2))
    return torch.tensor(anchors, dtype=torch.float32)


def grid_anchors(
    cell: Tensor, grid_height: int, grid_width: int, stride: int, offset: float = 0.0
) -> Tensor:
    """Anchors (H·W·A, 4) of one level: row-major locations, then the A cell anchors each."""
    shifts_x = torch.arange(grid_width, dtype=torch.float32) * stride + offset * stride
    shifts_y = torch.arange(grid_height, dtype=torch.float32) * stride + offset * stride
    shift_y, shift_x = torch.meshgrid(shifts_y, shifts_x, indexing="ij")
    shift_x = shift_x.reshape(-1)
    shift_y = shift_y.reshape(-1)
    shifts = torch.stack((shift_x, shift_y, shift_x, shift_y), dim=1)
    return (shifts[:, None, :] + cell.to(shifts.device)[None, :, :]).reshape(-1, 4)


def roi_align(
    features: Tensor,
    rois: Tensor,
    output_size: tuple[int, int],
    spatial_scale: float,
    sampling_ratio: int,
    aligned: bool,
) -> Tensor:
    """RoIAlign (He et al., 2017) of rois (K, 5) = (batch, box) on (N, C, H, W) → (K, C, h, w)."""
    # Each bin averages a gh × gw grid of bilinear samples (``sampling_ratio`` per axis, or
    # ceil(roi_size / output_size) when it is <= 0). Samples more than one pixel outside the map
    # count as 0, samples within it read the clamped border; ``aligned`` shifts boxes by -0.5 px
    # so that pixel centres sit on integer coordinates (detectron2's ROIAlignV2).
    num_rois = rois.shape[0]
    channels = features.shape[1]
    out_h, out_w = output_size
    output = features.new_zeros((num_rois, channels, out_h, out_w))
    if num_rois == 0:
        return output
    rois = rois.to(features.dtype)
    offset = 0.5 if aligned else 0.0
    x1 = rois[:, 1] * spatial_scale - offset
    y1 = rois[:, 2] * spatial_scale - offset
    roi_w = rois[:, 3] * spatial_scale - offset - x1
    roi_h = rois[:, 4] * spatial_scale - offset - y1
    if not aligned:
        roi_w = roi_w.clamp(min=1.0)
        roi_h = roi_h.clamp(min=1.0)
    if sampling_ratio > 0:
        grid_h = torch.full((num_rois,), sampling_ratio, dtype=torch.int64)
        grid_w = grid_h.clone()
    else:
        grid_h = torch.ceil(roi_h / out_h).to(torch.int64).cpu()
        grid_w = torch.ceil(roi_w / out_w).to(torch.int64).cpu()
    batch_index = rois[:, 0].to(torch.int64).cpu()
    groups = torch.stack((batch_index, grid_h, grid_w), dim=1)
    for key in torch.unique(groups, dim=0).tolist():
        image, samples_h, samples_w = (int(value) for value in key)
        if samples_h <= 0 or samples_w <= 0:
            continue  # an empty RoI has no samples: its bins stay 0
        members = torch.nonzero((groups == torch.tensor(key)).all(dim=1)).flatten()
        per_roi = channels * out_h * samples_h * out_w * samples_w
        chunk = max(1, _MAX_SAMPLES_PER_CHUNK // per_roi)
        for start in range(0, members.shape[0], chunk):
            index = members[start : start + chunk].to(features.device)
            output[index] = _roi_align_group(
                features[image],
                x1[index],
                y1[index],
                roi_w[index],
                roi_h[index],
                output_size,
                (samples_h, samples_w),
            )
    return output


def _roi_align_group(
    feature: Tensor,
    x1: Tensor,
    y1: Tensor,
    roi_w: Tensor,
    roi_h: Tensor,
    output_size: tuple[int, int],
    samples: tuple[int, int],
) -> Tensor:
    """RoIAlign of RoIs on one feature map (C, H, W) sharing one sampling grid size."""
    channels, height, width = feature.shape
    out_h, out_w = output_size
    samples_h, samples_w = samples
    num = x1.shape[0]
    steps_y = (
        torch.arange(out_h * samples_h, dtype=feature.dtype, device=feature.device) + 0.5
    ) / (samples_h)
    steps_x = (
        torch.arange(out_w * samples_w, dtype=feature.dtype, device=feature.device) + 0.5
    ) / (samples_w)
    ys = y1[:, None] + steps_y[None, :] * (roi_h / out_h)[:, None]  # (num, out_h*samples_h)
    xs = x1[:, None] + steps_x[None, :] * (roi_w / out_w)[:, None]
    valid = ((ys >= -1.0) & (ys <= height))[:, :, None] & ((xs >= -1.0) & (xs <= width))[:, None, :]
    grid_y = (2.0 * ys + 1.0) / height - 1.0
    grid_x = (2.0 * xs + 1.0) / width - 1.0
    grid = torch.stack(
        (
            grid_x[:, None, :].expand(num, ys.shape[1], xs.shape[1]),
            grid_y[:, :, None].expand(num, ys.shape[1], xs.shape[1]),
        ),
        dim=3,
    ).reshape(1, num * ys.shape[1], xs.shape[1], 2)
    sampled = F.grid_sample(
        feature[None], grid, mode="bilinear", padding_mode="border", align_corners=False
    )[0].reshape(channels, num, ys.shape[1], xs.shape[1])
    if not bool(valid.all()):
        sampled = sampled * valid[None].to(sampled.dtype)
    sampled = sampled.reshape(channels, num, out_h, samples_h, out_w, samples_w)
    return sampled.mean(dim=(3, 5)).permute(1, 0, 2, 3)


def assign_boxes_to_levels(
    boxes: Tensor,
    min_level: int,
    max_level: int,
    canonical_box_size: float = 224.0,
    canonical_level: int = 4,
) -> Tensor:
    """FPN level index (0 = ``min_level``) of each box (Lin et al., 2017, Eq. 1)."""
    sizes = torch.sqrt(box_area(boxes))
    levels = torch.floor(canonical_level + torch.log2(sizes / canonical_box_size + 1e-8))
    return levels.clamp(min=min_level, max=max_level).to(torch.int64) - min_level


def multilevel_roi_align(
    features: Sequence[Tensor],
    strides: Sequence[int],
    boxes: Sequence[Tensor],
    output_size: tuple[int, int],
    sampling_ratio: int,
    canonical_box_size: float = 224.0,
    canonical_level: int = 4,
) -> Tensor:
    """RoIAlignV2 of per-image boxes over FPN levels (Lin et al., 2017): (ΣR, C, h, w)."""
    rois = torch.cat(
        [
            torch.cat((torch.full_like(image_boxes[:, :1], index), image_boxes), dim=1)
            for index, image_boxes in enumerate(boxes)
        ]
    )
    channels = features[0].shape[1]
    pooled = features[0].new_zeros((rois.shape[0], channels, *output_size))
    if rois.shape[0] == 0:
        return pooled
    min_level = round(math.log2(strides[0]))
    max_level = round(math.log2(strides[-1]))
    levels = assign_boxes_to_levels(
        rois[:, 1:], min_level, max_level, canonical_box_size, canonical_level
    )
    for level, (feature, stride) in enumerate(zip(features, strides, strict=True)):
        members = torch.nonzero(levels == level).flatten()
        if members.numel():
            pooled[members] = roi_align(
                feature, rois[members], output_size, 1.0 / stride, sampling_ratio, aligned=True
            )
    return pooled


def paste_masks_in_image(
    masks: Tensor, boxes: Tensor, image_size: tuple[int, int], threshold: float = 0.5
) -> Tensor:
    """Paste mask probabilities (N, M, M) into their boxes on an (H, W) canvas (He et al., 2017)."""
    # Pixel centre (x + 0.5, y + 0.5) reads the mask bilinearly at its relative position in the
    # box (zero outside it) and is foreground when the value is >= threshold: bool (N, H, W).
    height, width = image_size
    result = torch.zeros((masks.shape[0], height, width), dtype=torch.bool, device=masks.device)
    for index in range(masks.shape[0]):
        x0, y0, x1, y1 = (float(value) for value in boxes[index])
        left = max(math.floor(x0) - 1, 0)
        top = max(math.floor(y0) - 1, 0)
        right = min(math.ceil(x1) + 1, width)
        bottom = min(math.ceil(y1) + 1, height)
        if right <= left or bottom <= top or x1 <= x0 or y1 <= y0:
            continue
        pixel_y = torch.arange(top, bottom, dtype=torch.float32, device=masks.device) + 0.5
        pixel_x = torch.arange(left, right, dtype=torch.float32, device=masks.device) + 0.5
        grid_y = (pixel_y - y0) / (y1 - y0) * 2 - 1
        grid_x = (pixel_x - x0) / (x1 - x0) * 2 - 1
        grid = torch.stack(
            (
                grid_x[None, :].expand(grid_y.shape[0], -1),
                grid_y[:, None].expand(-1, grid_x.shape[0]),
            ),
            dim=2,
        )
        window = F.grid_sample(
            masks[index][None, None].float(), grid[None], mode="bilinear", align_corners=False
        )[0, 0]
        result[index, top:bottom, left:right] = window >= threshold
    return result
