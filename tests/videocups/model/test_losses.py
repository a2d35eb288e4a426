"""Loss, matching and sampling functions of the VideoCUPS network (Video DropLoss, Eq. 3)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from vpsbench_methods.videocups.model.losses import (
    LossConfig,
    drop_loss_weights,
    fast_rcnn_losses,
    label_anchors,
    label_proposals,
    mask_loss,
    mask_targets,
    reference_track_ids,
    rpn_losses,
    sample_proposals,
    semantic_loss,
    smooth_l1,
    subsample_labels,
)
from vpsbench_methods.videocups.model.targets import IGNORE

from vpsbench.models.ops import BoxCoder, box_iou

GT = torch.tensor([[0.0, 0.0, 100.0, 100.0]])
# Boxes [0, 0, 100, h] inside the GT have IoU h / 100 with it.
IOUS = (0.3, 0.5, 0.51, 0.8)
PROPOSALS = torch.tensor([[0.0, 0.0, 100.0, 100.0 * iou] for iou in IOUS])


def _cls_gradient_rows(drop_loss: bool) -> list[bool]:
    """Which proposals get a non-zero classification-loss gradient, labelled at stage IoU 0.5."""
    classes, matched, max_iou = label_proposals(PROPOSALS, GT, torch.tensor([1]), 0.5, 3)
    weights = drop_loss_weights(max_iou, 0.5) if drop_loss else torch.ones(4)
    logits = torch.randn(4, 4, generator=torch.Generator().manual_seed(0)).requires_grad_()
    deltas = torch.zeros(4, 4, requires_grad=True)
    loss_cls, _ = fast_rcnn_losses(
        logits, deltas, PROPOSALS, classes, GT[matched], weights, BoxCoder((10, 10, 5, 5)), 0.0
    )
    loss_cls.backward()
    assert logits.grad is not None
    return [bool(row.abs().sum() > 0) for row in logits.grad]


def test_label_proposals_uses_the_stage_iou() -> None:
    classes, matched, max_iou = label_proposals(PROPOSALS, GT, torch.tensor([1]), 0.5, 3)
    assert torch.allclose(max_iou, torch.tensor(IOUS))
    assert classes.tolist() == [3, 1, 1, 1]  # background = K = 3; IoU 0.5 is foreground
    assert matched.tolist() == [0, 0, 0, 0]
    classes, _, _ = label_proposals(PROPOSALS, GT, torch.tensor([1]), 0.7, 3)
    assert classes.tolist() == [3, 3, 3, 1]


def test_drop_loss_weights_are_strictly_above_the_threshold() -> None:
    max_iou = torch.tensor([0.0, 0.3, 0.5, 0.500001, 0.51, 0.8, 1.0])
    assert drop_loss_weights(max_iou, 0.5).tolist() == [0, 0, 0, 1, 1, 1, 1]


def test_drop_loss_ignores_exactly_the_rois_at_or_below_the_threshold() -> None:
    assert _cls_gradient_rows(drop_loss=True) == [False, False, True, True]
    assert _cls_gradient_rows(drop_loss=False) == [True, True, True, True]


def test_fast_rcnn_losses_hand_values() -> None:
    # Two kept RoIs (one foreground with known deltas, one background), one dropped RoI.
    coder = BoxCoder((10.0, 10.0, 5.0, 5.0))
    proposals = torch.tensor([[0.0, 0.0, 10.0, 10.0], [50.0, 50.0, 60.0, 60.0], [0, 0, 5, 5.0]])
    gt = torch.tensor([[1.0, 0.0, 11.0, 10.0], [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]])
    classes = torch.tensor([0, 2, 2])
    logits = torch.zeros(3, 3)
    deltas = torch.zeros(3, 4)
    weights = torch.tensor([1.0, 1.0, 0.0])
    loss_cls, loss_box = fast_rcnn_losses(
        logits, deltas, proposals, classes, gt, weights, coder, 0.0
    )
    # Both are divided by all 3 RoIs: CE ln 3 for each of the 2 kept RoIs.
    assert loss_cls.item() == pytest.approx(2 * math.log(3.0) / 3)
    # Target dx = 10 · (1 / 10) = 1, the rest 0; L1 summed, divided by the 3 RoIs.
    assert loss_box.item() == pytest.approx(1 / 3)
    # All dropped: classification zero, not NaN, and still differentiable; box regression of the
    # foreground RoI is not weighted by DropLoss (CUPS / CutLER weigh only the cross-entropy).
    logits.requires_grad_()
    loss_cls, loss_box = fast_rcnn_losses(
        logits, deltas, proposals, classes, gt, torch.zeros(3), coder, 0.0
    )
    assert loss_cls.item() == 0.0
    assert loss_box.item() == pytest.approx(1 / 3)
    loss_cls.backward()
    assert logits.grad is not None and not logits.grad.any()


def test_smooth_l1_matches_torch_and_is_l1_for_zero_beta() -> None:
    a = torch.linspace(-2, 2, 41)
    b = torch.zeros(41)
    expected = F.smooth_l1_loss(a, b, beta=0.5, reduction="none")
    assert torch.allclose(smooth_l1(a, b, 0.5), expected)
    assert torch.equal(smooth_l1(a, b, 0.0), a.abs())


def test_subsample_labels_respects_size_fraction_and_generator() -> None:
    positive = torch.zeros(1000, dtype=torch.bool)
    positive[:300] = True
    negative = ~positive
    negative[300:320] = False  # ignored entries are never sampled
    pos, neg = subsample_labels(positive, negative, 256, 0.25, torch.Generator().manual_seed(1))
    assert pos.numel() == 64 and neg.numel() == 192
    assert positive[pos].all() and negative[neg].all()
    assert pos.unique().numel() == 64 and neg.unique().numel() == 192
    again = subsample_labels(positive, negative, 256, 0.25, torch.Generator().manual_seed(1))
    assert torch.equal(again[0], pos) and torch.equal(again[1], neg)
    other = subsample_labels(positive, negative, 256, 0.25, torch.Generator().manual_seed(2))
    assert not torch.equal(other[0], pos)
    # Few positives: all of them, negatives fill the rest of the batch.
    few = torch.zeros(1000, dtype=torch.bool)
    few[:5] = True
    pos, neg = subsample_labels(few, ~few, 256, 0.5, torch.Generator().manual_seed(0))
    assert sorted(pos.tolist()) == [0, 1, 2, 3, 4] and neg.numel() == 251


def test_sample_proposals_takes_foreground_first() -> None:
    classes = torch.tensor([0, 5, 5, 1, 5, 5, 5, 5])  # K = 5 is background
    chosen = sample_proposals(classes, 5, 4, 0.25, torch.Generator().manual_seed(0))
    assert chosen.numel() == 4
    assert (classes[chosen[:1]] != 5).all() and (classes[chosen[1:]] == 5).all()


def _brute_force_anchor_labels(
    anchors: torch.Tensor, gt: torch.Tensor, high: float, low: float
) -> list[int]:
    def iou(a: list[float], b: list[float]) -> float:
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = w * h
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        return inter / union

    table = [[iou(a, g) for g in gt.tolist()] for a in anchors.tolist()]
    labels = []
    for row in table:
        best = max(row)
        labels.append(1 if best >= high else 0 if best < low else -1)
    for g in range(gt.shape[0]):
        best = max(row[g] for row in table)
        for index, row in enumerate(table):
            if best > 0 and abs(row[g] - best) < 1e-6:
                labels[index] = 1
    return labels


def test_label_anchors_matches_a_brute_force_loop() -> None:
    generator = torch.Generator().manual_seed(3)
    corners = torch.rand(300, 2, generator=generator) * 100
    sizes = torch.rand(300, 2, generator=generator) * 40 + 4
    anchors = torch.cat((corners, corners + sizes), dim=1)
    gt = torch.tensor([[10.0, 10.0, 40.0, 30.0], [60.0, 50.0, 90.0, 95.0], [0, 0, 3.0, 3.0]])
    labels, matched = label_anchors(anchors, gt, 0.7, 0.3)
    assert labels.tolist() == _brute_force_anchor_labels(anchors, gt, 0.7, 0.3)
    ious = box_iou(gt, anchors)
    assert torch.equal(ious[matched, torch.arange(300)], ious.max(dim=0).values)
    best = ious.max(dim=1)
    assert best.values[2] == 0.0  # the tiny corner GT touches no anchor: nothing forced positive
    assert (labels[best.indices[:2]] == 1).all()  # the other GTs' best anchors are positive
    assert (labels == 1).any() and (labels == 0).any() and (labels == -1).any()
    empty_labels, _ = label_anchors(anchors, torch.zeros(0, 4), 0.7, 0.3)
    assert (empty_labels == 0).all()


def test_rpn_losses_hand_values() -> None:
    # Zero logits: BCE = ln 2 whatever is sampled; a perfect delta gives no box loss.
    anchors = torch.tensor([[0.0, 0, 10, 10], [20.0, 20, 30, 30], [50.0, 50, 60, 60]])
    gt = torch.tensor([[0.0, 0.0, 10.0, 11.0]])
    coder = BoxCoder((1.0, 1.0, 1.0, 1.0))
    perfect = torch.zeros(3, 4)
    perfect[0] = coder.encode(anchors[:1], gt)[0]
    config = LossConfig(rpn_batch_size_per_image=3)
    loss_cls, loss_box = rpn_losses(
        [torch.zeros(3)], [perfect], anchors, [gt], coder, config, torch.Generator()
    )
    assert loss_cls.item() == pytest.approx(math.log(2.0))
    assert loss_box.item() == pytest.approx(0.0, abs=1e-7)
    loss_cls, loss_box = rpn_losses(
        [torch.zeros(3)], [torch.zeros(3, 4)], anchors, [gt], coder, config, torch.Generator()
    )
    # dy = (5.5 - 5) / 10 = 0.05 and dh = log(11 / 10); one positive among 3 sampled anchors.
    assert loss_box.item() == pytest.approx((0.05 + math.log(11 / 10)) / 3)


def test_mask_targets_hand_case() -> None:
    masks = torch.zeros(2, 8, 8, dtype=torch.bool)
    masks[0, :, :4] = True  # left half
    masks[1, 2:6, 2:6] = True  # centre square
    boxes = torch.tensor([[0.0, 0.0, 8.0, 8.0], [2.0, 2.0, 6.0, 6.0], [4.0, 0.0, 8.0, 8.0]])
    targets = mask_targets(masks, torch.tensor([0, 1, 0]), boxes, 4)
    expected_left = torch.tensor([[1.0, 1.0, 0.0, 0.0]] * 4)
    assert torch.equal(targets[0], expected_left)
    assert torch.equal(targets[1], torch.ones(4, 4))
    assert torch.equal(targets[2], torch.zeros(4, 4))


def test_mask_loss_selects_the_class_channel() -> None:
    logits = torch.zeros(2, 3, 4, 4)
    logits[0, 1] = 20.0  # confident foreground on class 1 of RoI 0
    targets = torch.ones(2, 4, 4)
    loss = mask_loss(logits, torch.tensor([1, 2]), targets, torch.ones(2))
    # RoI 0: BCE(20, 1) ≈ 0; RoI 1: BCE(0, 1) = ln 2; mean over the two RoIs.
    assert loss.item() == pytest.approx(math.log(2.0) / 2, abs=1e-6)
    dropped = mask_loss(logits, torch.tensor([1, 2]), targets, torch.tensor([1.0, 0.0]))
    assert dropped.item() == pytest.approx(0.0, abs=1e-6)


def test_semantic_loss_ignores_void() -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 4, 5, generator=generator)
    targets = torch.randint(0, 3, (2, 4, 5), generator=generator)
    targets[0, :2] = IGNORE
    valid = targets != IGNORE
    expected = F.cross_entropy(logits.permute(0, 2, 3, 1)[valid], targets[valid])
    assert semantic_loss(logits, targets).item() == pytest.approx(expected.item(), rel=1e-6)
    assert semantic_loss(logits, torch.full_like(targets, IGNORE)).item() == 0.0


def test_reference_track_ids_marks_new_objects() -> None:
    keys = torch.tensor([3, 7, 3, 9])
    assert reference_track_ids(keys, torch.tensor([9, 3])).tolist() == [3, 0, 3, 9]
    assert reference_track_ids(keys, torch.zeros(0, dtype=torch.int64)).tolist() == [0] * 4


def test_loss_config_defaults_and_validation() -> None:
    config = LossConfig()
    assert config.cascade_foreground_ious == (0.5, 0.6, 0.7)
    assert config.drop_loss and config.drop_loss_iou == 0.5
    assert (config.rpn_pre_nms_topk_train, config.rpn_post_nms_topk_train) == (2000, 4000)
    with pytest.raises(ValueError):
        LossConfig(rpn_negative_iou=0.8)
    with pytest.raises(ValueError):
        LossConfig(cascade_foreground_ious=())
