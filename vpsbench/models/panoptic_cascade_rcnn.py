"""Panoptic Cascade Mask R-CNN for inference, as used by U2Seg and CUPS (VideoCUPS paper, Sec. 4).

The network is a Panoptic FPN (Kirillov et al., 2019) whose instance branch is a Cascade Mask
R-CNN (Cai & Vasconcelos, 2018; He et al., 2017) on a ResNet-50 FPN (Lin et al., 2017):

1. **RPN** (``proposal_generator.rpn_head.{conv, objectness_logits, anchor_deltas}``): per FPN
   level ``p2..p6`` keep the ``rpn_pre_nms_topk_test`` best anchors, decode them with weights
   (1, 1, 1, 1), clip, drop empty boxes, NMS per level, keep ``rpn_post_nms_topk_test``.
2. **Cascade box heads** (``roi_heads.box_head.{i}.fc{1,2}``,
   ``roi_heads.box_predictor.{i}.{cls_score, bbox_pred}``, i = 0, 1, 2): each stage pools 7×7
   RoIAlignV2 features of the previous stage's boxes, predicts class logits (last = background)
   and one class-agnostic box delta, decoded with weights (10, 10, 5, 5), (20, 20, 10, 10),
   (30, 30, 15, 15). Scores are the mean of the three stages' softmax; boxes are the last stage's.
   Detections: score ``> roi_score_thresh_test``, NMS per class, at most ``detections_per_image``.
3. **Mask head** (``roi_heads.mask_head.{mask_fcn1..4, deconv, predictor}``): 14×14 RoIAlignV2
   features → 4 × (3×3 conv, ReLU) → 2×2/2 transposed conv, ReLU → 1×1 conv; the sigmoid of the
   detected class' channel is pasted into the box and thresholded at ``mask_threshold``.
4. **Semantic head** (``sem_seg_head.p{2..5}``, ``sem_seg_head.predictor``): per level
   ``max(1, log2(stride / 4))`` × (3×3 conv, GN, ReLU, ×2 bilinear up while above stride 4),
   summed, 1×1 conv to ``1 + num_stuff_classes`` logits, ×4 bilinear up. Channel 0 is the single
   "thing" class of Panoptic FPN; channel ``1 + s`` is stuff class ``s``.
5. **Panoptic fusion** (:func:`combine_panoptic`, Kirillov et al., 2019, as in detectron2's
   ``combine_semantic_and_instance_outputs``): instances by decreasing score while the score is
   ``>= combine_instances_score_thresh``; an instance whose mask is more than
   ``combine_overlap_thresh`` covered by earlier ones is dropped, otherwise it takes its free
   pixels; then each stuff class takes its free argmax pixels if they are at least
   ``combine_stuff_area_thresh`` pixels (4096, CUPS' and detectron2's default). Pixels left
   over are void.

**Pseudo-class id layout** of the returned :class:`~vpsbench.video.PanopticFrame`: stuff first,
then things — stuff class ``s`` is id ``s`` (0 .. S−1), thing class ``t`` is id ``S + t``; void is
−1 (vpsbench's convention). Instance ids are 1..N in fusion order (decreasing score), 0 on stuff
and void pixels.

**Input**: images are RGB, ``uint8`` or float in 0..255. The model flips to BGR when
``input_format == "BGR"`` (detectron2's default and MSRA weights), scales by ``pixel_scale``
(CUPS: ``image / 255``), then subtracts ``pixel_mean`` and divides by ``pixel_std``, both given
in the network's channel order. U2Seg and CUPS train with RGB input (``INPUT.FORMAT: RGB`` /
torchvision images).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal, Self

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from vpsbench.models.backbone import RESNET50_BLOCKS, NormConv2d, NormName, ResNet, ResNetFPN
from vpsbench.models.ops import (
    DEFAULT_SCALE_CLAMP,
    BoxCoder,
    batched_nms,
    cell_anchors,
    clip_boxes,
    grid_anchors,
    multilevel_roi_align,
    nonempty_boxes,
    paste_masks_in_image,
)
from vpsbench.models.resize import resize_frame, shortest_edge_size
from vpsbench.video import PanopticFrame

ROI_FEATURES = ("p2", "p3", "p4", "p5")
ROI_STRIDES = (4, 8, 16, 32)
RPN_FEATURES = ("p2", "p3", "p4", "p5", "p6")
RPN_STRIDES = (4, 8, 16, 32, 64)
VOID_CLASS = -1
CUPS_NUM_PSEUDO_CLASSES = 27


@dataclass(frozen=True)
class PanopticCascadeConfig:
    """Every inference hyper-parameter; defaults are detectron2's (``config/defaults.py``)."""

    num_thing_classes: int
    num_stuff_classes: int
    # Input (detectron2: MSRA weights, BGR, mean-only normalisation, shortest edge 800).
    pixel_mean: tuple[float, float, float] = (103.530, 116.280, 123.675)
    pixel_std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    pixel_scale: float = 1.0
    input_format: Literal["BGR", "RGB"] = "BGR"
    test_min_size: int = 800
    test_max_size: int = 1333
    # Backbone: ResNet-50 + FPN.
    resnet_blocks: tuple[int, ...] = RESNET50_BLOCKS
    stride_in_1x1: bool = True
    backbone_norm: NormName = "FrozenBN"
    fpn_out_channels: int = 256
    fpn_norm: NormName = ""
    width_multiplier: float = 1.0  # scales every channel count (ResNet, FPN, heads); tests: 0.25
    # Anchors and RPN (Base-RCNN-FPN: one size per level, 1000 proposals before/after NMS).
    anchor_sizes: tuple[float, ...] = (32.0, 64.0, 128.0, 256.0, 512.0)
    anchor_aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    anchor_offset: float = 0.0
    rpn_bbox_reg_weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    rpn_pre_nms_topk_test: int = 1000
    rpn_post_nms_topk_test: int = 1000
    rpn_nms_thresh: float = 0.7
    rpn_min_box_size: float = 0.0
    # Cascade box heads (class-agnostic regression, one weight tuple per stage).
    box_pooler_resolution: int = 7
    box_pooler_sampling_ratio: int = 0
    box_num_conv: int = 0
    box_conv_dim: int = 256
    box_num_fc: int = 2
    box_fc_dim: int = 1024
    box_head_norm: NormName = ""
    cascade_bbox_reg_weights: tuple[tuple[float, float, float, float], ...] = (
        (10.0, 10.0, 5.0, 5.0),
        (20.0, 20.0, 10.0, 10.0),
        (30.0, 30.0, 15.0, 15.0),
    )
    box_scale_clamp: float = DEFAULT_SCALE_CLAMP
    roi_score_thresh_test: float = 0.05
    roi_nms_thresh_test: float = 0.5
    detections_per_image: int = 100
    # Mask head.
    mask_pooler_resolution: int = 14
    mask_pooler_sampling_ratio: int = 0
    mask_num_conv: int = 4
    mask_conv_dim: int = 256
    mask_head_norm: NormName = ""
    cls_agnostic_mask: bool = False
    mask_threshold: float = 0.5
    # Semantic FPN head.
    sem_seg_conv_dim: int = 128
    sem_seg_common_stride: int = 4
    sem_seg_norm: NormName = "GN"
    # Panoptic fusion (PANOPTIC_FPN.COMBINE.*).
    combine_overlap_thresh: float = 0.5
    combine_stuff_area_thresh: int = 4096
    combine_instances_score_thresh: float = 0.5

    def __post_init__(self) -> None:
        if self.num_thing_classes < 1 or self.num_stuff_classes < 0:
            raise ValueError(
                f"need >= 1 thing and >= 0 stuff classes, got {self.num_thing_classes} things, "
                f"{self.num_stuff_classes} stuff"
            )
        if len(self.anchor_sizes) != len(RPN_FEATURES):
            raise ValueError(f"anchor_sizes needs one size per level {RPN_FEATURES}")
        if not self.cascade_bbox_reg_weights:
            raise ValueError("cascade_bbox_reg_weights needs at least one stage")
        if self.width_multiplier <= 0:
            raise ValueError(f"width_multiplier must be > 0, got {self.width_multiplier}")

    @property
    def num_semantic_channels(self) -> int:
        """Semantic head outputs: one "thing" channel plus one per stuff class."""
        return 1 + self.num_stuff_classes

    @property
    def num_pseudo_classes(self) -> int:
        """Size of the panoptic id space (stuff, then things)."""
        return self.num_stuff_classes + self.num_thing_classes

    def width(self, channels: int) -> int:
        """A channel count scaled by :attr:`width_multiplier` (1.0 keeps the published widths)."""
        return max(1, round(channels * self.width_multiplier))

    @classmethod
    def cups(
        cls, num_thing_classes: int = 10, num_stuff_classes: int = 17
    ) -> PanopticCascadeConfig:
        """CUPS (Hahn et al., CVPR 2025): 27 pseudo-classes, [0, 1] RGB input, DINO ResNet-50."""
        # Sources: cups/model/Panoptic-Cascade-Mask-R-CNN.yaml and cups/model/model.py of
        # github.com/visinf/cups: STRIDE_IN_1X1 False, SyncBN backbone and FPN, RPN NMS 0.65,
        # ImageNet mean/std on [0, 1] RGB, score threshold 0.5 for detection and fusion
        # (MODEL.INFERENCE_CONFIDENCE_THRESHOLD), images at dataset resolution. CUPS splits its 27
        # pseudo-classes into things and stuff from the pseudo-labels (THING_STUFF_THRESHOLD 0.08)
        # and reads the split back from a checkpoint's shapes; the default 10 things / 17 stuff
        # mirrors the Cityscapes-27 split and is an ASSUMPTION — use
        # checkpoints.build_from_checkpoint / infer_class_counts for a real checkpoint.
        return cls(
            num_thing_classes=num_thing_classes,
            num_stuff_classes=num_stuff_classes,
            pixel_mean=(0.485, 0.456, 0.406),
            pixel_std=(0.229, 0.224, 0.225),
            pixel_scale=1.0 / 255.0,
            input_format="RGB",
            test_min_size=0,
            stride_in_1x1=False,
            backbone_norm="BN",
            fpn_norm="BN",
            rpn_nms_thresh=0.65,
            roi_score_thresh_test=0.5,
            combine_instances_score_thresh=0.5,
        )

    @classmethod
    def u2seg(
        cls, num_thing_classes: int = 800, num_stuff_classes: int = 27
    ) -> PanopticCascadeConfig:
        """U2Seg (Niu et al., CVPR 2024): 800 thing clusters + 27 stuff classes, RGB 0..255."""
        # Source: configs/COCO-PanopticSegmentation/u2seg_eval_800.yaml of github.com/u2seg/U2Seg:
        # CascadeROIHeads, class-agnostic boxes, SEM_SEG_HEAD.NUM_CLASSES 28, STRIDE_IN_1X1 False,
        # SyncBN, RPN NMS 0.65, ImageNet mean/std in RGB 0..255, INPUT.FORMAT RGB; every other
        # value is detectron2's default (shortest edge 800 / 1333, score threshold 0.05).
        return cls(
            num_thing_classes=num_thing_classes,
            num_stuff_classes=num_stuff_classes,
            pixel_mean=(123.675, 116.280, 103.530),
            pixel_std=(58.395, 57.120, 57.375),
            input_format="RGB",
            stride_in_1x1=False,
            backbone_norm="SyncBN",
            fpn_norm="SyncBN",
            rpn_nms_thresh=0.65,
        )

    def scaled(self, width_multiplier: float) -> PanopticCascadeConfig:
        """The same architecture with every channel width scaled (for fast tests)."""
        return replace(self, width_multiplier=width_multiplier)


@dataclass(frozen=True)
class PanopticOutput:
    """One image's raw outputs (instances and semantic logits) at the requested output size."""

    boxes: Tensor  # (N, 4) x1, y1, x2, y2 in output pixels
    scores: Tensor  # (N,) mean cascade softmax score, decreasing
    classes: Tensor  # (N,) thing class 0..T-1
    masks: Tensor  # (N, H, W) bool
    semantic_logits: Tensor  # (1 + S, H, W); channel 0 = Panoptic FPN's single "thing" class


@dataclass(frozen=True)
class _Detections:
    """Detections of one image in network-input coordinates, masks as M×M probabilities."""

    boxes: Tensor
    scores: Tensor
    classes: Tensor
    mask_probs: Tensor


class RPNHead(nn.Module):
    """Shared 3×3 conv + ReLU, then 1×1 objectness (A) and box-delta (4A) convs (Ren et al.)."""

    def __init__(self, channels: int, num_anchors: int) -> None:
        super().__init__()
        self.conv = NormConv2d(channels, channels, 3, padding=1, relu=True)
        self.objectness_logits = nn.Conv2d(channels, num_anchors, 1)
        self.anchor_deltas = nn.Conv2d(channels, num_anchors * 4, 1)

    def forward(self, features: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Per level: logits (B, H·W·A) and deltas (B, H·W·A, 4), anchor-major per location."""
        logits: list[Tensor] = []
        deltas: list[Tensor] = []
        for feature in features:
            hidden = self.conv(feature)
            level_logits: Tensor = self.objectness_logits(hidden)
            level_deltas: Tensor = self.anchor_deltas(hidden)
            batch, anchors, height, width = level_logits.shape
            logits.append(level_logits.permute(0, 2, 3, 1).reshape(batch, -1))
            deltas.append(
                level_deltas.view(batch, anchors, 4, height, width)
                .permute(0, 3, 4, 1, 2)
                .reshape(batch, -1, 4)
            )
        return logits, deltas


class RPN(nn.Module):
    """Region proposal network over the FPN levels (Ren et al., 2015; Lin et al., 2017)."""

    def __init__(self, config: PanopticCascadeConfig, channels: int) -> None:
        super().__init__()
        self.config = config
        self.level_cell_anchors = [
            cell_anchors([size], config.anchor_aspect_ratios) for size in config.anchor_sizes
        ]
        self.rpn_head = RPNHead(channels, len(config.anchor_aspect_ratios))
        self.box_coder = BoxCoder(config.rpn_bbox_reg_weights, config.box_scale_clamp)

    def anchors(self, features: Sequence[Tensor]) -> list[Tensor]:
        """Anchors (H·W·A, 4) of each level for the given feature maps."""
        return [
            grid_anchors(
                cell, feature.shape[-2], feature.shape[-1], stride, self.config.anchor_offset
            ).to(feature.device)
            for cell, feature, stride in zip(
                self.level_cell_anchors, features, RPN_STRIDES, strict=True
            )
        ]

    def forward(
        self,
        features: list[Tensor],
        image_size: tuple[int, int],
        pre_nms_topk: int | None = None,
        post_nms_topk: int | None = None,
    ) -> list[Tensor]:
        """Proposals (R, 4) of each image, by decreasing objectness (top-k: test values)."""
        logits, deltas = self.rpn_head(features)
        return self.select_proposals(
            logits, deltas, self.anchors(features), image_size, pre_nms_topk, post_nms_topk
        )

    def select_proposals(
        self,
        logits: list[Tensor],
        deltas: list[Tensor],
        anchors: list[Tensor],
        image_size: tuple[int, int],
        pre_nms_topk: int | None = None,
        post_nms_topk: int | None = None,
    ) -> list[Tensor]:
        """Decode, clip, per-level NMS and top-k of the RPN outputs (None: the test top-k)."""
        pre_topk = self.config.rpn_pre_nms_topk_test if pre_nms_topk is None else pre_nms_topk
        post_topk = self.config.rpn_post_nms_topk_test if post_nms_topk is None else post_nms_topk
        height, width = image_size
        proposals = []
        for image in range(logits[0].shape[0]):
            boxes_per_level, scores_per_level, level_ids = [], [], []
            for level, (level_logits, level_deltas, level_anchors) in enumerate(
                zip(logits, deltas, anchors, strict=True)
            ):
                scores = level_logits[image]
                keep = min(pre_topk, scores.shape[0])
                top = torch.argsort(scores, descending=True, stable=True)[:keep]
                boxes_per_level.append(
                    self.box_coder.decode(level_deltas[image, top], level_anchors[top])
                )
                scores_per_level.append(scores[top])
                level_ids.append(torch.full((keep,), level, device=scores.device))
            boxes = torch.cat(boxes_per_level)
            scores = torch.cat(scores_per_level)
            levels = torch.cat(level_ids)
            valid = torch.isfinite(boxes).all(dim=1) & torch.isfinite(scores)
            boxes = clip_boxes(boxes[valid], height, width)
            scores, levels = scores[valid], levels[valid]
            keep_mask = nonempty_boxes(boxes, self.config.rpn_min_box_size)
            boxes, scores, levels = boxes[keep_mask], scores[keep_mask], levels[keep_mask]
            kept = batched_nms(boxes, scores, levels, self.config.rpn_nms_thresh)
            proposals.append(boxes[kept[:post_topk]])
        return proposals


class FastRCNNConvFCHead(nn.Module):
    """Box head: ``conv{k}`` 3×3 convs (none by default), then ``fc{k}`` layers, all with ReLU."""

    def __init__(self, config: PanopticCascadeConfig, channels: int) -> None:
        super().__init__()
        resolution = config.box_pooler_resolution
        self.num_conv = config.box_num_conv
        self.num_fc = config.box_num_fc
        for index in range(config.box_num_conv):
            conv_dim = config.width(config.box_conv_dim)
            self.add_module(
                f"conv{index + 1}",
                NormConv2d(channels, conv_dim, 3, padding=1, norm=config.box_head_norm, relu=True),
            )
            channels = conv_dim
        inputs = channels * resolution * resolution
        for index in range(config.box_num_fc):
            fc_dim = config.width(config.box_fc_dim)
            self.add_module(f"fc{index + 1}", nn.Linear(inputs, fc_dim))
            inputs = fc_dim
        self.output_dim = inputs

    def forward(self, x: Tensor) -> Tensor:
        """Per-RoI feature vectors (R, output_dim)."""
        for index in range(self.num_conv):
            x = getattr(self, f"conv{index + 1}")(x)
        x = torch.flatten(x, start_dim=1)
        for index in range(self.num_fc):
            x = F.relu(getattr(self, f"fc{index + 1}")(x))
        return x


class FastRCNNOutputLayers(nn.Module):
    """``cls_score`` (K + 1 logits, background last) and class-agnostic ``bbox_pred`` (4)."""

    def __init__(self, input_dim: int, num_classes: int) -> None:
        super().__init__()
        self.cls_score = nn.Linear(input_dim, num_classes + 1)
        self.bbox_pred = nn.Linear(input_dim, 4)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Class logits (R, K + 1) and box deltas (R, 4)."""
        logits: Tensor = self.cls_score(x)
        deltas: Tensor = self.bbox_pred(x)
        return logits, deltas


class MaskRCNNConvUpsampleHead(nn.Module):
    """Mask head (He et al., 2017): ``mask_fcn{k}`` 3×3 convs, ``deconv`` ×2, ``predictor``."""

    def __init__(self, config: PanopticCascadeConfig, channels: int) -> None:
        super().__init__()
        self.num_conv = config.mask_num_conv
        conv_dim = config.width(config.mask_conv_dim)
        for index in range(config.mask_num_conv):
            self.add_module(
                f"mask_fcn{index + 1}",
                NormConv2d(channels, conv_dim, 3, padding=1, norm=config.mask_head_norm, relu=True),
            )
            channels = conv_dim
        self.deconv = nn.ConvTranspose2d(channels, conv_dim, kernel_size=2, stride=2)
        num_masks = 1 if config.cls_agnostic_mask else config.num_thing_classes
        self.predictor = nn.Conv2d(conv_dim, num_masks, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        """Mask logits (R, classes, 2M, 2M)."""
        for index in range(self.num_conv):
            x = getattr(self, f"mask_fcn{index + 1}")(x)
        logits: Tensor = self.predictor(F.relu(self.deconv(x)))
        return logits


class CascadeROIHeads(nn.Module):
    """Cascade R-CNN box stages (Cai & Vasconcelos, 2018) and the Mask R-CNN mask head."""

    def __init__(self, config: PanopticCascadeConfig, channels: int) -> None:
        super().__init__()
        self.config = config
        heads = [FastRCNNConvFCHead(config, channels) for _ in config.cascade_bbox_reg_weights]
        self.box_head = nn.ModuleList(heads)
        self.box_predictor = nn.ModuleList(
            FastRCNNOutputLayers(head.output_dim, config.num_thing_classes) for head in heads
        )
        self.box_coders = [
            BoxCoder(weights, config.box_scale_clamp) for weights in config.cascade_bbox_reg_weights
        ]
        self.mask_head = MaskRCNNConvUpsampleHead(config, channels)

    def forward(
        self, features: list[Tensor], proposals: list[Tensor], image_size: tuple[int, int]
    ) -> list[_Detections]:
        """Detections with mask probabilities for every image."""
        config = self.config
        height, width = image_size
        counts = [boxes.shape[0] for boxes in proposals]
        stage_boxes = proposals
        stage_probs: list[Tensor] = []
        for stage, (head, predictor, coder) in enumerate(
            zip(self.box_head, self.box_predictor, self.box_coders, strict=True)
        ):
            if stage > 0:
                stage_boxes = [clip_boxes(boxes, height, width) for boxes in stage_boxes]
            pooled = multilevel_roi_align(
                features,
                ROI_STRIDES,
                stage_boxes,
                (config.box_pooler_resolution, config.box_pooler_resolution),
                config.box_pooler_sampling_ratio,
            )
            logits, deltas = predictor(head(pooled))
            stage_probs.append(F.softmax(logits, dim=-1))
            decoded = coder.decode(deltas, torch.cat(stage_boxes))
            stage_boxes = list(torch.split(decoded, counts))
        mean_probs = list(torch.split(torch.stack(stage_probs).mean(dim=0), counts))
        detections = [
            self._select(boxes, probs, image_size)
            for boxes, probs in zip(stage_boxes, mean_probs, strict=True)
        ]
        return self._add_masks(features, detections)

    def _select(self, boxes: Tensor, probs: Tensor, image_size: tuple[int, int]) -> _Detections:
        """Score threshold, per-class NMS and top-k of one image (Fast R-CNN inference)."""
        config = self.config
        valid = torch.isfinite(boxes).all(dim=1) & torch.isfinite(probs).all(dim=1)
        boxes = clip_boxes(boxes[valid], *image_size)
        scores = probs[valid][:, :-1]
        candidates = torch.nonzero(scores > config.roi_score_thresh_test)
        rows, classes = candidates[:, 0], candidates[:, 1]
        boxes, scores = boxes[rows], scores[rows, classes]
        keep = batched_nms(boxes, scores, classes, config.roi_nms_thresh_test)
        keep = keep[: config.detections_per_image]
        return _Detections(boxes[keep], scores[keep], classes[keep], boxes.new_zeros((0,)))

    def _add_masks(
        self, features: list[Tensor], detections: list[_Detections]
    ) -> list[_Detections]:
        """Run the mask head on the detected boxes; keep each detection's class channel."""
        config = self.config
        pooled = multilevel_roi_align(
            features,
            ROI_STRIDES,
            [detection.boxes for detection in detections],
            (config.mask_pooler_resolution, config.mask_pooler_resolution),
            config.mask_pooler_sampling_ratio,
        )
        logits = self.mask_head(pooled)
        classes = torch.cat([detection.classes for detection in detections])
        channel = torch.zeros_like(classes) if config.cls_agnostic_mask else classes
        probs = logits[torch.arange(logits.shape[0], device=logits.device), channel].sigmoid()
        counts = [detection.boxes.shape[0] for detection in detections]
        return [
            replace(detection, mask_probs=mask_probs)
            for detection, mask_probs in zip(detections, torch.split(probs, counts), strict=True)
        ]


class SemSegFPNHead(nn.Module):
    """Panoptic FPN semantic branch (Kirillov et al., 2019): ``p{2..5}`` towers + ``predictor``."""

    def __init__(self, config: PanopticCascadeConfig, channels: int) -> None:
        super().__init__()
        self.common_stride = config.sem_seg_common_stride
        conv_dim = config.width(config.sem_seg_conv_dim)
        for name, stride in zip(ROI_FEATURES, ROI_STRIDES, strict=True):
            layers: list[nn.Module] = []
            length = max(1, round(math.log2(stride) - math.log2(self.common_stride)))
            for index in range(length):
                layers.append(
                    NormConv2d(
                        channels if index == 0 else conv_dim,
                        conv_dim,
                        3,
                        padding=1,
                        norm=config.sem_seg_norm,
                        relu=True,
                    )
                )
                if stride != self.common_stride:
                    layers.append(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))
            self.add_module(name, nn.Sequential(*layers))
        self.predictor = nn.Conv2d(conv_dim, config.num_semantic_channels, kernel_size=1)

    def forward(self, features: list[Tensor]) -> Tensor:
        """Semantic logits (B, 1 + S, H, W) at input resolution."""
        summed: Tensor | None = None
        for name, feature in zip(ROI_FEATURES, features, strict=True):
            tower: Tensor = getattr(self, name)(feature)
            summed = tower if summed is None else summed + tower
        assert summed is not None
        logits: Tensor = self.predictor(summed)
        return F.interpolate(
            logits, scale_factor=self.common_stride, mode="bilinear", align_corners=False
        )


class PanopticCascadeModules(nn.Module):
    """The modules of a Panoptic Cascade Mask R-CNN under detectron2's names, and its input.

    Shared by the inference model below and VideoCUPS' trainable MaskTrack variant, so both
    load the same checkpoints.
    """

    pixel_mean: Tensor
    pixel_std: Tensor

    def __init__(self, config: PanopticCascadeConfig) -> None:
        super().__init__()
        self.config = config
        resnet = ResNet(
            stem_channels=config.width(64),
            res2_channels=config.width(256),
            blocks_per_stage=config.resnet_blocks,
            stride_in_1x1=config.stride_in_1x1,
            norm=config.backbone_norm,
        )
        channels = config.width(config.fpn_out_channels)
        self.backbone = ResNetFPN(resnet, channels, norm=config.fpn_norm)
        self.proposal_generator = RPN(config, channels)
        self.roi_heads = CascadeROIHeads(config, channels)
        self.sem_seg_head = SemSegFPNHead(config, channels)
        self.register_buffer(
            "pixel_mean", torch.tensor(config.pixel_mean).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer(
            "pixel_std", torch.tensor(config.pixel_std).view(1, 3, 1, 1), persistent=False
        )

    def preprocess(self, images: Tensor) -> Tensor:
        """RGB 0..255 (B, 3, H, W) → normalised network input, zero-padded to a multiple of 32."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
        x = images.to(self.pixel_mean.device, torch.float32)
        if self.config.input_format == "BGR":
            x = x.flip(1)
        if self.config.pixel_scale != 1.0:
            # Divided by 1 / pixel_scale, as CUPS scales (image / 255.0): a multiplication by
            # the rounded reciprocal differs from it in the last bit.
            x = x / (1.0 / self.config.pixel_scale)
        x = (x - self.pixel_mean) / self.pixel_std
        divisor = ResNetFPN.size_divisibility
        height, width = x.shape[-2:]
        pad_h = (divisor - height % divisor) % divisor
        pad_w = (divisor - width % divisor) % divisor
        return F.pad(x, (0, pad_w, 0, pad_h), value=0.0)


class PanopticCascadeRCNN(PanopticCascadeModules):
    """Panoptic Cascade Mask R-CNN (inference only) with detectron2's parameter names."""

    def __init__(self, config: PanopticCascadeConfig) -> None:
        super().__init__(config)
        self.eval()

    def train(self, mode: bool = True) -> Self:
        """Stay in eval mode: this implementation is for inference only."""
        if mode:
            raise NotImplementedError("PanopticCascadeRCNN is inference-only")
        return super().train(False)

    @torch.no_grad()
    def forward(
        self, images: Tensor, output_size: tuple[int, int] | None = None
    ) -> list[PanopticOutput]:
        """Instances and semantic logits of each RGB image, at ``output_size`` (default: input)."""
        height, width = int(images.shape[-2]), int(images.shape[-1])
        target = output_size or (height, width)
        features = self.backbone(self.preprocess(images))
        semantic = self.sem_seg_head([features[name] for name in ROI_FEATURES])
        semantic = semantic[:, :, :height, :width]
        if target != (height, width):
            semantic = F.interpolate(semantic, size=target, mode="bilinear", align_corners=False)
        proposals = self.proposal_generator(
            [features[name] for name in RPN_FEATURES], (height, width)
        )
        detections = self.roi_heads(
            [features[name] for name in ROI_FEATURES], proposals, (height, width)
        )
        return [
            self._postprocess(detection, logits, (height, width), target)
            for detection, logits in zip(detections, semantic, strict=True)
        ]

    def _postprocess(
        self,
        detection: _Detections,
        semantic_logits: Tensor,
        input_size: tuple[int, int],
        output_size: tuple[int, int],
    ) -> PanopticOutput:
        """Rescale boxes to the output size, drop empty ones, paste masks."""
        scale_y = output_size[0] / input_size[0]
        scale_x = output_size[1] / input_size[1]
        scale = detection.boxes.new_tensor([scale_x, scale_y, scale_x, scale_y])
        boxes = clip_boxes(detection.boxes * scale, *output_size)
        keep = nonempty_boxes(boxes)
        boxes = boxes[keep]
        masks = paste_masks_in_image(
            detection.mask_probs[keep], boxes, output_size, self.config.mask_threshold
        )
        return PanopticOutput(
            boxes=boxes,
            scores=detection.scores[keep],
            classes=detection.classes[keep],
            masks=masks,
            semantic_logits=semantic_logits,
        )

    def predict_panoptic(self, image: npt.NDArray[np.uint8]) -> PanopticFrame:
        """Panoptic pseudo-labels of one RGB image (H, W, 3): stuff ids, then thing ids, void −1."""
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image must be (H, W, 3) RGB, got shape {image.shape}")
        height, width = image.shape[:2]
        size = shortest_edge_size(
            height, width, self.config.test_min_size, self.config.test_max_size
        )
        resized = resize_frame(image, size)  # detectron2's ResizeShortestEdge on uint8
        tensor = torch.tensor(resized, dtype=torch.float32).permute(2, 0, 1)[None]  # a copy
        output = self(tensor, output_size=(height, width))[0]
        return combine_panoptic(output, self.config)


def fuse_instances(
    output: PanopticOutput, config: PanopticCascadeConfig
) -> list[tuple[int, Tensor]]:
    """The detections panoptic fusion keeps, in fusion order, each with the pixels it takes.

    Kirillov et al. (2019), detectron2's rule: by decreasing score while the score is
    ``>= combine_instances_score_thresh``; a detection whose mask is more than
    ``combine_overlap_thresh`` covered by earlier ones is dropped, else it takes its free pixels.
    """
    taken = torch.zeros(output.semantic_logits.shape[-2:], dtype=torch.bool)
    kept: list[tuple[int, Tensor]] = []
    for index in torch.argsort(output.scores, descending=True, stable=True).tolist():
        if float(output.scores[index]) < config.combine_instances_score_thresh:
            break
        mask = output.masks[index].cpu()
        area = int(mask.sum())
        if area == 0:
            continue
        overlap = int((mask & taken).sum())
        if overlap / area > config.combine_overlap_thresh:
            continue
        mask = mask & ~taken
        kept.append((index, mask))
        taken |= mask
    return kept


def combine_panoptic(
    output: PanopticOutput,
    config: PanopticCascadeConfig,
    instance_ids: Sequence[int] | None = None,
    fused: Sequence[tuple[int, Tensor]] | None = None,
) -> PanopticFrame:
    """Fuse instances and semantics into a frame (Kirillov et al., 2019; detectron2's rule).

    Instances come from :func:`fuse_instances` (``fused`` when the caller already ran it on
    ``output``). Their ids are 1..N in fusion order, or ``instance_ids[i]`` for detection ``i``
    when given (e.g. track ids carried across a video).
    """
    if fused is None:
        fused = fuse_instances(output, config)
    labels = output.semantic_logits.argmax(dim=0).cpu()
    semantic = torch.full(labels.shape, VOID_CLASS, dtype=torch.int64)
    instance = torch.zeros(labels.shape, dtype=torch.int64)
    taken = torch.zeros(labels.shape, dtype=torch.bool)
    for order, (index, mask) in enumerate(fused, start=1):
        instance.masked_fill_(mask, order if instance_ids is None else instance_ids[index])
        semantic.masked_fill_(mask, config.num_stuff_classes + int(output.classes[index]))
        taken |= mask
    # Each stuff class takes its free pixels if there are enough of them; channel 0 ("thing")
    # never becomes stuff. Stuff regions of different classes are disjoint, so one pass suffices.
    free = ~taken
    areas = torch.bincount(labels[free], minlength=config.num_semantic_channels)
    stuff_of_label = torch.arange(-1, config.num_semantic_channels - 1)
    stuff_of_label[areas < config.combine_stuff_area_thresh] = VOID_CLASS
    stuff_of_label[0] = VOID_CLASS
    semantic = torch.where(free, stuff_of_label[labels], semantic)
    return PanopticFrame.from_arrays(semantic.numpy(), instance.numpy())
