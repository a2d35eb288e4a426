"""The training recipe: model building (paper/small), the step function, self-enhanced instances."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pytest
import torch
from vpsbench_methods.videocups.model.config import load_training_config
from vpsbench_methods.videocups.model.data import PseudoLabelClips
from vpsbench_methods.videocups.model.recipe import (
    VideoCupsStep,
    build_model,
    predicted_video_instances,
)
from vpsbench_methods.videocups.model.trainer import StepContext, step_generator

from tests.videocups.model.labelled_videos import SPACE, labelled_synthetic, training_clips
from tests.videocups.model.test_backbone_weights import _torchvision_names
from vpsbench.cues.base import MissingWeightsError
from vpsbench.models.backbone import ResNet
from vpsbench.video import PanopticFrame

TINY = [
    "model.input_height=32",
    "model.input_width=64",
    "loss.roi_batch_size_per_image=16",
    "loss.rpn_pre_nms_topk_train=50",
    "loss.rpn_post_nms_topk_train=20",
]


def test_paper_model_requires_and_loads_the_dino_resnet50(tmp_path: Path) -> None:
    config = load_training_config("paper")
    with pytest.raises(MissingWeightsError, match=r"dino_resnet50_pretrain\.pth"):
        build_model(config, SPACE)
    source = ResNet(blocks_per_stage=(3, 4, 6, 3), stride_in_1x1=False, norm="FrozenBN")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for tensor in source.state_dict().values():
            tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
    state = source.state_dict()
    weights = tmp_path / "dino_resnet50.pth"
    names = _torchvision_names((3, 4, 6, 3))
    torch.save({tv: state[d2] for tv, d2 in names.items()}, weights)
    config = load_training_config("paper", [f"model.backbone_weights={weights}"])
    model = build_model(config, SPACE)
    loaded = model.backbone.bottom_up.state_dict()
    for name, tensor in state.items():
        assert torch.equal(loaded[name], tensor), name
    assert model.config.num_thing_classes == 2 and model.config.num_stuff_classes == 3
    assert model.config.stride_in_1x1 is False


def test_anchor_sizes_setting_reaches_the_rpn() -> None:
    # small.yaml scales the anchors to its 256x512 input: p2 holds 8-pixel anchors, whose square
    # cell anchor is [-4, -4, 4, 4]; without the setting the architecture's 32..512 stay.
    small = build_model(load_training_config("small", TINY), SPACE)
    square = small.proposal_generator.level_cell_anchors[0][1]
    assert square.tolist() == [-4.0, -4.0, 4.0, 4.0]
    assert small.config.anchor_sizes == (8.0, 16.0, 32.0, 64.0, 128.0)
    default = build_model(load_training_config("small", ["model.anchor_sizes=", *TINY]), SPACE)
    assert default.config.anchor_sizes == (32.0, 64.0, 128.0, 256.0, 512.0)


def two_objects(t: int) -> PanopticFrame:
    """Stuff 0 above stuff 1; a moving thing (class 5, track 4) and a still one (2, track 9)."""
    semantic = np.zeros((32, 64), dtype=np.int32)
    instance = np.zeros((32, 64), dtype=np.int32)
    semantic[16:, :] = 1
    column = 6 + 8 * t
    semantic[6:20, column : column + 10], instance[6:20, column : column + 10] = 5, 4
    semantic[20:30, 40:56], instance[20:30, 40:56] = 2, 9
    return PanopticFrame(semantic, instance)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> PseudoLabelClips:
    root, labels = tmp_path_factory.mktemp("synthetic"), tmp_path_factory.mktemp("labels")
    labelled_synthetic(root, labels, videos=1, seed=5, paint=two_objects)
    return training_clips(root, labels, size=None, min_area=4)


def context(step: int) -> StepContext:
    return StepContext(
        step=step,
        rank=0,
        world_size=1,
        generator=step_generator(0, step, 0),
        device=torch.device("cpu"),
        autocast=contextlib.nullcontext,
    )


@pytest.mark.parametrize("mode", ["none", "plain", "self-enhanced"])
def test_a_step_is_a_pure_function_of_its_number(clips: PseudoLabelClips, mode: str) -> None:
    config = load_training_config(
        "small", [*TINY, f"augment.copy_paste={mode}", "augment.self_enhance_start=0"]
    )
    torch.manual_seed(0)
    model = build_model(config, SPACE)
    step = VideoCupsStep(clips, config, total_steps=10, seed=0)
    first = step(model, context(3))
    again = step(model, context(3))
    other = step(model, context(4))
    assert set(first) >= {"loss_sem", "loss_track", "loss_mask", "loss_cls_stage0"}
    assert all(torch.isfinite(value) for value in first.values())
    assert all(torch.equal(first[name], again[name]) for name in first)
    assert any(not torch.equal(first[name], other[name]) for name in first)


def test_plain_copy_paste_adds_tracks_to_the_batch(clips: PseudoLabelClips) -> None:
    config = load_training_config("small", [*TINY, "augment.copy_paste=plain"])
    model = build_model(config, SPACE)
    step = VideoCupsStep(clips, config, total_steps=10, seed=0)
    batch = clips.batch(0, 0, 1, 2, 0, 0.0, torch.Generator().manual_seed(0))
    original = {int(i) for clip in batch for t in clip.targets for i in t.track_ids}
    assert original == {4, 9}
    pasted = step.augment(model, batch, context(0))
    ids = {int(i) for clip in pasted for t in clip.targets for i in t.track_ids}
    assert ids - original, "copy-paste added no new track"
    assert max(ids) > 9  # new ids come after the clip's own


def test_self_enhanced_instances_come_from_confident_tracked_detections(
    clips: PseudoLabelClips,
) -> None:
    confident = load_training_config(
        "small", [*TINY, "model.score_threshold=0.0", "copy_paste.min_score=0.0"]
    )
    torch.manual_seed(1)
    model = build_model(confident, SPACE)
    clip = clips.clip(0, flip=False)
    instances = predicted_video_instances(model, clip, confident)
    assert model.training  # restored after inference
    for instance in instances:
        assert instance.num_present >= confident.copy_paste.min_track_frames
        assert 0 <= instance.thing_class < len(SPACE.things)
        for item in instance.frames:
            if item is not None:
                patch, mask = item
                assert patch.shape[1:] == mask.shape and bool(mask.any())
    strict = load_training_config("small", [*TINY, "copy_paste.min_score=1.01"])
    assert predicted_video_instances(model, clip, strict) == []


def test_self_enhanced_mode_pastes_pseudo_labels_only_during_warm_up(
    clips: PseudoLabelClips,
) -> None:
    # CUPS' training_step: pseudo-label objects are pasted for NUM_STEPS_STARTUP steps, then
    # only the model's confident predictions, never the pseudo-labels again. No detection
    # scores above 1.01, so after the warm-up nothing is pasted at all.
    config = load_training_config(
        "small",
        [
            *TINY,
            "augment.copy_paste=self-enhanced",
            "augment.self_enhance_start=0.5",
            "copy_paste.min_score=1.01",
        ],
    )
    torch.manual_seed(0)
    model = build_model(config, SPACE)
    step = VideoCupsStep(clips, config, total_steps=10, seed=0)
    batch = clips.batch(0, 0, 1, 2, 0, 0.0, torch.Generator().manual_seed(0))
    original = {int(i) for clip in batch for t in clip.targets for i in t.track_ids}
    warm = step.augment(model, batch, context(4))
    assert {int(i) for clip in warm for t in clip.targets for i in t.track_ids} - original
    after = step.augment(model, batch, context(5))
    for clip, out in zip(batch, after, strict=True):
        assert torch.equal(clip.images, out.images)
        assert [t.track_ids.tolist() for t in clip.targets] == [
            t.track_ids.tolist() for t in out.targets
        ]
