"""Streaming prediction: rescaling detections to the frame, track ids, pseudo-class ids."""

from __future__ import annotations

import numpy as np
import torch

from methods.videocups.model.config import load_training_config
from methods.videocups.model.data import ClassSpace
from methods.videocups.model.network import FrameDetections
from methods.videocups.model.predict import predict_video, to_frame_size
from methods.videocups.model.recipe import build_model

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
