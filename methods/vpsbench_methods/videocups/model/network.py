"""The trainable Panoptic Cascade MaskTrack R-CNN of VideoCUPS (paper Sec. 3.2 and 4).

Panoptic FPN (Kirillov et al., 2019) with a Cascade Mask R-CNN instance branch (Cai & Vasconcelos,
2018; He et al., 2017) and MaskTrack R-CNN's tracking head (Yang et al., 2019), built from the
inference modules of :mod:`vpsbench.models.panoptic_cascade_rcnn` so that parameter names stay
detectron2's. :meth:`PanopticCascadeMaskTrack.forward` returns the training losses of a batch of
clips, with Video DropLoss (Eq. 3) on every RoI loss; :meth:`PanopticCascadeMaskTrack.detect` is
the inference path (cascade score averaging, per-class NMS) plus a tracking embedding per detection.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

from vpsbench.models.ops import (
    clip_boxes,
    multilevel_roi_align,
    nonempty_boxes,
    paste_masks_in_image,
)
from vpsbench.models.panoptic_cascade_rcnn import (
    ROI_FEATURES,
    ROI_STRIDES,
    RPN_FEATURES,
    FastRCNNOutputLayers,
    PanopticCascadeConfig,
    PanopticCascadeModules,
    PanopticOutput,
)
from vpsbench_methods.videocups.model.losses import (
    LossConfig,
    drop_loss_weights,
    fast_rcnn_losses,
    label_proposals,
    mask_loss,
    mask_targets,
    match_boxes,
    reference_track_ids,
    rpn_losses,
    sample_proposals,
    semantic_loss,
)
from vpsbench_methods.videocups.model.targets import Clip, FrameTargets
from vpsbench_methods.videocups.model.tracking import TrackHead, tracking_loss


def small_architecture(num_thing_classes: int, num_stuff_classes: int) -> PanopticCascadeConfig:
    """A light network for tests and CPU runs: one bottleneck per stage, a quarter of the widths."""
    # width_multiplier 0.25: ResNet 16..512 channels, FPN 64, box fc 256, mask convs 64, semantic
    # convs 32; trainable BN in backbone and FPN; 3 cascade stages and CUPS' input normalisation.
    # RoIAlign takes a fixed 1 (box) / 2 (mask) samples per bin instead of detectron2's adaptive
    # count: about half the CPU time of a training step with 512 RoIs per image.
    return replace(
        paper_architecture(num_thing_classes, num_stuff_classes),
        resnet_blocks=(1, 1, 1, 1),
        width_multiplier=0.25,
        box_pooler_sampling_ratio=1,
        mask_pooler_sampling_ratio=2,
    )


def paper_architecture(num_thing_classes: int, num_stuff_classes: int) -> PanopticCascadeConfig:
    """CUPS' Panoptic Cascade Mask R-CNN (ResNet-50 FPN, 3 stages) with trainable batch norm."""
    return replace(
        PanopticCascadeConfig.cups(num_thing_classes, num_stuff_classes),
        backbone_norm="TrainBN",
        fpn_norm="TrainBN",
    )


@dataclass(frozen=True)
class FrameDetections:
    """Detections of one image at its input size, with a tracking embedding per instance."""

    boxes: Tensor  # (N, 4) x1, y1, x2, y2 in image pixels
    scores: Tensor  # (N,) mean cascade softmax score, decreasing
    classes: Tensor  # (N,) thing class 0..T-1
    masks: Tensor  # (N, H, W) bool
    embeddings: Tensor  # (N, D) track-head embeddings of the boxes
    semantic_logits: Tensor  # (1 + S, H, W)

    def to_panoptic_output(self) -> PanopticOutput:
        """The instances and semantics in the form ``combine_panoptic`` fuses."""
        return PanopticOutput(
            boxes=self.boxes,
            scores=self.scores,
            classes=self.classes,
            masks=self.masks,
            semantic_logits=self.semantic_logits,
        )


@dataclass(frozen=True)
class _StageRoIs:
    """The RoIs of one image fed to a cascade stage, with their labels at that stage."""

    boxes: Tensor  # (R, 4)
    classes: Tensor  # (R,) thing class or K (background)
    matched: Tensor  # (R,) index of the best GT
    max_iou: Tensor  # (R,)


def _scale_gradient(x: Tensor, scale: float) -> Tensor:
    """Identity whose gradient is multiplied by ``scale`` (detectron2's cascade 1/stages)."""
    # x - x.detach() is exactly 0, so the value is x bit for bit.
    detached = x.detach()
    return detached + (x - detached) * scale


class PanopticCascadeMaskTrack(PanopticCascadeModules):
    """Panoptic Cascade MaskTrack R-CNN: training losses (``forward``), inference (``detect``)."""

    def __init__(
        self,
        config: PanopticCascadeConfig,
        losses: LossConfig | None = None,
        embed_dim: int = 1024,
        track_norm_scale: float | None = None,
    ) -> None:
        losses = LossConfig() if losses is None else losses
        if len(losses.cascade_foreground_ious) != len(config.cascade_bbox_reg_weights):
            raise ValueError(
                f"{len(config.cascade_bbox_reg_weights)} cascade stages but "
                f"{len(losses.cascade_foreground_ious)} foreground IoUs"
            )
        super().__init__(config)
        self.losses = losses
        self.track_head = TrackHead(
            config.width(config.fpn_out_channels),
            config.box_pooler_resolution,
            embed_dim,
            norm_scale=track_norm_scale,
        )
        self._init_heads()

    def _init_heads(self) -> None:
        """detectron2's initialisation of the heads (small output layers keep early losses sane)."""

        # FPN and box-head FCs: c2_xavier_fill; RPN and predictors: N(0, 0.01), box deltas and
        # mask logits N(0, 0.001); mask and semantic convs: c2_msra_fill. Biases 0.
        def xavier(module: nn.Module) -> None:
            for layer in module.modules():
                if isinstance(layer, nn.Conv2d | nn.Linear):
                    nn.init.kaiming_uniform_(layer.weight, a=1)
                    if layer.bias is not None:
                        nn.init.zeros_(layer.bias)

        def msra(module: nn.Module) -> None:
            for layer in module.modules():
                if isinstance(layer, nn.Conv2d | nn.ConvTranspose2d):
                    nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
                    if layer.bias is not None:
                        nn.init.zeros_(layer.bias)

        def normal(layer: nn.Conv2d | nn.Linear, std: float) -> None:
            nn.init.normal_(layer.weight, std=std)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)

        for name, module in self.backbone.named_children():
            if name.startswith("fpn_"):
                xavier(module)
        head = self.proposal_generator.rpn_head
        for layer in (head.conv, head.objectness_logits, head.anchor_deltas):
            normal(layer, 0.01)
        for box_head in self.roi_heads.box_head:
            xavier(box_head)
        for predictor in self.roi_heads.box_predictor:
            assert isinstance(predictor, FastRCNNOutputLayers)
            normal(predictor.cls_score, 0.01)
            normal(predictor.bbox_pred, 0.001)
        msra(self.roi_heads.mask_head)
        normal(self.roi_heads.mask_head.predictor, 0.001)
        msra(self.sem_seg_head)

    def _pool(self, features: list[Tensor], boxes: list[Tensor], resolution: int) -> Tensor:
        """Multi-level RoIAlignV2 of per-image boxes at ``resolution``² (FPN level rule)."""
        sampling = (
            self.config.box_pooler_sampling_ratio
            if resolution == self.config.box_pooler_resolution
            else self.config.mask_pooler_sampling_ratio
        )
        return multilevel_roi_align(
            features, ROI_STRIDES, boxes, (resolution, resolution), sampling
        )

    def forward(
        self, clips: list[Clip], generator: torch.Generator | None = None
    ) -> dict[str, Tensor]:
        """Training losses of a batch of clips (same T and H, W): RPN, cascade, mask, sem, track."""
        if not clips:
            raise ValueError("need at least one clip")
        num_frames = clips[0].images.shape[0]
        if any(clip.images.shape != clips[0].images.shape for clip in clips):
            raise ValueError("all clips need the same number of frames and image size")
        device = self.pixel_mean.device
        images = torch.cat([clip.images for clip in clips]).to(device)
        targets = [target.to(device) for clip in clips for target in clip.targets]
        height, width = int(images.shape[-2]), int(images.shape[-1])
        features = self.backbone(self.preprocess(images))
        roi_features = [features[name] for name in ROI_FEATURES]
        losses: dict[str, Tensor] = {}

        semantic = self.sem_seg_head(roi_features)[:, :, :height, :width]
        semantic_targets = torch.stack([target.semantic for target in targets])
        losses["loss_sem"] = self.losses.sem_loss_weight * semantic_loss(semantic, semantic_targets)

        proposals = self._rpn_losses(
            [features[name] for name in RPN_FEATURES], targets, (height, width), generator, losses
        )
        first, last = self._cascade_losses(
            roi_features, proposals, targets, (height, width), generator, losses
        )
        losses["loss_mask"] = self.losses.mask_loss_weight * self._mask_loss(
            roi_features, first, targets
        )
        losses["loss_track"] = self.losses.track_loss_weight * self._track_loss(
            roi_features, last, targets, num_frames
        )
        return losses

    def _rpn_losses(
        self,
        features: list[Tensor],
        targets: list[FrameTargets],
        image_size: tuple[int, int],
        generator: torch.Generator | None,
        losses: dict[str, Tensor],
    ) -> list[Tensor]:
        """Adds ``loss_rpn_cls`` / ``loss_rpn_box``; returns detached training proposals + GT."""
        rpn = self.proposal_generator
        logits, deltas = rpn.rpn_head(features)
        anchors = rpn.anchors(features)
        loss_cls, loss_box = rpn_losses(
            list(torch.cat(logits, dim=1)),
            list(torch.cat(deltas, dim=1)),
            torch.cat(anchors),
            [target.boxes for target in targets],
            rpn.box_coder,
            self.losses,
            generator,
        )
        losses["loss_rpn_cls"] = self.losses.rpn_loss_weight * loss_cls
        losses["loss_rpn_box"] = self.losses.rpn_loss_weight * loss_box
        with torch.no_grad():
            proposals = rpn.select_proposals(
                [level.detach() for level in logits],
                [level.detach() for level in deltas],
                anchors,
                image_size,
                self.losses.rpn_pre_nms_topk_train,
                self.losses.rpn_post_nms_topk_train,
            )
        return [
            torch.cat((boxes, target.boxes.to(boxes.dtype)))
            for boxes, target in zip(proposals, targets, strict=True)
        ]

    def _roi_weights(self, max_iou: Tensor) -> Tensor:
        """Per-RoI loss weights: the Video DropLoss indicator (Eq. 3), or all ones without it."""
        if self.losses.drop_loss:
            return drop_loss_weights(max_iou, self.losses.drop_loss_iou)
        return torch.ones_like(max_iou, dtype=torch.float32)

    def _cascade_losses(
        self,
        features: list[Tensor],
        proposals: list[Tensor],
        targets: list[FrameTargets],
        image_size: tuple[int, int],
        generator: torch.Generator | None,
        losses: dict[str, Tensor],
    ) -> tuple[list[_StageRoIs], list[_StageRoIs]]:
        """Adds ``loss_cls_stage{k}`` / ``loss_box_stage{k}``; returns stage 0's and the last RoIs.

        Stage 0's sampled RoIs are what CUPS' cascade heads (detectron2's ``CascadeROIHeads``)
        train the mask head on; the last stage's feed the tracking loss.
        """
        config = self.config
        num_classes = config.num_thing_classes
        heads = self.roi_heads
        num_stages = len(heads.box_coders)
        stage_rois: list[_StageRoIs] = []
        for boxes, target in zip(proposals, targets, strict=True):
            classes, matched, max_iou = label_proposals(
                boxes,
                target.boxes,
                target.classes,
                self.losses.cascade_foreground_ious[0],
                num_classes,
            )
            chosen = sample_proposals(
                classes,
                num_classes,
                self.losses.roi_batch_size_per_image,
                self.losses.roi_positive_fraction,
                generator,
            )
            stage_rois.append(
                _StageRoIs(boxes[chosen], classes[chosen], matched[chosen], max_iou[chosen])
            )
        first_stage = stage_rois
        # CUPS' fallback (custom_cascade_rcnn.py ``_forward_box``): detectron2 gives stage-0
        # proposals of an image without ground truth no ``gt_boxes``, the DropLoss weighting
        # raises and stage 0 of the *whole batch* takes the plain (unweighted) losses. Later
        # stages relabel every image (zero boxes where there is no ground truth) and keep it.
        stage0_unweighted = any(target.boxes.shape[0] == 0 for target in targets)
        for stage in range(num_stages):
            if stage > 0:
                stage_rois = [
                    self._relabel(rois.boxes, target, stage, image_size)
                    for rois, target in zip(stage_rois, targets, strict=True)
                ]
            stage_boxes = [rois.boxes for rois in stage_rois]
            pooled = self._pool(features, stage_boxes, config.box_pooler_resolution)
            pooled = _scale_gradient(pooled, 1.0 / num_stages)
            logits, deltas = heads.box_predictor[stage](heads.box_head[stage](pooled))
            all_boxes = torch.cat(stage_boxes)
            counts = [rois.boxes.shape[0] for rois in stage_rois]
            # Video DropLoss (Eq. 3) judges the *predictions* D_j: the IoU of each RoI's
            # regressed box with the pseudo-instances (as CutLER's DropLoss does).
            predicted = heads.box_coders[stage].decode(deltas.detach(), all_boxes)
            predicted_iou = torch.cat(
                [
                    match_boxes(boxes, target.boxes)[0]
                    for boxes, target in zip(torch.split(predicted, counts), targets, strict=True)
                ]
            )
            matched_gt = torch.cat(
                [
                    target.boxes[rois.matched]
                    if target.boxes.shape[0]
                    else rois.boxes.new_zeros(rois.boxes.shape)
                    for rois, target in zip(stage_rois, targets, strict=True)
                ]
            )
            loss_cls, loss_box = fast_rcnn_losses(
                logits,
                deltas,
                all_boxes,
                torch.cat([rois.classes for rois in stage_rois]),
                matched_gt,
                torch.ones_like(predicted_iou)
                if stage == 0 and stage0_unweighted
                else self._roi_weights(predicted_iou),
                heads.box_coders[stage],
                self.losses.roi_smooth_l1_beta,
            )
            losses[f"loss_cls_stage{stage}"] = loss_cls
            losses[f"loss_box_stage{stage}"] = self.losses.box_loss_weight * loss_box
            if stage + 1 < num_stages:
                stage_rois = [
                    replace(rois, boxes=next_boxes)
                    for rois, next_boxes in zip(
                        stage_rois, torch.split(predicted, counts), strict=True
                    )
                ]
        return first_stage, stage_rois

    def _relabel(
        self, boxes: Tensor, target: FrameTargets, stage: int, image_size: tuple[int, int]
    ) -> _StageRoIs:
        """Later-stage RoIs: previous stage's regressed boxes (clipped, non-empty), relabelled."""
        boxes = clip_boxes(boxes, *image_size)
        boxes = boxes[nonempty_boxes(boxes) & torch.isfinite(boxes).all(dim=1)]
        classes, matched, max_iou = label_proposals(
            boxes,
            target.boxes,
            target.classes,
            self.losses.cascade_foreground_ious[stage],
            self.config.num_thing_classes,
        )
        return _StageRoIs(boxes, classes, matched, max_iou)

    def _kept_foreground(self, rois: _StageRoIs) -> Tensor:
        """Indices of foreground RoIs that Video DropLoss keeps."""
        keep = (rois.classes != self.config.num_thing_classes) & (
            self._roi_weights(rois.max_iou) > 0
        )
        return torch.nonzero(keep).flatten()

    def _mask_loss(
        self, features: list[Tensor], rois: list[_StageRoIs], targets: list[FrameTargets]
    ) -> Tensor:
        """Mask R-CNN BCE on stage 0's foreground RoIs (0·sum when there are none).

        As in CUPS (detectron2's cascade heads): the mask head sees the sampled stage-0
        proposals labelled foreground, with no DropLoss weight (DropLoss weighs the box heads).
        """
        num_classes = self.config.num_thing_classes
        foreground = [
            torch.nonzero(image_rois.classes != num_classes).flatten() for image_rois in rois
        ]
        boxes = [
            image_rois.boxes[index] for image_rois, index in zip(rois, foreground, strict=True)
        ]
        pooled = self._pool(features, boxes, self.config.mask_pooler_resolution)
        logits: Tensor = self.roi_heads.mask_head(pooled)
        if logits.shape[0] == 0:
            return 0.0 * logits.sum()
        size = int(logits.shape[-1])
        mask_target = torch.cat(
            [
                mask_targets(target.masks, image_rois.matched[index], image_rois.boxes[index], size)
                for image_rois, index, target in zip(rois, foreground, targets, strict=True)
            ]
        )
        classes = torch.cat(
            [image_rois.classes[index] for image_rois, index in zip(rois, foreground, strict=True)]
        )
        return mask_loss(logits, classes, mask_target, mask_target.new_ones(classes.shape))

    def _track_loss(
        self,
        features: list[Tensor],
        rois: list[_StageRoIs],
        targets: list[FrameTargets],
        num_frames: int,
    ) -> Tensor:
        """MaskTrack R-CNN loss of frame t's kept foreground RoIs vs frame t−1's GT boxes."""
        # Image b = clip·T + t; pairs (key b, reference b − 1) for t >= 1. Mean over key RoIs.
        num_images = len(targets)
        key_boxes: list[Tensor] = []
        key_ids: list[Tensor] = []
        ref_boxes: list[Tensor] = []
        for image in range(num_images):
            is_key = image % num_frames > 0
            if is_key:
                index = self._kept_foreground(rois[image])
                ids = targets[image].track_ids[rois[image].matched[index]]
                key_boxes.append(rois[image].boxes[index])
                key_ids.append(reference_track_ids(ids, targets[image - 1].track_ids))
            else:
                key_boxes.append(rois[image].boxes.new_zeros((0, 4)))
                key_ids.append(targets[image].track_ids.new_zeros((0,)))
            has_key = image + 1 < num_images and (image + 1) % num_frames > 0
            ref_boxes.append(
                targets[image].boxes if has_key else targets[image].boxes.new_zeros((0, 4))
            )
        resolution = self.config.box_pooler_resolution
        pooled = torch.cat(
            (
                self._pool(features, key_boxes, resolution),
                self._pool(features, ref_boxes, resolution),
            )
        )
        embeddings: Tensor = self.track_head(pooled)
        num_keys = sum(boxes.shape[0] for boxes in key_boxes)
        key_embeddings = torch.split(embeddings[:num_keys], [b.shape[0] for b in key_boxes])
        ref_embeddings = torch.split(embeddings[num_keys:], [b.shape[0] for b in ref_boxes])
        total = 0.0 * embeddings.sum()
        for image in range(num_images):
            if image % num_frames == 0 or key_boxes[image].shape[0] == 0:
                continue
            total = total + key_boxes[image].shape[0] * tracking_loss(
                key_embeddings[image],
                key_ids[image],
                ref_embeddings[image - 1],
                targets[image - 1].track_ids,
            )
        return total / max(num_keys, 1)

    @torch.no_grad()
    def detect(self, images: Tensor) -> list[FrameDetections]:
        """Detections, masks, embeddings and semantic logits of RGB 0..255 images (B, 3, H, W)."""
        # Call in eval mode (batch norm statistics); H, W need not be multiples of 32.
        height, width = int(images.shape[-2]), int(images.shape[-1])
        features = self.backbone(self.preprocess(images))
        roi_features = [features[name] for name in ROI_FEATURES]
        semantic = self.sem_seg_head(roi_features)[:, :, :height, :width]
        proposals = self.proposal_generator(
            [features[name] for name in RPN_FEATURES], (height, width)
        )
        detections = self.roi_heads(roi_features, proposals, (height, width))
        kept_boxes: list[Tensor] = []
        keeps: list[Tensor] = []
        for detection in detections:
            boxes = clip_boxes(detection.boxes, height, width)
            keep = nonempty_boxes(boxes)
            keeps.append(keep)
            kept_boxes.append(boxes[keep])
        pooled = self._pool(roi_features, kept_boxes, self.config.box_pooler_resolution)
        embeddings = torch.split(self.track_head(pooled), [b.shape[0] for b in kept_boxes])
        return [
            FrameDetections(
                boxes=boxes,
                scores=detection.scores[keep],
                classes=detection.classes[keep],
                masks=paste_masks_in_image(
                    detection.mask_probs[keep], boxes, (height, width), self.config.mask_threshold
                ),
                embeddings=image_embeddings,
                semantic_logits=logits,
            )
            for detection, keep, boxes, image_embeddings, logits in zip(
                detections, keeps, kept_boxes, embeddings, semantic, strict=True
            )
        ]

    def to_panoptic_output(self, detections: FrameDetections) -> PanopticOutput:
        """What :func:`~vpsbench.models.panoptic_cascade_rcnn.combine_panoptic` fuses."""
        return detections.to_panoptic_output()
