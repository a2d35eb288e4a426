"""Training losses of the Panoptic Cascade MaskTrack R-CNN with Video DropLoss (paper Sec. 3.2).

Everything here is a pure function of tensors so that it can be tested on hand-made cases:

* anchor labelling and balanced sampling of the RPN (Ren et al., 2015; detectron2's ``Matcher``
  and ``subsample_labels``);
* proposal labelling per cascade stage (Cai & Vasconcelos, 2018) and the Fast R-CNN
  classification / class-agnostic box losses;
* :func:`drop_loss_weights`, the per-RoI indicator ``1(IoU_max > τ_IoU)`` of Video DropLoss
  (paper Eq. 3; DropLoss of CutLER, Wang et al., 2023): RoIs that overlap no pseudo-instance by
  more than ``τ_IoU`` contribute nothing, so the model may detect objects the sparse pseudo-labels
  miss (e.g. static cars);
* Mask R-CNN mask targets (GT masks RoIAligned into each RoI) and the per-pixel BCE mask loss;
* the Panoptic FPN semantic cross-entropy and MaskTrack R-CNN's track-target relabelling.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

from vpsbench.models.ops import BoxCoder, box_iou, roi_align
from vpsbench_methods.videocups.model.targets import IGNORE


@dataclass(frozen=True)
class LossConfig:
    """Every training-loss hyper-parameter; defaults are detectron2's / the paper's."""

    # RPN (detectron2 MODEL.RPN.*): IoU >= 0.7 positive, < 0.3 negative, 256 anchors, half positive.
    rpn_positive_iou: float = 0.7
    rpn_negative_iou: float = 0.3
    rpn_allow_low_quality_matches: bool = True  # each GT's best anchor(s) are positive too
    rpn_batch_size_per_image: int = 256
    rpn_positive_fraction: float = 0.5
    rpn_smooth_l1_beta: float = 0.0  # 0 = L1 (detectron2's default)
    rpn_pre_nms_topk_train: int = 2000  # per FPN level
    rpn_post_nms_topk_train: int = 4000  # per image (CUPS POST_NMS_TOPK_TRAIN; detectron2: 1000)
    # Cascade RoI heads: 512 RoIs at stage 0 (a quarter foreground), one IoU per stage.
    roi_batch_size_per_image: int = 512
    roi_positive_fraction: float = 0.25
    cascade_foreground_ious: tuple[float, ...] = (0.5, 0.6, 0.7)
    roi_smooth_l1_beta: float = 0.0
    # Video DropLoss (paper Eq. 3, τ_IoU = 0.5).
    drop_loss: bool = True
    drop_loss_iou: float = 0.5
    # Loss weights (Panoptic FPN's configs weight the semantic loss 0.5).
    rpn_loss_weight: float = 1.0
    box_loss_weight: float = 1.0
    mask_loss_weight: float = 1.0
    sem_loss_weight: float = 0.5
    track_loss_weight: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.rpn_negative_iou <= self.rpn_positive_iou <= 1.0:
            raise ValueError("need 0 <= rpn_negative_iou <= rpn_positive_iou <= 1")
        fractions = (self.rpn_positive_fraction, self.roi_positive_fraction)
        if not all(0.0 <= fraction <= 1.0 for fraction in fractions):
            raise ValueError("positive fractions must be in [0, 1]")
        if self.rpn_batch_size_per_image < 1 or self.roi_batch_size_per_image < 1:
            raise ValueError("batch sizes per image must be >= 1")
        if self.rpn_pre_nms_topk_train < 1 or self.rpn_post_nms_topk_train < 1:
            raise ValueError("RPN top-k values must be >= 1")
        if not self.cascade_foreground_ious:
            raise ValueError("cascade_foreground_ious needs one IoU per cascade stage")


def smooth_l1(input: Tensor, target: Tensor, beta: float) -> Tensor:
    """Element-wise smooth-L1 (Girshick, 2015); ``beta < 1e-5`` is plain L1 as in detectron2."""
    diff = (input - target).abs()
    if beta < 1e-5:
        return diff
    return torch.where(diff < beta, 0.5 * diff * diff / beta, diff - 0.5 * beta)


def match_boxes(boxes: Tensor, gt_boxes: Tensor) -> tuple[Tensor, Tensor]:
    """Each box's best GT: max IoU (N,) and its index (N,); IoU 0 and index 0 without GT."""
    if gt_boxes.shape[0] == 0:
        zeros = boxes.new_zeros((boxes.shape[0],))
        return zeros, torch.zeros(boxes.shape[0], dtype=torch.int64, device=boxes.device)
    max_iou, matched = box_iou(gt_boxes, boxes).max(dim=0)
    return max_iou, matched


def label_anchors(
    anchors: Tensor,
    gt_boxes: Tensor,
    positive_iou: float,
    negative_iou: float,
    allow_low_quality_matches: bool = True,
) -> tuple[Tensor, Tensor]:
    """RPN anchor labels (1 positive, 0 negative, −1 ignored) and matched GT index (A,)."""
    # IoU >= positive_iou → 1, < negative_iou → 0, in between → −1; with low-quality matches every
    # anchor whose IoU equals a GT's best (non-zero) IoU is positive too (Ren et al., 2015).
    max_iou, matched = match_boxes(anchors, gt_boxes)
    labels = torch.full((anchors.shape[0],), -1, dtype=torch.int64, device=anchors.device)
    labels[max_iou < negative_iou] = 0
    labels[max_iou >= positive_iou] = 1
    if allow_low_quality_matches and gt_boxes.shape[0] > 0:
        iou = box_iou(gt_boxes, anchors)
        best = iou.max(dim=1, keepdim=True).values
        is_best = (iou == best) & (best > 0)
        labels[is_best.any(dim=0)] = 1
    return labels, matched


def subsample_labels(
    positive: Tensor,
    negative: Tensor,
    num_samples: int,
    positive_fraction: float,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Random balanced sample: at most ``num_samples·fraction`` positives, the rest negatives."""
    positive_index = torch.nonzero(positive).flatten()
    negative_index = torch.nonzero(negative).flatten()
    num_positive = min(positive_index.numel(), int(num_samples * positive_fraction))
    num_negative = min(negative_index.numel(), num_samples - num_positive)
    # randperm on the CPU so that a CPU generator drives sampling wherever the tensors live.
    chosen_positive = torch.randperm(positive_index.numel(), generator=generator)[:num_positive]
    chosen_negative = torch.randperm(negative_index.numel(), generator=generator)[:num_negative]
    return (
        positive_index[chosen_positive.to(positive_index.device)],
        negative_index[chosen_negative.to(negative_index.device)],
    )


def label_proposals(
    proposals: Tensor,
    gt_boxes: Tensor,
    gt_classes: Tensor,
    foreground_iou: float,
    num_classes: int,
) -> tuple[Tensor, Tensor, Tensor]:
    """Stage labels of RoIs: class (R,) (``num_classes`` = background), matched GT, max IoU."""
    max_iou, matched = match_boxes(proposals, gt_boxes)
    if gt_boxes.shape[0] == 0:
        classes = torch.full_like(matched, num_classes)
    else:
        classes = torch.where(
            max_iou >= foreground_iou, gt_classes[matched], torch.full_like(matched, num_classes)
        )
    return classes, matched, max_iou


def sample_proposals(
    classes: Tensor,
    num_classes: int,
    batch_size: int,
    positive_fraction: float,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Stage-0 RoI sample (Fast R-CNN): indices of sampled foreground, then background RoIs."""
    foreground = classes != num_classes
    positive, negative = subsample_labels(
        foreground, ~foreground, batch_size, positive_fraction, generator
    )
    return torch.cat((positive, negative))


def drop_loss_weights(max_iou: Tensor, threshold: float) -> Tensor:
    """Video DropLoss indicator ``1(IoU_max > τ_IoU)`` per RoI (paper Eq. 3) as float weights."""
    return (max_iou > threshold).to(torch.float32)


def _normaliser(weights: Tensor) -> Tensor:
    """Number of contributing RoIs, at least 1 (so that an all-dropped batch gives 0, not NaN)."""
    return weights.sum().clamp(min=1.0)


def fast_rcnn_losses(
    logits: Tensor,
    deltas: Tensor,
    proposals: Tensor,
    classes: Tensor,
    matched_gt_boxes: Tensor,
    weights: Tensor,
    coder: BoxCoder,
    beta: float,
) -> tuple[Tensor, Tensor]:
    """Weighted cross-entropy over K+1 classes and smooth-L1 on foreground deltas (R-CNN).

    Video DropLoss weighs the classification term only: CUPS' (and CutLER's) ``FastRCNN
    OutputLayers.losses`` multiplies the per-RoI cross-entropy by the DropLoss weights and leaves
    the box regression of every foreground RoI as detectron2 computes it.
    """
    # Both are divided by the number of sampled RoIs R, kept or dropped: detectron2's box-loss
    # normalisation, and CutLER's DropLoss, whose weighted cross-entropy is a mean over all RoIs.
    # A dropped RoI thus lowers the loss instead of raising its neighbours' weight.
    num_classes = logits.shape[1] - 1
    normaliser = max(logits.shape[0], 1)
    loss_cls = (F.cross_entropy(logits, classes, reduction="none") * weights).sum() / normaliser
    foreground = torch.nonzero(classes != num_classes).flatten()
    targets = coder.encode(proposals[foreground], matched_gt_boxes[foreground])
    per_box = smooth_l1(deltas[foreground], targets, beta).sum(dim=1)
    loss_box = per_box.sum() / normaliser
    return loss_cls, loss_box


def rpn_losses(
    objectness: Sequence[Tensor],
    deltas: Sequence[Tensor],
    anchors: Tensor,
    gt_boxes: Sequence[Tensor],
    coder: BoxCoder,
    config: LossConfig,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """RPN objectness BCE and box regression of a batch, normalised by the sampled anchors."""
    # objectness[i]: (A,) logits of image i; deltas[i]: (A, 4); anchors (A, 4) shared.
    cls_terms: list[Tensor] = []
    box_terms: list[Tensor] = []
    num_sampled = 0
    for logits, image_deltas, boxes in zip(objectness, deltas, gt_boxes, strict=True):
        labels, matched = label_anchors(
            anchors,
            boxes,
            config.rpn_positive_iou,
            config.rpn_negative_iou,
            config.rpn_allow_low_quality_matches,
        )
        positive, negative = subsample_labels(
            labels == 1,
            labels == 0,
            config.rpn_batch_size_per_image,
            config.rpn_positive_fraction,
            generator,
        )
        sampled = torch.cat((positive, negative))
        num_sampled += sampled.numel()
        targets = labels[sampled].to(logits.dtype)
        cls_terms.append(
            F.binary_cross_entropy_with_logits(logits[sampled], targets, reduction="sum")
        )
        box_targets = coder.encode(anchors[positive], boxes[matched[positive]])
        box_terms.append(
            smooth_l1(image_deltas[positive], box_targets, config.rpn_smooth_l1_beta).sum()
        )
    normaliser = max(num_sampled, 1)
    return torch.stack(cls_terms).sum() / normaliser, torch.stack(box_terms).sum() / normaliser


def mask_targets(gt_masks: Tensor, matched: Tensor, boxes: Tensor, size: int) -> Tensor:
    """Mask R-CNN targets (R, size, size): each RoI's GT mask RoIAligned into it, ``>= 0.5``."""
    # RoIAlignV2 (aligned, adaptive sampling) of the binary mask, as detectron2's
    # BitMasks.crop_and_resize.
    if boxes.shape[0] == 0:
        return boxes.new_zeros((0, size, size))
    rois = torch.cat((matched[:, None].to(boxes.dtype), boxes), dim=1)
    resampled = roi_align(
        gt_masks[:, None].to(boxes.dtype), rois, (size, size), 1.0, 0, aligned=True
    )[:, 0]
    return (resampled >= 0.5).to(boxes.dtype)


def mask_loss(mask_logits: Tensor, classes: Tensor, targets: Tensor, weights: Tensor) -> Tensor:
    """Per-pixel BCE of each RoI's GT-class mask channel (He et al., 2017), DropLoss-weighted."""
    if mask_logits.shape[1] == 1:
        selected = mask_logits[:, 0]
    else:
        rows = torch.arange(mask_logits.shape[0], device=mask_logits.device)
        selected = mask_logits[rows, classes]
    per_roi = F.binary_cross_entropy_with_logits(selected, targets, reduction="none").mean(
        dim=(1, 2)
    )
    return (per_roi * weights).sum() / _normaliser(weights)


def semantic_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Cross-entropy of semantic logits (B, C, H, W) vs targets (B, H, W), void ignored."""
    total = F.cross_entropy(logits, targets, ignore_index=IGNORE, reduction="sum")
    return total / (targets != IGNORE).sum().clamp(min=1)


def reference_track_ids(key_track_ids: Tensor, reference_ids: Tensor) -> Tensor:
    """Key RoIs' track ids, 0 ("new object", MaskTrack R-CNN) where absent from the reference."""
    present = (key_track_ids[:, None] == reference_ids[None, :]).any(dim=1)
    return torch.where(present, key_track_ids, torch.zeros_like(key_track_ids))
