"""Panoptic Cascade Mask R-CNN: shapes, detectron2 parameter names, checkpoints, panoptic fusion."""

from __future__ import annotations

import pickle
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor

from vpsbench.cues.base import MissingWeightsError
from vpsbench.models import (
    CheckpointMismatchError,
    PanopticCascadeConfig,
    PanopticCascadeRCNN,
    PanopticOutput,
    build_from_checkpoint,
    combine_panoptic,
    fuse_instances,
    infer_class_counts,
    load_detectron2_checkpoint,
)
from vpsbench.models.backbone import FrozenBatchNorm2d

THINGS, STUFF = 3, 4
HEIGHT, WIDTH = 64, 96


def tiny_config(**overrides: object) -> PanopticCascadeConfig:
    """CUPS' architecture at a quarter of its widths, thresholds open so random weights detect."""
    config = PanopticCascadeConfig.cups(THINGS, STUFF).scaled(0.25)
    defaults: dict[str, object] = {
        "roi_score_thresh_test": 0.0,
        "combine_instances_score_thresh": 0.0,
        "combine_stuff_area_thresh": 16,
        "detections_per_image": 12,
        "rpn_pre_nms_topk_test": 300,
        "rpn_post_nms_topk_test": 100,
    }
    defaults.update(overrides)
    return replace(config, **defaults)  # type: ignore[arg-type]


def tiny_model(seed: int, **overrides: object) -> PanopticCascadeRCNN:
    """A tiny model with random weights and random (valid) batch-norm statistics."""
    torch.manual_seed(seed)
    model = PanopticCascadeRCNN(tiny_config(**overrides))
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, FrozenBatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.1)
                module.running_mean.normal_(0.0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    return model


def image_batch(count: int = 2, seed: int = 0) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (count, 3, HEIGHT, WIDTH), generator=generator, dtype=torch.uint8)


@pytest.fixture(scope="module")
def model() -> PanopticCascadeRCNN:
    return tiny_model(0)


@pytest.fixture(scope="module")
def outputs(model: PanopticCascadeRCNN) -> list[PanopticOutput]:
    return model(image_batch())


def assert_same_outputs(first: list[PanopticOutput], second: list[PanopticOutput]) -> None:
    for a, b in zip(first, second, strict=True):
        for name in ("boxes", "scores", "classes", "masks", "semantic_logits"):
            assert torch.equal(getattr(a, name), getattr(b, name)), name


def test_forward_shapes(outputs: list[PanopticOutput]) -> None:
    assert len(outputs) == 2
    for output in outputs:
        count = output.boxes.shape[0]
        assert 0 < count <= 12
        assert output.boxes.shape == (count, 4)
        assert output.scores.shape == output.classes.shape == (count,)
        assert output.masks.shape == (count, HEIGHT, WIDTH) and output.masks.dtype == torch.bool
        assert output.semantic_logits.shape == (1 + STUFF, HEIGHT, WIDTH)
        assert ((output.classes >= 0) & (output.classes < THINGS)).all()
        assert ((output.scores >= 0) & (output.scores <= 1)).all()
        assert (output.scores[:-1] >= output.scores[1:]).all()
        assert (output.boxes[:, 0] >= 0).all() and (output.boxes[:, 2] <= WIDTH).all()
        assert (output.boxes[:, 1] >= 0).all() and (output.boxes[:, 3] <= HEIGHT).all()
        assert (output.boxes[:, 2] > output.boxes[:, 0]).all()


def test_forward_pads_odd_sizes_and_rescales_outputs(model: PanopticCascadeRCNN) -> None:
    images = image_batch(1)[:, :, :50, :70]
    (output,) = model(images, output_size=(100, 140))
    assert output.semantic_logits.shape == (1 + STUFF, 100, 140)
    assert output.masks.shape[1:] == (100, 140)
    assert (output.boxes[:, 2] <= 140).all() and (output.boxes[:, 3] <= 100).all()


def test_state_dict_uses_detectron2_names(model: PanopticCascadeRCNN) -> None:
    state = model.state_dict()
    expected = [
        "backbone.bottom_up.stem.conv1.weight",
        "backbone.bottom_up.stem.conv1.norm.running_var",
        "backbone.bottom_up.res2.0.shortcut.weight",
        "backbone.bottom_up.res2.0.conv1.norm.weight",
        "backbone.bottom_up.res5.2.conv3.weight",
        "backbone.fpn_lateral2.weight",
        "backbone.fpn_output5.norm.bias",
        "proposal_generator.rpn_head.conv.weight",
        "proposal_generator.rpn_head.objectness_logits.bias",
        "proposal_generator.rpn_head.anchor_deltas.weight",
        "roi_heads.box_head.2.fc2.weight",
        "roi_heads.box_predictor.0.cls_score.weight",
        "roi_heads.box_predictor.2.bbox_pred.bias",
        "roi_heads.mask_head.mask_fcn4.weight",
        "roi_heads.mask_head.deconv.weight",
        "roi_heads.mask_head.predictor.bias",
        "sem_seg_head.p2.0.weight",
        "sem_seg_head.p2.0.norm.weight",
        "sem_seg_head.p5.4.norm.bias",
        "sem_seg_head.predictor.weight",
    ]
    for key in expected:
        assert key in state, key
    assert "backbone.bottom_up.res4.6.conv1.weight" not in state  # ResNet-50: 3, 4, 6, 3 blocks
    assert state["roi_heads.box_predictor.1.cls_score.weight"].shape[0] == THINGS + 1
    assert state["roi_heads.box_predictor.1.bbox_pred.weight"].shape[0] == 4  # class-agnostic
    assert state["roi_heads.mask_head.predictor.weight"].shape[0] == THINGS
    assert state["sem_seg_head.predictor.weight"].shape[0] == STUFF + 1
    assert state["proposal_generator.rpn_head.anchor_deltas.weight"].shape[0] == 12
    assert not any(key.startswith("pixel_") for key in state)
    assert infer_class_counts(state) == (THINGS, STUFF)


def test_stride_placement_follows_stride_in_1x1() -> None:
    msra = PanopticCascadeRCNN(replace(tiny_config(), stride_in_1x1=True))
    torchvision_style = PanopticCascadeRCNN(tiny_config())
    assert msra.backbone.bottom_up.res3[0].conv1.stride == (2, 2)
    assert msra.backbone.bottom_up.res3[0].conv2.stride == (1, 1)
    assert torchvision_style.backbone.bottom_up.res3[0].conv1.stride == (1, 1)
    assert torchvision_style.backbone.bottom_up.res3[0].conv2.stride == (2, 2)


def test_presets() -> None:
    cups = PanopticCascadeConfig.cups()
    assert cups.num_pseudo_classes == 27 and cups.combine_stuff_area_thresh == 4096
    assert cups.input_format == "RGB" and cups.pixel_scale == pytest.approx(1 / 255)
    u2seg = PanopticCascadeConfig.u2seg()
    assert (u2seg.num_thing_classes, u2seg.num_stuff_classes) == (800, 27)
    assert u2seg.num_semantic_channels == 28
    default = PanopticCascadeConfig(80, 53)
    assert default.input_format == "BGR" and default.stride_in_1x1
    assert default.rpn_nms_thresh == 0.7 and default.roi_score_thresh_test == 0.05
    with pytest.raises(ValueError, match="thing"):
        PanopticCascadeConfig(0, 3)


def test_inference_only(model: PanopticCascadeRCNN) -> None:
    assert not model.training
    with pytest.raises(NotImplementedError):
        model.train()


def test_checkpoint_round_trip_pth(tmp_path: Path, outputs: list[PanopticOutput]) -> None:
    source = tiny_model(0)
    path = tmp_path / "model_final.pth"
    torch.save({"model": source.state_dict(), "iteration": 90000}, path)
    target = tiny_model(1)
    images = image_batch()
    assert not torch.equal(target(images)[0].semantic_logits, outputs[0].semantic_logits)
    report = load_detectron2_checkpoint(target, path)
    assert not report.missing and not report.unexpected
    assert_same_outputs(target(images), outputs)


def test_checkpoint_pkl_with_numpy_arrays(tmp_path: Path, outputs: list[PanopticOutput]) -> None:
    arrays = {key: value.numpy().copy() for key, value in tiny_model(0).state_dict().items()}
    arrays["backbone.bottom_up.stem.conv1.norm.num_batches_tracked"] = np.array(7)
    path = tmp_path / "model.pkl"
    with path.open("wb") as handle:
        pickle.dump({"model": arrays, "__author__": "test", "matching_heuristics": True}, handle)
    target = tiny_model(1)
    report = load_detectron2_checkpoint(target, path)
    assert report.ignored == ("backbone.bottom_up.stem.conv1.norm.num_batches_tracked",)
    assert_same_outputs(target(image_batch()), outputs)


def test_backbone_only_pkl_gets_prefix_and_loads_partially(tmp_path: Path) -> None:
    source = tiny_model(0).state_dict()
    bare = {
        key.removeprefix("backbone.bottom_up."): value.numpy()
        for key, value in source.items()
        if key.startswith("backbone.bottom_up.")
    }
    path = tmp_path / "dino_RN50_pretrain_d2_format.pkl"
    with path.open("wb") as handle:
        pickle.dump({"model": bare}, handle)
    target = tiny_model(1)
    with pytest.raises(CheckpointMismatchError, match="missing keys"):
        load_detectron2_checkpoint(target, path)
    report = load_detectron2_checkpoint(target, path, strict=False)
    assert "roi_heads.mask_head.predictor.weight" in report.missing
    assert torch.equal(
        target.state_dict()["backbone.bottom_up.res3.1.conv2.weight"],
        source["backbone.bottom_up.res3.1.conv2.weight"],
    )


def test_lightning_checkpoint_drops_teacher(tmp_path: Path, outputs: list[PanopticOutput]) -> None:
    state = tiny_model(0).state_dict()
    wrapped = {f"model.model.{key}": value for key, value in state.items()}  # TTA wrapper
    wrapped.update({f"teacher_model.{key}": value + 1 for key, value in state.items()})
    path = tmp_path / "cups.ckpt"
    torch.save({"state_dict": wrapped, "global_step": 4000}, path)
    target = tiny_model(1)
    load_detectron2_checkpoint(target, path)
    assert_same_outputs(target(image_batch()), outputs)
    built = build_from_checkpoint(path, "cups", overrides={"width_multiplier": 0.25})
    assert (built.config.num_thing_classes, built.config.num_stuff_classes) == (THINGS, STUFF)


def test_checkpoint_mismatch_is_one_error_naming_every_key(tmp_path: Path) -> None:
    state = tiny_model(0).state_dict()
    del state["roi_heads.box_head.1.fc1.bias"]
    state["sem_seg_head.predictor.weight"] = torch.zeros(9, 32, 1, 1)
    state["sem_seg_head.predictor.bias"] = torch.zeros(9)
    state["roi_heads.extra.weight"] = torch.zeros(1)
    path = tmp_path / "bad.pth"
    torch.save({"model": state}, path)
    with pytest.raises(CheckpointMismatchError) as caught:
        load_detectron2_checkpoint(tiny_model(1), path)
    message = str(caught.value)
    assert message.startswith(str(path))
    assert "missing keys (1): roi_heads.box_head.1.fc1.bias" in message
    assert "unexpected keys (1): roi_heads.extra.weight" in message
    misshaped = "sem_seg_head.predictor.weight checkpoint (9, 32, 1, 1) vs model (5, 32, 1, 1)"
    assert misshaped in message
    assert "num_thing_classes=3, num_stuff_classes=8" in message


def test_misshaped_key_fails_even_when_not_strict(tmp_path: Path) -> None:
    state = tiny_model(0).state_dict()
    state["backbone.fpn_lateral3.weight"] = torch.zeros(1)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointMismatchError, match=r"backbone\.fpn_lateral3\.weight"):
        load_detectron2_checkpoint(tiny_model(1), path, strict=False)


def test_missing_weights_file_names_where_to_get_them(tmp_path: Path) -> None:
    with pytest.raises(MissingWeightsError, match=r"tudatalib.*u2seg/U2Seg"):
        load_detectron2_checkpoint(tiny_model(0), tmp_path / "cups.ckpt")


def _check_frame_layout(semantic: np.ndarray, instance: np.ndarray, num_stuff: int) -> None:
    assert semantic.dtype == np.int32 and instance.dtype == np.int32
    assert (instance[semantic < num_stuff] == 0).all()  # stuff and void carry no instance
    assert (instance[semantic >= num_stuff] > 0).all()  # every thing pixel has an instance
    ids = np.unique(instance[instance > 0])
    assert ids.tolist() == list(range(1, len(ids) + 1))
    for instance_id in ids:
        assert len(np.unique(semantic[instance == instance_id])) == 1


def test_predict_panoptic_frame(model: PanopticCascadeRCNN) -> None:
    image = image_batch(1)[0].permute(1, 2, 0).numpy()
    frame = model.predict_panoptic(image)
    assert frame.shape == (HEIGHT, WIDTH)
    assert frame.semantic.min() >= -1 and frame.semantic.max() < STUFF + THINGS
    assert frame.instance.max() >= 1
    assert (frame.semantic >= 0).any()
    _check_frame_layout(frame.semantic, frame.instance, STUFF)


def test_predict_panoptic_resizes_and_returns_input_size() -> None:
    model = tiny_model(0, test_min_size=48, test_max_size=200)
    image = image_batch(1)[0].permute(1, 2, 0).numpy()
    frame = model.predict_panoptic(image)
    assert frame.shape == (HEIGHT, WIDTH)
    _check_frame_layout(frame.semantic, frame.instance, STUFF)


def test_combine_follows_detectron2_rule() -> None:
    config = PanopticCascadeConfig(
        num_thing_classes=2,
        num_stuff_classes=2,
        combine_overlap_thresh=0.5,
        combine_stuff_area_thresh=10,
        combine_instances_score_thresh=0.5,
    )
    height, width = 10, 10
    masks = torch.zeros((4, height, width), dtype=torch.bool)
    masks[0, 0:4, 0:4] = True  # score 0.9, class 1 → instance 1
    masks[1, 2:6, 2:6] = True  # score 0.8, overlaps 4/16 ≤ 0.5 → instance 2 on its free pixels
    masks[2, 0:4, 0:3] = True  # score 0.7, 12/12 covered → dropped
    masks[3, 8:10, 8:10] = True  # score 0.4 < 0.5 → dropped
    logits = torch.zeros((3, height, width))
    logits[1, :, :5] = 1.0  # stuff 0 on the left: 32 free pixels ≥ 10
    logits[2, 9, 5:] = 2.0  # stuff 1 on 5 pixels < 10 → void
    logits[0, :9, 5:] = 3.0  # the "thing" channel on the rest → void where no instance
    output = PanopticOutput(
        boxes=torch.zeros((4, 4)),
        scores=torch.tensor([0.9, 0.8, 0.7, 0.4]),
        classes=torch.tensor([1, 0, 0, 1]),
        masks=masks,
        semantic_logits=logits,
    )
    kept = fuse_instances(output, config)
    assert [index for index, _ in kept] == [0, 1]
    assert [int(mask.sum()) for _, mask in kept] == [16, 16 - 4]
    frame = combine_panoptic(output, config)
    expected_instance = np.zeros((height, width), dtype=np.int32)
    expected_instance[2:6, 2:6] = 2
    expected_instance[0:4, 0:4] = 1
    expected_semantic = np.full((height, width), -1, dtype=np.int32)
    expected_semantic[:, :5] = 0
    expected_semantic[expected_instance == 1] = 2 + 1
    expected_semantic[expected_instance == 2] = 2 + 0
    np.testing.assert_array_equal(frame.instance, expected_instance)
    np.testing.assert_array_equal(frame.semantic, expected_semantic)


def test_anchors_cover_every_level(model: PanopticCascadeRCNN) -> None:
    features = [torch.zeros((1, 1, HEIGHT // s, WIDTH // s)) for s in (4, 8, 16, 32, 64)]
    anchors = model.proposal_generator.anchors(features)
    assert [a.shape[0] for a in anchors] == [f.shape[2] * f.shape[3] * 3 for f in features]
    sizes = [float((a[1, 2] - a[1, 0]) * (a[1, 3] - a[1, 1])) ** 0.5 for a in anchors]
    assert sizes == pytest.approx([32.0, 64.0, 128.0, 256.0, 512.0])


@pytest.mark.slow
def test_full_size_u2seg_matches_published_shapes() -> None:
    model = PanopticCascadeRCNN(PanopticCascadeConfig.u2seg())
    trunk = model.backbone.bottom_up
    convs = sum(parameter.numel() for parameter in trunk.parameters())
    norms = sum(
        buffer.numel()
        for name, buffer in trunk.named_buffers()
        if name.endswith(("norm.weight", "norm.bias"))
    )
    assert convs + norms == 23_508_032  # torchvision's ResNet-50 (25,557,032) without its fc layer
    state = model.state_dict()
    shapes = {
        "backbone.bottom_up.res2.0.conv1.weight": (64, 64, 1, 1),
        "backbone.bottom_up.res5.0.shortcut.weight": (2048, 1024, 1, 1),
        "backbone.fpn_lateral5.weight": (256, 2048, 1, 1),
        "backbone.fpn_output2.weight": (256, 256, 3, 3),
        "proposal_generator.rpn_head.objectness_logits.weight": (3, 256, 1, 1),
        "roi_heads.box_head.0.fc1.weight": (1024, 256 * 7 * 7),
        "roi_heads.box_predictor.2.cls_score.weight": (801, 1024),
        "roi_heads.mask_head.predictor.weight": (800, 256, 1, 1),
        "sem_seg_head.p4.2.weight": (128, 128, 3, 3),
        "sem_seg_head.predictor.weight": (28, 128, 1, 1),
    }
    for key, shape in shapes.items():
        assert tuple(state[key].shape) == shape, key
    (output,) = model(image_batch(1))
    assert output.semantic_logits.shape == (28, HEIGHT, WIDTH)
