"""Greedy NMS and pairwise IoU with torchvision's semantics (boxes x1, y1, x2, y2; no +1)."""

import torch
from torch import Tensor


def box_area(boxes: Tensor) -> Tensor:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    area1, area2 = box_area(boxes1), box_area(boxes2)
    top_left = torch.max(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = torch.min(boxes1[:, None, 2:], boxes2[None, :, 2:])
    wh = (bottom_right - top_left).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return inter / (area1[:, None] + area2[None, :] - inter)


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Indices kept, by decreasing score: a box goes when its IoU with a kept one is > threshold."""
    order = torch.argsort(scores, descending=True, stable=True)
    iou = box_iou(boxes, boxes)
    suppressed = torch.zeros(len(boxes), dtype=torch.bool)
    keep = []
    for index in order.tolist():
        if suppressed[index]:
            continue
        keep.append(index)
        suppressed |= iou[index] > iou_threshold
    return torch.tensor(keep, dtype=torch.int64)


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """NMS within each category of ``idxs``; kept indices by decreasing score."""
    keep = [
        torch.nonzero(idxs == category).flatten()[
            nms(boxes[idxs == category], scores[idxs == category], iou_threshold)
        ]
        for category in torch.unique(idxs)
    ]
    if not keep:
        return torch.empty(0, dtype=torch.int64)
    kept = torch.cat(keep)
    return kept[torch.argsort(scores[kept], descending=True, stable=True)]
