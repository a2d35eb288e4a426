"""The trainable Panoptic Cascade MaskTrack R-CNN: losses, gradients, training, detection."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn
from vpsbench_methods.videocups.model.losses import LossConfig
from vpsbench_methods.videocups.model.network import (
    FrameDetections,
    PanopticCascadeMaskTrack,
    paper_architecture,
    small_architecture,
)
from vpsbench_methods.videocups.model.targets import Clip, FrameTargets, boxes_from_masks

from vpsbench.models.backbone import FrozenBatchNorm2d, make_norm
from vpsbench.models.panoptic_cascade_rcnn import combine_panoptic

# Fewer RoIs and proposals than the paper so that the tests run in seconds on two CPU cores.
FAST_LOSSES = LossConfig(
    roi_batch_size_per_image=64, rpn_pre_nms_topk_train=200, rpn_post_nms_topk_train=100
)
LOSS_NAMES = {
    "loss_rpn_cls",
    "loss_rpn_box",
    "loss_cls_stage0",
    "loss_box_stage0",
    "loss_cls_stage1",
    "loss_box_stage1",
    "loss_cls_stage2",
    "loss_box_stage2",
    "loss_mask",
    "loss_sem",
    "loss_track",
}


def _random_clip(generator: torch.Generator, frames: int, height: int, width: int) -> Clip:
    """Random images with two moving rectangles (one leaves after frame 0) on two stuff classes."""
    targets = []
    for t in range(frames):
        masks = torch.zeros(2, height, width, dtype=torch.bool)
        masks[0, 8 + t : 30 + t, 10:40] = True
        masks[1, 20:50, 50 + 2 * t : 80 + 2 * t] = True
        semantic = torch.ones(height, width, dtype=torch.int64)
        semantic[height // 2 :] = 2
        semantic[masks.any(dim=0)] = 0
        ids = torch.tensor([1, 2 + t])  # object 2 in frame 0 is a different track in frame 1
        targets.append(
            FrameTargets(boxes_from_masks(masks), torch.tensor([0, 1]), ids, masks, semantic)
        )
    images = torch.rand(frames, 3, height, width, generator=generator) * 255
    return Clip(images, targets)


def _model(seed: int = 0, losses: LossConfig = FAST_LOSSES) -> PanopticCascadeMaskTrack:
    torch.manual_seed(seed)
    return PanopticCascadeMaskTrack(small_architecture(2, 2), losses, embed_dim=32)


def test_trainable_norms_and_narrow_group_norm() -> None:
    assert isinstance(make_norm("TrainBN", 16), nn.BatchNorm2d)
    narrow = make_norm("GN", 48)
    assert isinstance(narrow, nn.GroupNorm) and narrow.num_groups == 16
    tiny = make_norm("GN", 8)
    assert isinstance(tiny, nn.GroupNorm) and tiny.num_groups == 8
    wide = make_norm("GN", 64)
    assert isinstance(wide, nn.GroupNorm) and wide.num_groups == 32
    assert set(wide.state_dict()) == {"weight", "bias"}
    frozen = make_norm("BN", 64)
    assert isinstance(frozen, FrozenBatchNorm2d)
    assert set(frozen.state_dict()) == {"weight", "bias", "running_mean", "running_var"}


def test_architecture_presets() -> None:
    small = small_architecture(3, 4)
    paper = paper_architecture(3, 4)
    assert len(small.cascade_bbox_reg_weights) == len(paper.cascade_bbox_reg_weights) == 3
    assert paper.resnet_blocks == (3, 4, 6, 3) and paper.width_multiplier == 1.0
    assert paper.backbone_norm == small.backbone_norm == "TrainBN"
    assert small.width(small.fpn_out_channels) == 64
    assert small.input_format == "RGB" and small.pixel_scale == pytest.approx(1 / 255)
    with pytest.raises(ValueError):
        PanopticCascadeMaskTrack(small, LossConfig(cascade_foreground_ious=(0.5, 0.6)))


def test_training_forward_gives_every_loss_and_every_gradient() -> None:
    generator = torch.Generator().manual_seed(0)
    clips = [_random_clip(generator, 2, 64, 96) for _ in range(2)]
    model = _model()
    losses = model(clips, torch.Generator().manual_seed(1))
    assert set(losses) == LOSS_NAMES
    for name, value in losses.items():
        assert value.ndim == 0 and math.isfinite(value.item()), name
    torch.stack(list(losses.values())).sum().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None]
    assert missing == []
    assert losses["loss_track"].item() > 0 and losses["loss_mask"].item() > 0


def test_gradients_reach_every_parameter_without_instances_or_pairs() -> None:
    # One frame (no tracking pairs) and no instances at all: the losses without samples are
    # 0 · (outputs) and still connected, so DDP without find_unused_parameters works.
    clip = Clip(torch.rand(1, 3, 64, 64) * 255, [FrameTargets.empty(64, 64)])
    clip.targets[0].semantic[:32] = 1
    model = _model()
    losses = model([clip, clip], torch.Generator().manual_seed(0))
    assert losses["loss_mask"].item() == 0.0 and losses["loss_track"].item() == 0.0
    torch.stack(list(losses.values())).sum().backward()
    assert [name for name, p in model.named_parameters() if p.grad is None] == []


def test_same_generator_state_gives_bit_identical_losses() -> None:
    generator = torch.Generator().manual_seed(0)
    clips = [_random_clip(generator, 2, 64, 96)]
    model = _model()
    first = model(clips, torch.Generator().manual_seed(5))
    second = model(clips, torch.Generator().manual_seed(5))
    assert all(torch.equal(first[name], second[name]) for name in LOSS_NAMES)
    third = model(clips, torch.Generator().manual_seed(6))
    assert not torch.equal(first["loss_rpn_cls"], third["loss_rpn_cls"])


def test_drop_loss_changes_only_the_roi_losses() -> None:
    generator = torch.Generator().manual_seed(0)
    clips = [_random_clip(generator, 2, 64, 96)]
    dropped = _model()(clips, torch.Generator().manual_seed(2))
    vanilla = _model(losses=dataclasses.replace(FAST_LOSSES, drop_loss=False))(
        clips, torch.Generator().manual_seed(2)
    )
    for name in ("loss_rpn_cls", "loss_rpn_box", "loss_sem"):
        assert torch.equal(dropped[name], vanilla[name])
    assert not torch.equal(dropped["loss_cls_stage0"], vanilla["loss_cls_stage0"])


def test_drop_loss_judges_the_regressed_boxes_not_the_proposals() -> None:
    # Stage 0's regression is set to move every box ten widths to the right: no prediction
    # overlaps a pseudo-instance any more, although the proposals include the GT boxes.
    # DropLoss (Eq. 3) then drops every stage-0 RoI's classification loss; vanilla training
    # still has one. The box regression is not weighted (CUPS / CutLER): the same either way.
    generator = torch.Generator().manual_seed(0)
    clips = [_random_clip(generator, 2, 64, 96)]
    results = {}
    for drop in (True, False):
        model = _model(losses=dataclasses.replace(FAST_LOSSES, drop_loss=drop))
        with torch.no_grad():
            regression = model.roi_heads.box_predictor[0].bbox_pred
            regression.weight.zero_()
            regression.bias.copy_(torch.tensor([100.0, 0.0, 0.0, 0.0]))
        losses = model(clips, torch.Generator().manual_seed(2))
        results[drop] = {name: value.detach() for name, value in losses.items()}
    assert float(results[True]["loss_cls_stage0"]) == 0.0
    assert torch.equal(results[True]["loss_box_stage0"], results[False]["loss_box_stage0"])
    assert float(results[True]["loss_box_stage0"]) > 0.0
    assert float(results[False]["loss_cls_stage0"]) > 0.1


def test_mask_head_trains_on_stage_zero_proposals() -> None:
    # CUPS' cascade heads (detectron2's CascadeROIHeads) give the mask head the sampled stage-0
    # proposals. Moving every regressed box ten widths away changes which RoIs the later stages
    # see (none is foreground any more) but must leave the mask loss exactly as it was.
    generator = torch.Generator().manual_seed(0)
    clips = [_random_clip(generator, 2, 64, 96)]
    mask_losses = []
    for shift in (0.0, 100.0):
        model = _model(losses=dataclasses.replace(FAST_LOSSES, drop_loss=False))
        with torch.no_grad():
            for predictor in model.roi_heads.box_predictor:
                predictor.bbox_pred.weight.zero_()
                predictor.bbox_pred.bias.copy_(torch.tensor([shift, 0.0, 0.0, 0.0]))
        losses = model(clips, torch.Generator().manual_seed(2))
        mask_losses.append(losses["loss_mask"].detach())
    assert float(mask_losses[0]) > 0.0
    assert torch.equal(mask_losses[0], mask_losses[1])


def _rectangle_clip() -> Clip:
    """One bright rectangle moving on a flat grey background, the same track in both frames."""
    height, width = 64, 96
    images = torch.full((2, 3, height, width), 90.0)
    targets = []
    for t in range(2):
        masks = torch.zeros(1, height, width, dtype=torch.bool)
        masks[0, 16:48, 20 + 4 * t : 60 + 4 * t] = True
        images[t][:, masks[0]] = torch.tensor([230.0, 40.0, 40.0])[:, None]
        semantic = torch.ones(height, width, dtype=torch.int64)
        semantic[masks[0]] = 0
        targets.append(
            FrameTargets(
                boxes_from_masks(masks), torch.tensor([0]), torch.tensor([1]), masks, semantic
            )
        )
    return Clip(images, targets)


def test_a_few_steps_on_one_clip_reduce_the_loss() -> None:
    # Vanilla losses (DropLoss normalises the box loss by the few kept RoIs, which makes the
    # total noisy over a handful of steps); the total is compared at one fixed sampling seed.
    clip = _rectangle_clip()
    model = _model(seed=1, losses=dataclasses.replace(FAST_LOSSES, drop_loss=False))

    def total_loss() -> float:
        losses = model([clip], torch.Generator().manual_seed(123))
        return float(torch.stack(list(losses.values())).sum().detach())

    before = total_loss()
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        losses = model([clip], generator)
        optimiser.zero_grad()
        torch.stack(list(losses.values())).sum().backward()
        optimiser.step()
    assert total_loss() < 0.5 * before


def test_detect_shapes_in_eval_mode_for_odd_sizes() -> None:
    # Score threshold 0 so that the untrained network returns detections to check.
    torch.manual_seed(0)
    config = dataclasses.replace(small_architecture(2, 2), roi_score_thresh_test=0.0)
    model = PanopticCascadeMaskTrack(config, FAST_LOSSES, embed_dim=32).eval()
    images = torch.rand(2, 3, 50, 70, generator=torch.Generator().manual_seed(0)) * 255
    detections = model.detect(images)
    assert len(detections) == 2
    for frame in detections:
        assert isinstance(frame, FrameDetections)
        count = frame.boxes.shape[0]
        assert count > 0
        assert frame.boxes.shape == (count, 4) and frame.scores.shape == (count,)
        assert frame.classes.shape == (count,) and int(frame.classes.max()) < 2
        assert frame.masks.shape == (count, 50, 70) and frame.masks.dtype == torch.bool
        assert frame.embeddings.shape == (count, 32)
        assert frame.semantic_logits.shape == (3, 50, 70)
        assert (frame.boxes[:, 2] <= 70).all() and (frame.boxes[:, 3] <= 50).all()
        assert (frame.scores[:-1] >= frame.scores[1:]).all()
        panoptic = combine_panoptic(model.to_panoptic_output(frame), model.config)
        assert panoptic.semantic.shape == (50, 70)


def test_stage0_falls_back_to_plain_losses_when_a_frame_has_no_pseudo_instances() -> None:
    # CUPS' _forward_box: a batch image without ground truth leaves stage 0's proposals without
    # gt_boxes, the DropLoss weighting raises and stage 0 of the whole batch takes the unweighted
    # losses; stages 1 and 2 relabel every image and keep DropLoss. With one frame emptied, stage
    # 0 equals vanilla training exactly while the later stages still differ.
    generator = torch.Generator().manual_seed(0)
    clip = _random_clip(generator, 2, 64, 96)
    empty = FrameTargets.empty(64, 96)
    empty.semantic.copy_(clip.targets[1].semantic.clamp(min=1))
    clips = [Clip(clip.images, [clip.targets[0], empty])]
    results = {}
    for drop in (True, False):
        model = _model(losses=dataclasses.replace(FAST_LOSSES, drop_loss=drop))
        losses = model(clips, torch.Generator().manual_seed(2))
        results[drop] = {name: value.detach() for name, value in losses.items()}
    assert torch.equal(results[True]["loss_cls_stage0"], results[False]["loss_cls_stage0"])
    assert not torch.equal(results[True]["loss_cls_stage1"], results[False]["loss_cls_stage1"])
    # With pseudo-instances in every frame, DropLoss weighs stage 0 too (no fallback).
    full = {}
    for drop in (True, False):
        model = _model(losses=dataclasses.replace(FAST_LOSSES, drop_loss=drop))
        full[drop] = model([clip], torch.Generator().manual_seed(2))["loss_cls_stage0"].detach()
    assert not torch.equal(full[True], full[False])
