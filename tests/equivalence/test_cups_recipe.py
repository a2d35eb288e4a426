"""VideoCUPS' stage-2 recipe equals CUPS' training code (copy-paste, augmentation, optimiser).

Oracles, all from ../shared/reference-code/cups: CUPS' own config (``cups/config.py``'s
``get_default_config`` merged with ``configs/train_cityscapes.yaml``, loaded with yacs alone);
the constants of ``cups/augmentation.py`` and ``cups/pl_model_pseudo.py`` read with ``ast`` (the
modules import kornia and Lightning); CUPS' ``filter_predictions`` and ``get_bounding_boxes``
run through the README's import recipe (detectron2 from source, test-only torchvision stand-in);
torchvision's ``split_normalization_params`` as the stand-in writes it from its documentation.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import sys
import types
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from vpsbench_methods.videocups.model.config import load_training_config
from vpsbench_methods.videocups.model.copy_paste import CopyPasteConfig, instances_from_predictions
from vpsbench_methods.videocups.model.data import (
    BLUR_KERNEL,
    BLUR_SIGMA,
    COLOR_JITTER,
    COLOR_JITTER_PROBABILITY,
    GRAYSCALE_PROBABILITY,
    jitter_size,
)
from vpsbench_methods.videocups.model.network import PanopticCascadeMaskTrack, small_architecture
from vpsbench_methods.videocups.model.targets import boxes_from_masks
from vpsbench_methods.videocups.model.trainer import parameter_groups

from tests.equivalence.upstream import (
    REFERENCE_CODE,
    install_standins,
    require,
    require_packages,
)


@functools.cache
def _cups_config_module() -> types.ModuleType:
    path = require("cups", "cups", "config.py")
    require_packages("yacs")
    spec = importlib.util.spec_from_file_location("cups_config_oracle", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cups_training_config() -> Any:
    """CUPS' config for Cityscapes training: defaults merged with ``train_cityscapes.yaml``."""
    experiment = require("cups", "configs", "train_cityscapes.yaml")
    return _cups_config_module().get_default_config(str(experiment))


def calls(path: Path, scope: str) -> dict[str, dict[str, Any]]:
    """Literal arguments of the calls inside class or function ``scope`` of a source file.

    ``{callee name: {"args": [...], keyword: value, ...}}``; ``__init__`` defaults of a class
    scope come as ``{"__init__": {parameter: default}}``.
    """
    tree = ast.parse(path.read_text())
    node = next(
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.ClassDef | ast.FunctionDef) and n.name == scope
    )
    found: dict[str, dict[str, Any]] = {}
    for inner in ast.walk(node):
        if isinstance(inner, ast.FunctionDef) and inner.name == "__init__":
            arguments = inner.args.args[-len(inner.args.defaults) :] if inner.args.defaults else []
            found["__init__"] = {
                a.arg: ast.literal_eval(d)
                for a, d in zip(arguments, inner.args.defaults, strict=True)
            }
        if isinstance(inner, ast.Call) and isinstance(inner.func, ast.Name):
            values: dict[str, Any] = {}
            try:
                values["args"] = [ast.literal_eval(a) for a in inner.args]
            except ValueError:
                values["args"] = None
            for keyword in inner.keywords:
                if keyword.arg is None:
                    continue
                try:
                    values[keyword.arg] = ast.literal_eval(keyword.value)
                except ValueError:
                    values[keyword.arg] = None
            found[inner.func.id] = values
    return found


def test_paper_config_takes_cups_cityscapes_training_values() -> None:
    cups = cups_training_config()
    paper = load_training_config("paper")
    augmentation, training = cups.AUGMENTATION, cups.TRAINING
    # Self-enhanced copy-paste: confidence, count, warm-up with pseudo-label pastes.
    assert paper.copy_paste.min_score == augmentation.CONFIDENCE == 0.75
    assert paper.copy_paste.max_pasted_per_clip == augmentation.MAX_NUM_PASTED_OBJECTS == 8
    assert augmentation.COPY_PASTE
    assert paper.augment.copy_paste == "self-enhanced"
    assert paper.augment.self_enhance_start == augmentation.NUM_STEPS_STARTUP / training.STEPS
    # Training resolution and the resolution jitter: one of RESOLUTIONS per batch.
    size = (paper.model.input_height, paper.model.input_width)
    assert size == tuple(cups.DATA.CROP_RESOLUTION)
    generator = torch.Generator()
    jittered = [jitter_size(size, [scale], generator) for scale in paper.data.jitter_scales]
    assert jittered == [tuple(r) for r in augmentation.RESOLUTIONS]
    # Optimiser: AdamW values, clipping, precision; CUPS has no learning-rate schedule.
    assert training.OPTIMIZER == "adamw"
    assert paper.optim["lr"] == training.ADAMW.LEARNING_RATE
    assert paper.optim["weight_decay"] == training.ADAMW.WEIGHT_DECAY
    assert tuple(paper.optim["betas"]) == tuple(training.ADAMW.BETAS)
    assert paper.optim["grad_clip_norm"] == training.GRADIENT_CLIP_VAL
    assert training.PRECISION == "bf16" and paper.optim["amp_dtype"] == "bfloat16"
    source = require("cups", "cups", "pl_model_pseudo.py").read_text()
    assert "scheduler" not in source  # configure_optimizers returns the bare optimiser
    assert paper.optim["schedule"] == "constant" and paper.optim["warmup_steps"] == 0
    # DropLoss: CUPS' default tau is 0.4; VideoCUPS' paper sets tau_IoU = 0.5 (deliberate).
    assert training.DROP_LOSS and paper.loss.drop_loss
    assert training.DROP_LOSS_IOU_THRESHOLD == 0.4 and paper.loss.drop_loss_iou == 0.5


def test_copy_paste_and_augmentation_constants_equal_cups() -> None:
    path = require("cups", "cups", "augmentation.py")
    paper = load_training_config("paper")
    copy_paste = calls(path, "CopyPasteAugmentation")["__init__"]
    assert CopyPasteConfig().scale_range == paper.copy_paste.scale_range
    assert paper.copy_paste.scale_range == copy_paste["scale_range"] == (0.25, 1.5)
    assert copy_paste["use_random_horizontal_flipping"] and paper.copy_paste.flip_probability == 0.5
    assert (paper.copy_paste.min_box_size,) * 2 == copy_paste["min_bounding_box_size"]
    assert CopyPasteConfig().min_box_size == paper.copy_paste.min_box_size
    # The flip test is ``torch.rand(1).item() > 0.5``: probability 0.5.
    assert "torch.rand(1).item() > 0.5" in path.read_text()
    # Dataset augmentation of pseudo-label training: flip 0.5, resized crop of 70-100 % area.
    dataset = calls(path, "get_pseudo_label_augmentations")
    assert dataset["RandomHorizontalFlip"]["p"] == paper.data.horizontal_flip
    assert dataset["RandomResizedCrop"]["scale"] == paper.data.crop_scale
    # Photometric augmentation.
    photometric = calls(path, "PhotometricAugmentations")
    blur = photometric["RandomGaussianBlur"]
    assert blur["kernel_size"] == (BLUR_KERNEL, BLUR_KERNEL) and blur["sigma"] == BLUR_SIGMA
    assert blur["p"] == 1.0
    jitter = photometric["ColorJitter"]
    assert (jitter["brightness"], jitter["contrast"], jitter["saturation"], jitter["hue"]) == (
        COLOR_JITTER
    )
    assert jitter["p"] == COLOR_JITTER_PROBABILITY
    assert photometric["RandomGrayscale"]["p"] == GRAYSCALE_PROBABILITY
    assert paper.data.photometric


@functools.cache
def _cups_model_module() -> types.ModuleType:
    """``cups.model.model`` by the README's recipe (bare ``cups`` packages, stand-ins)."""
    install_standins()
    detectron2_root = str(REFERENCE_CODE / "detectron2")
    if detectron2_root not in sys.path:
        sys.path.append(detectron2_root)
    cups_package = REFERENCE_CODE / "cups" / "cups"
    for name, folder in (("cups", cups_package), ("cups.data", cups_package / "data")):
        if name not in sys.modules:
            package = types.ModuleType(name)
            package.__path__ = [str(folder)]
            sys.modules[name] = package
    import detectron2.config.defaults as defaults

    defaults._C.MODEL.DEVICE = "cpu"
    import cups.model.model

    return cups.model.model


def cups_model_module() -> types.ModuleType:
    require("cups", "cups", "model", "model.py")
    require("detectron2", "detectron2", "__init__.py")
    require_packages(
        "fvcore", "iopath", "yacs", "omegaconf", "termcolor", "tabulate", "cloudpickle",
        "pycocotools", "matplotlib", "colored",
    )  # fmt: skip
    return _cups_model_module()


def _rectangles(corners: Tensor, size: int) -> Tensor:
    """Masks (N, size, size) of rectangles ``(y1, x1, y2, x2)`` (end exclusive, clipped)."""
    masks = torch.zeros((len(corners), size, size), dtype=torch.bool)
    for k, (y1, x1, y2, x2) in enumerate(corners.clamp(0, size).tolist()):
        masks[k, y1:y2, x1:x2] = True
    return masks


def _random_corners(generator: torch.Generator, count: int, size: int) -> Tensor:
    """``count`` rectangles of at least 2 × 2 pixels inside a ``size`` × ``size`` image.

    (A one-pixel-thin pseudo-label box has area 0 in CUPS' inclusive boxes: its IoU with
    another thin box is 0 / 0, and the NaN drops every prediction of the image; not mirrored.)
    """
    top_left = torch.randint(0, size - 8, (count, 2), generator=generator)
    extent = torch.randint(2, 8, (count, 2), generator=generator)
    return torch.cat((top_left, top_left + extent), dim=1)


def test_predicted_instances_are_filtered_as_cups_filter_predictions() -> None:
    # Random predicted and pseudo-label rectangles on a 24 × 24 image, placed near each other so
    # that IoUs around 0.5 occur. CUPS' filter_predictions keeps a prediction iff its box (from
    # get_bounding_boxes) has IoU < 0.5 with every pseudo-label box; ours must keep the same.
    module = cups_model_module()
    from detectron2.structures import BitMasks, Boxes, Instances

    get_bounding_boxes = sys.modules["cups.data.utils"].get_bounding_boxes
    generator = torch.Generator().manual_seed(0)
    config = CopyPasteConfig(min_score=0.5, min_track_frames=1, max_overlap_iou=0.5)
    checked = dropped = 0
    size = 24
    for _ in range(60):
        corners = _random_corners(generator, 4, size)
        # Pseudo-labels near three of the predictions (corners moved by up to 2 px): IoUs
        # around 0.5 occur often.
        moved = corners[:3] + torch.randint(-2, 3, (3, 4), generator=generator)
        moved[:, 2:] = torch.maximum(moved[:, 2:], moved[:, :2].clamp(min=0) + 2)
        predicted, pseudo = _rectangles(corners, size), _rectangles(moved, size)

        def label_format(masks: Tensor) -> dict[str, Any]:
            boxes = torch.cat([get_bounding_boxes(mask.long()) for mask in masks])
            return {
                "instances": Instances(
                    (size, size),
                    gt_masks=BitMasks(masks),
                    gt_boxes=Boxes(boxes.float()),
                    gt_classes=torch.zeros(len(masks), dtype=torch.int64),
                )
            }

        prediction = label_format(predicted)
        boxes = prediction["instances"].gt_boxes.tensor.clone()
        batch = [label_format(pseudo)]
        kept_cups = module.filter_predictions([prediction], batch)[0]["instances"]  # in place
        cups_boxes = {tuple(b.tolist()) for b in kept_cups.gt_boxes.tensor}

        images = torch.zeros((1, 3, size, size))
        ours = instances_from_predictions(
            images,
            [predicted],
            [torch.arange(4)],
            [torch.ones(4)],
            [torch.arange(1, 5)],
            config,
            [boxes_from_masks(pseudo)],
        )
        # Classes were set to the mask index: the kept instances name the kept masks.
        our_boxes = {tuple(boxes[instance.thing_class].tolist()) for instance in ours}
        assert our_boxes == cups_boxes
        checked += 4
        dropped += 4 - len(cups_boxes)
    assert dropped > 10 and checked - dropped > 10  # both outcomes are exercised


def test_optimizer_groups_equal_split_normalization_params() -> None:
    # CUPS' configure_optimizers: split_normalization_params(model) -> [norm, other], the norm
    # group with weight decay 0. The network here has GroupNorm/BatchNorm layers and convolution
    # biases (which keep their decay, as in CUPS).
    require("cups", "cups", "pl_model_pseudo.py")
    install_standins()
    from torchvision.ops._utils import split_normalization_params

    torch.manual_seed(0)
    model = PanopticCascadeMaskTrack(small_architecture(2, 2), embed_dim=16)
    norm, other = split_normalization_params(model)
    groups = parameter_groups(model, 1e-5)
    assert [g["weight_decay"] for g in groups] == [0.0, 1e-5]
    assert [id(p) for p in groups[0]["params"]] == [id(p) for p in norm]
    assert [id(p) for p in groups[1]["params"]] == [id(p) for p in other]
    assert len(norm) > 0 and len(other) > 0
