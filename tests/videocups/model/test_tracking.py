"""MaskTrack tracking head, loss and inference association
(vpsbench_methods.videocups.model.tracking)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor
from vpsbench_methods.videocups.model.tracking import (
    TrackerConfig,
    TrackHead,
    TrackMemory,
    box_iou,
    tracking_loss,
)


def _ce(logits: list[float], target: int) -> float:
    """Cross-entropy of one row, written out: log-sum-exp minus the target logit."""
    return math.log(sum(math.exp(v) for v in logits)) - logits[target]


def test_track_head_shapes_and_no_relu_after_last_fc() -> None:
    torch.manual_seed(0)
    head = TrackHead(8, 7, embed_dim=16)
    out = head(torch.randn(5, 8, 7, 7))
    assert out.shape == (5, 16)
    assert (out < 0).any()  # a final ReLU would make every entry >= 0
    assert head(torch.zeros(0, 8, 7, 7)).shape == (0, 16)
    with_convs = TrackHead(8, 7, embed_dim=16, num_convs=2, conv_dim=4)
    assert with_convs(torch.randn(3, 8, 7, 7)).shape == (3, 16)
    with pytest.raises(ValueError, match="expects"):
        head(torch.randn(2, 8, 5, 5))


def test_tracking_loss_matches_hand_computed_cross_entropy() -> None:
    key = torch.tensor([[1.0, 0.0], [0.5, 2.0]])
    ref = torch.tensor([[2.0, 1.0], [0.0, 1.0]])
    # dot products: key0·ref = [2, 0]; key1·ref = [3, 2]
    loss = tracking_loss(key, torch.tensor([7, 3]), ref, torch.tensor([3, 7]))
    # key 0 (id 7) matches ref 1 → target 2; key 1 (id 3) matches ref 0 → target 1
    expected = (_ce([0.0, 2.0, 0.0], 2) + _ce([0.0, 3.0, 2.0], 1)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_tracking_loss_new_object_targets() -> None:
    key = torch.tensor([[1.0, 0.0], [0.5, 2.0]])
    ref = torch.tensor([[2.0, 1.0], [0.0, 1.0]])
    # key 0 has id 0 (untracked), key 1 has id 9 absent from the references: both "new"
    loss = tracking_loss(key, torch.tensor([0, 9]), ref, torch.tensor([0, 7]))
    expected = (_ce([0.0, 2.0, 0.0], 0) + _ce([0.0, 3.0, 2.0], 0)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_tracking_loss_gradient_pushes_towards_the_target() -> None:
    key = torch.tensor([[1.0, 0.0]], requires_grad=True)
    ref = torch.tensor([[0.0, 1.0], [1.0, 0.0]], requires_grad=True)
    loss = tracking_loss(key, torch.tensor([5]), ref, torch.tensor([5, 6]))
    (key_grad,) = torch.autograd.grad(loss, [key])
    # moving the key along ref 0 (its target) lowers the loss
    assert key_grad[0] @ ref.detach()[0] < 0


def test_tracking_loss_without_keys_or_refs_is_zero_and_connected() -> None:
    key = torch.zeros(0, 4, requires_grad=True)
    ref = torch.randn(3, 4, requires_grad=True)
    loss = tracking_loss(key, torch.zeros(0, dtype=torch.int64), ref, torch.tensor([1, 2, 3]))
    assert loss.item() == 0.0
    key_grad, ref_grad = torch.autograd.grad(loss, [key, ref])
    assert torch.equal(ref_grad, torch.zeros_like(ref))
    assert key_grad.shape == (0, 4)

    key2 = torch.randn(2, 4, requires_grad=True)
    ref2 = torch.zeros(0, 4, requires_grad=True)
    loss2 = tracking_loss(key2, torch.tensor([1, 2]), ref2, torch.zeros(0, dtype=torch.int64))
    assert loss2.item() == 0.0  # only the "new" logit: log-softmax of one entry is 0
    key2_grad, ref2_grad = torch.autograd.grad(loss2, [key2, ref2])
    assert key2_grad.shape == (2, 4) and ref2_grad.shape == (0, 4)


def test_box_iou_brute_force() -> None:
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 3.0, 4.0]])
    b = torch.tensor([[1.0, 1.0, 2.0, 2.0], [5.0, 5.0, 6.0, 6.0], [0.0, 0.0, 2.0, 2.0]])
    iou = box_iou(a, b)

    def area(x1: float, y1: float, x2: float, y2: float) -> float:
        return max(0.0, x2 - x1) * max(0.0, y2 - y1)

    for i, p in enumerate(a.tolist()):
        for j, q in enumerate(b.tolist()):
            inter = area(max(p[0], q[0]), max(p[1], q[1]), min(p[2], q[2]), min(p[3], q[3]))
            union = area(*p) + area(*q) - inter
            assert iou[i, j].item() == pytest.approx(inter / union)


# Association: unit embeddings, one per object; boxes move by a few pixels per frame.
E_A = torch.tensor([4.0, 0.0, 0.0])
E_B = torch.tensor([0.0, 4.0, 0.0])
E_C = torch.tensor([0.0, 0.0, 4.0])


def _frame(*dets: tuple[Tensor, list[float], int]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(boxes, scores, classes, embeddings) of detections given as (embedding, box, class)."""
    if not dets:
        return (
            torch.zeros(0, 4),
            torch.zeros(0),
            torch.zeros(0, dtype=torch.int64),
            torch.zeros(0, 3),
        )
    return (
        torch.tensor([box for _, box, _ in dets]),
        torch.full((len(dets),), 0.9),
        torch.tensor([cls for _, _, cls in dets]),
        torch.stack([emb for emb, _, _ in dets]),
    )


def _box(x: float, y: float = 10.0) -> list[float]:
    return [x, y, x + 20.0, y + 30.0]


def test_two_moving_objects_keep_their_ids_and_a_new_one_gets_a_fresh_id() -> None:
    memory = TrackMemory()
    first = memory.associate(*_frame((E_A, _box(0), 0), (E_B, _box(100), 1)))
    assert first.tolist() == [1, 2]
    for step in range(1, 5):
        # listed in the opposite order: ids follow the objects, not the positions in the list
        ids = memory.associate(*_frame((E_B, _box(100 - 3 * step), 1), (E_A, _box(3 * step), 0)))
        assert ids.tolist() == [2, 1]
    ids = memory.associate(*_frame((E_A, _box(15), 0), (E_C, _box(200), 0), (E_B, _box(85), 1)))
    assert ids.tolist() == [1, 3, 2]
    assert ids.dtype == torch.int64


def test_assignment_is_one_to_one() -> None:
    memory = TrackMemory()
    memory.associate(*_frame((E_A, _box(0), 0)))
    # two near-identical copies of object A: only one may continue track 1
    ids = memory.associate(*_frame((E_A, _box(1), 0), (E_A * 0.99, _box(2), 0)))
    assert sorted(ids.tolist()) == [1, 2]
    assert ids[0].item() == 1  # the better match (higher similarity and IoU) keeps the id


def test_lost_track_is_kept_for_max_age_frames_then_dropped() -> None:
    config = TrackerConfig(max_age=2)
    memory = TrackMemory(config)
    memory.associate(*_frame((E_A, _box(0), 0), (E_B, _box(100), 1)))
    memory.associate(*_frame((E_B, _box(100), 1)))  # A missed 1 frame
    memory.associate(*_frame((E_B, _box(100), 1)))  # A missed 2 frames
    assert memory.associate(*_frame((E_A, _box(0), 0), (E_B, _box(100), 1))).tolist() == [1, 2]

    memory.reset()
    memory.associate(*_frame((E_A, _box(0), 0), (E_B, _box(100), 1)))
    for _ in range(3):  # A missed 3 frames > max_age: dropped
        memory.associate(*_frame((E_B, _box(100), 1)))
    assert memory.live_ids == (2,)
    ids = memory.associate(*_frame((E_A, _box(0), 0), (E_B, _box(100), 1)))
    assert ids.tolist() == [3, 2]  # not revived, and id 1 is not reused


def test_ids_are_never_reused_after_expiry() -> None:
    memory = TrackMemory(TrackerConfig(max_age=0))
    seen: list[int] = []
    for step in range(6):
        # each object appears once and vanishes; empty frames in between expire everything
        ids = memory.associate(*_frame((E_A, _box(0), 0))) if step % 2 == 0 else None
        if ids is None:
            assert memory.associate(*_frame()).shape == (0,)
        else:
            seen += ids.tolist()
    assert seen == [1, 2, 3]


def test_match_threshold_forces_new_tracks() -> None:
    memory = TrackMemory(TrackerConfig(match_threshold=1e6))
    memory.associate(*_frame((E_A, _box(0), 0)))
    assert memory.associate(*_frame((E_A, _box(0), 0))).tolist() == [2]


def test_class_change_and_dissimilar_embedding_start_a_new_track() -> None:
    memory = TrackMemory()
    memory.associate(*_frame((E_A, _box(0), 0)))
    # a different object (negative similarity) far away with another class: "new" wins
    other = torch.tensor([-1.0, 0.0, 4.0])
    assert memory.associate(*_frame((other, _box(300), 1))).tolist() == [2]


def _one_track_memory(config: TrackerConfig) -> TrackMemory:
    """A memory holding one track: class 0, embedding (1, 0, 0), box (0, 10, 20, 40)."""
    memory = TrackMemory(config)
    memory.associate(
        torch.tensor([_box(0)]), torch.tensor([0.9]), torch.tensor([0]), torch.tensor([[1.0, 0, 0]])
    )
    return memory


def test_composite_score_matches_masktrack_formula() -> None:
    """A detection continues the track when its composite beats MaskTrack's "new" dummy.

    With similarity s the embedding term is log p(track) − log p(new) = s. The dummy has IoU 0
    and counts as the same class (MaskTrack: ``label_delta`` 1), so it gets the class term too.
    """
    det = torch.tensor([[0.5, 0.0, 0.0]])  # s = 0.5
    far = _box(300)  # IoU 0 with the track
    cases = [
        # (config, detection box, class, embedding, expected id)
        (TrackerConfig(), far, 0, det, 1),  # same class: s > 0 decides for the track
        (TrackerConfig(), far, 0, -det, 2),  # same class, s < 0: "new"
        (TrackerConfig(), far, 1, det, 2),  # another class: the dummy's class term 10 wins
        # w_class 1, another class: match iff s + 2·IoU > 1, i.e. IoU > 0.25. A box shifted by
        # dx has IoU (20 − dx) / (20 + dx): dx 5 → 0.6 (match), dx 14 → 6/34 ≈ 0.18 (new).
        (TrackerConfig(w_class=1.0), _box(5), 1, det, 1),
        (TrackerConfig(w_class=1.0), _box(14), 1, det, 2),
    ]
    for config, box, label, embedding, expected in cases:
        memory = _one_track_memory(config)
        ids = memory.associate(
            torch.tensor([box]), torch.tensor([0.9]), torch.tensor([label]), embedding
        )
        assert ids.tolist() == [expected], (config, box, label)


def test_ema_embedding_update() -> None:
    memory = TrackMemory(TrackerConfig(embedding_update="ema", ema_momentum=0.75))
    memory.associate(*_frame((E_A, _box(0), 0)))
    memory.associate(*_frame((torch.tensor([4.0, 4.0, 0.0]), _box(0), 0)))
    track = memory._tracks[1]
    assert torch.allclose(track.embedding, torch.tensor([4.0, 1.0, 0.0]))


def test_invalid_config_is_refused() -> None:
    with pytest.raises(ValueError, match="max_age"):
        TrackerConfig(max_age=-1)
