"""Streaming prediction: rescaling detections to the frame, track ids, pseudo-class ids."""

from __future__ import annotations

import numpy as np
import torch
from vpsbench_methods.videocups.model.config import load_training_config
from vpsbench_methods.videocups.model.data import ClassSpace
from vpsbench_methods.videocups.model.network import FrameDetections
from vpsbench_methods.videocups.model.predict import associate_shown, predict_video, to_frame_size
from vpsbench_methods.videocups.model.recipe import build_model
from vpsbench_methods.videocups.model.tracking import TrackerConfig, TrackMemory

from vpsbench.models.panoptic_cascade_rcnn import PanopticCascadeConfig, fuse_instances

SPACE = ClassSpace(things=(5, 2), stuff=(0, 1, 3))


def test_detections_are_brought_to_the_frame_size() -> None:
    masks = torch.zeros((1, 2, 4), dtype=torch.bool)
    masks[0, 1, 2:] = True
    logits = torch.arange(4 * 2 * 4, dtype=torch.float32).view(4, 2, 4)
    detections = FrameDetections(
        boxes=torch.tensor([[2.0, 1.0, 4.0, 2.0]]),
        scores=torch.tensor([0.9]),
        classes=torch.tensor([1]),
        masks=masks,
        embeddings=torch.zeros((1, 8)),
        semantic_logits=logits,
    )
    output = to_frame_size(detections, (4, 12))  # ×2 vertically, ×3 horizontally
    assert output.boxes.tolist() == [[6.0, 2.0, 12.0, 4.0]]
    expected = torch.zeros((4, 12), dtype=torch.bool)
    expected[2:, 6:] = True
    assert torch.equal(output.masks[0], expected)
    assert output.semantic_logits.shape == (4, 4, 12)
    empty = FrameDetections(
        boxes=torch.zeros((0, 4)),
        scores=torch.zeros(0),
        classes=torch.zeros(0, dtype=torch.int64),
        masks=torch.zeros((0, 2, 4), dtype=torch.bool),
        embeddings=torch.zeros((0, 8)),
        semantic_logits=logits,
    )
    assert to_frame_size(empty, (4, 12)).masks.shape == (0, 4, 12)


def test_predicted_frames_use_pseudo_class_ids_and_carry_track_ids() -> None:
    config = load_training_config(
        "small", ["model.input_height=64", "model.input_width=96", "model.score_threshold=0.0"]
    )
    torch.manual_seed(0)
    model = build_model(config, SPACE)
    generator = torch.Generator().manual_seed(0)
    frames = [torch.rand((3, 40, 70), generator=generator) * 255 for _ in range(3)]
    predicted = list(predict_video(model, iter(frames), SPACE, config.tracker, (64, 96)))
    assert len(predicted) == 3
    seen: set[int] = set()
    for frame in predicted:
        assert frame.shape == (40, 70)
        classes = set(np.unique(frame.semantic).tolist())
        assert classes <= {*SPACE.things, *SPACE.stuff, -1}
        things = np.isin(frame.semantic, SPACE.things)
        assert not frame.instance[~things].any()  # ids only on thing pseudo-classes
        seen |= set(np.unique(frame.instance[frame.instance > 0]).tolist())
    assert seen and min(seen) >= 1


def _detections(
    boxes: list[list[float]], scores: list[float], masks: torch.Tensor, embeddings: torch.Tensor
) -> FrameDetections:
    return FrameDetections(
        boxes=torch.tensor(boxes),
        scores=torch.tensor(scores),
        classes=torch.zeros(len(scores), dtype=torch.int64),
        masks=masks,
        embeddings=embeddings,
        semantic_logits=torch.zeros((4, 8, 8)),
    )


def _shown(detections: FrameDetections, config: PanopticCascadeConfig) -> list[int]:
    """Indices of the detections that panoptic fusion keeps, at their own 8×8 size."""
    return [index for index, _ in fuse_instances(to_frame_size(detections, (8, 8)), config)]


def test_a_duplicate_that_fusion_drops_cannot_steal_the_shown_detections_track() -> None:
    config = build_model(load_training_config("small", ["model.score_threshold=0.5"]), SPACE).config
    memory = TrackMemory(TrackerConfig())
    square = torch.zeros((1, 8, 8), dtype=torch.bool)
    square[0, 2:6, 2:6] = True
    track_embedding = torch.tensor([[3.0, 0.0]])
    first = _detections([[2.0, 2.0, 6.0, 6.0]], [0.9], square, track_embedding)
    assert associate_shown(first, _shown(first, config), memory).tolist() == [1]
    # Frame 2: the shown detection (score 0.9) looks a little less like track 1 than a duplicate
    # (score 0.8) whose mask lies inside it, so fusion drops the duplicate. Associated together,
    # the duplicate would take id 1 and the shown object a new id 2.
    masks = torch.zeros((2, 8, 8), dtype=torch.bool)
    masks[0, 2:6, 2:6] = True
    masks[1, 3:5, 3:5] = True
    second = _detections(
        [[2.0, 2.0, 6.0, 6.0], [3.0, 3.0, 5.0, 5.0]],
        [0.9, 0.8],
        masks,
        torch.tensor([[1.0, 0.0], [3.0, 0.0]]),
    )
    ids = associate_shown(second, _shown(second, config), memory)
    assert ids.tolist() == [1, 0]
    together = TrackMemory(TrackerConfig())
    together.associate(first.boxes, first.scores, first.classes, first.embeddings)
    stolen = together.associate(second.boxes, second.scores, second.classes, second.embeddings)
    assert stolen.tolist() == [2, 1]
