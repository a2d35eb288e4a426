"""Panoptic Cascade Mask R-CNN (cups-sort, u2seg-sort, VideoCUPS' backbone) = CUPS + detectron2.

Upstream is CUPS' own builder, ``cups.model.model.panoptic_cascade_mask_r_cnn`` (its yaml configs
on detectron2's ``PanopticFPN`` with CUPS' cascade ROI heads and semantic head), built on the CPU
(SyncBN becomes BN there, as CUPS does) with seeded random weights and non-trivial batch-norm
statistics. Its weights are saved in the containers upstream writes and loaded through vpsbench's
public path (``build_from_checkpoint``, which ``--set weights=PATH`` of cups-sort / u2seg-sort
reaches):

* a CUPS Lightning ``.ckpt`` as ``pl_model_self.py`` leaves it (the published ``cups.ckpt``): the
  frozen-BN student under ``model.``, the test-time-augmentation teacher under
  ``teacher_model.model.``, and ``hyper_parameters`` holding CUPS' yacs ``CfgNode``, which must
  be read without unpickling code;
* the same after pseudo-label training (``pl_model_pseudo.py``: trainable BN, no teacher);
* a U2Seg-style detectron2 ``.pkl`` (``{"model": {name: numpy array}, "__author__": ...}``) and
  the ``.pth`` detectron2's trainer writes, against detectron2's own ``PanopticFPN`` +
  ``CascadeROIHeads`` in U2Seg's configuration (RGB 0..255, ImageNet mean/std).

Both networks then run on the same image (120×200: padding is exercised) and every intermediate
is compared: RPN proposals, each cascade stage's input boxes, RoIAlign features, class
probabilities and box deltas, the final detections, mask logits and pasted masks, semantic logits
and the panoptic map. Numeric checks use CUPS' architecture at a quarter of its widths
(detectron2 config overrides applied after CUPS' yaml) with thresholds under which random
weights detect; the full-size 27-class model is checked key by key, run through ``vpsbench
run-method cups-sort`` end to end, and (marked slow, ~16 s) compared numerically with CUPS' own
thresholds. ``pytest -s`` prints the measured differences.
"""

from __future__ import annotations

import functools
import os
import pickle
import sys
import types
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch import Tensor, nn  # noqa: E402

from tests.cli_runner import run_cli  # noqa: E402
from tests.equivalence.upstream import (  # noqa: E402
    REFERENCE_CODE,
    install_standins,
    require,
    require_packages,
)
from vpsbench.models import panoptic_cascade_rcnn as cascade  # noqa: E402
from vpsbench.models.checkpoints import (  # noqa: E402
    build_from_checkpoint,
    read_checkpoint_safely,
)
from vpsbench.models.panoptic_cascade_rcnn import (  # noqa: E402
    PanopticCascadeConfig,
    PanopticCascadeRCNN,
    PanopticOutput,
    combine_panoptic,
)

TOLERANCE = 1e-4
THINGS, STUFF = 10, 17  # vpsbench's cups preset: CUPS' 27 pseudo-classes (Cityscapes)
HEIGHT, WIDTH = 120, 200  # not multiples of 32: padding and cropping are exercised
WIDTH_MULTIPLIER = 0.25
#: Detectron2 config values of the reduced-width network (``width_multiplier`` 0.25 in vpsbench).
REDUCED_WIDTHS = (
    "MODEL.RESNETS.STEM_OUT_CHANNELS", 16,
    "MODEL.RESNETS.RES2_OUT_CHANNELS", 64,
    "MODEL.RESNETS.WIDTH_PER_GROUP", 16,
    "MODEL.FPN.OUT_CHANNELS", 64,
    "MODEL.ROI_BOX_HEAD.FC_DIM", 256,
    "MODEL.ROI_MASK_HEAD.CONV_DIM", 64,
    "MODEL.SEM_SEG_HEAD.CONVS_DIM", 32,
)  # fmt: skip
#: Thresholds under which random weights detect: score and fusion thresholds, stuff area.
SCORE_THRESHOLD = 0.05
STUFF_AREA = 256
#: State-dict keys of the full-size model (README's checked recipe: 431 with BN's counters).
FULL_SIZE_KEYS = 431
#: BN's ``num_batches_tracked`` counters (ResNet + FPN): detectron2's frozen-BN conversion keeps
#: them, so both CUPS layouts carry them; vpsbench ignores them.
BN_COUNTERS = 61

pytestmark = [
    pytest.mark.filterwarnings("ignore:torch.meshgrid:UserWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]


# --------------------------------------------------------------------------------------------
# Upstream: detectron2 + CUPS, imported once per process (detectron2's registries refuse a second
# registration, and another test imports detectron2 too: never purge it from sys.modules).
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Upstream:
    """The upstream pieces the tests use."""

    cups_root: Path  # reference-code/cups: CUPS' builder reads its yaml relative to it
    model_module: types.ModuleType  # cups.model.model
    get_cfg: Callable[[], Any]  # detectron2.config.get_cfg
    get_default_config: Callable[[], Any]  # cups.config.get_default_config (Lightning hparams)
    frozen_batch_norm: Any  # detectron2.layers.FrozenBatchNorm2d
    build_model: Callable[[Any], nn.Module]  # detectron2.modeling.build_model (U2Seg's models)


def upstream() -> Upstream:
    """Detectron2 + CUPS from ../shared/reference-code, or skip saying what is missing."""
    require("cups", "cups", "model", "model.py")
    require("detectron2", "detectron2", "__init__.py")
    require_packages(
        "fvcore", "iopath", "yacs", "omegaconf", "termcolor", "tabulate", "cloudpickle",
        "pycocotools", "matplotlib", "colored",
    )  # fmt: skip
    return _import_upstream()


@functools.cache
def _import_upstream() -> Upstream:
    """README's checked recipe: stand-ins, bare ``cups``/``cups.data`` packages, CPU device."""
    install_standins()
    detectron2_root = str(REFERENCE_CODE / "detectron2")
    if detectron2_root not in sys.path:
        sys.path.insert(0, detectron2_root)
    cups_package = REFERENCE_CODE / "cups" / "cups"
    # cups/__init__.py and cups/data/__init__.py import Lightning, kornia and datasets: bare
    # packages let ``cups.model`` import only what the network needs.
    for name, folder in (("cups", cups_package), ("cups.data", cups_package / "data")):
        if name not in sys.modules:
            package = types.ModuleType(name)
            package.__path__ = [str(folder)]
            sys.modules[name] = package
    import detectron2.config.defaults as defaults
    from detectron2.config import get_cfg
    from detectron2.layers import FrozenBatchNorm2d
    from detectron2.modeling import build_model

    defaults._C.MODEL.DEVICE = "cpu"  # CUPS swaps SyncBN for BN only on the CPU
    import cups.config
    import cups.model.model

    return Upstream(
        cups_root=REFERENCE_CODE / "cups",
        model_module=cups.model.model,
        get_cfg=get_cfg,
        get_default_config=cups.config.get_default_config,
        frozen_batch_norm=FrozenBatchNorm2d,
        build_model=build_model,
    )


@contextmanager
def working_directory(path: Path) -> Iterator[None]:
    """Run a block in ``path`` (CUPS' builder opens ``cups/model/*.yaml`` relative to it)."""
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def build_upstream(
    up: Upstream,
    *,
    seed: int,
    overrides: Sequence[object] = (),
    confidence_threshold: float = SCORE_THRESHOLD,
) -> tuple[nn.Module, Any]:
    """CUPS' ``panoptic_cascade_mask_r_cnn`` as ``build_model_pseudo`` calls it, and its cfg.

    ``overrides`` (detectron2 ``KEY, value`` pairs) are merged right after CUPS' yaml, before the
    builder sets its own values, so that everything else is CUPS' configuration.
    """
    captured: list[Any] = []

    def get_cfg() -> Any:
        cfg = up.get_cfg()
        merge_yaml = cfg.merge_from_file

        def merge_from_file(*args: Any, **kwargs: Any) -> None:
            merge_yaml(*args, **kwargs)
            cfg.merge_from_list(list(overrides))

        # An instance attribute (CfgNode would store a plain assignment as a config key).
        object.__setattr__(cfg, "merge_from_file", merge_from_file)
        captured.append(cfg)
        return cfg

    torch.manual_seed(seed)
    with (
        mock.patch.object(up.model_module, "get_cfg", get_cfg),
        working_directory(up.cups_root),
    ):
        model = up.model_module.panoptic_cascade_mask_r_cnn(
            load_dino=False,
            num_clusters_things=THINGS,
            num_clusters_stuffs=STUFF + 1,  # stuff classes plus the single "thing" class
            confidence_threshold=confidence_threshold,
        )
    randomize(model, seed)
    return model.eval(), captured[0]


def build_u2seg_upstream(up: Upstream, *, seed: int, overrides: Sequence[object]) -> nn.Module:
    """U2Seg's network: detectron2's own ``PanopticFPN`` + ``CascadeROIHeads`` + semantic FPN.

    U2Seg's eval config (configs/COCO-PanopticSegmentation/u2seg_eval_800.yaml of
    github.com/u2seg/U2Seg, not in reference-code) on detectron2's Base-Panoptic-FPN.yaml:
    class-agnostic cascade boxes, STRIDE_IN_1X1 False, SyncBN (BN on the CPU), RPN NMS 0.65,
    ImageNet mean/std in RGB 0..255.
    """
    u2seg = PanopticCascadeConfig.u2seg(THINGS, STUFF)
    cfg = up.get_cfg()
    base = REFERENCE_CODE / "detectron2" / "configs" / "COCO-PanopticSegmentation"
    cfg.merge_from_file(str(base / "Base-Panoptic-FPN.yaml"))
    cfg.merge_from_list(
        [
            "MODEL.DEVICE", "cpu",
            "MODEL.MASK_ON", True,
            "MODEL.RESNETS.DEPTH", 50,
            "MODEL.RESNETS.STRIDE_IN_1X1", False,
            "MODEL.RESNETS.NORM", "BN",
            "MODEL.FPN.NORM", "BN",
            "MODEL.ROI_HEADS.NAME", "CascadeROIHeads",
            "MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG", True,
            "MODEL.RPN.NMS_THRESH", 0.65,
            "MODEL.PIXEL_MEAN", list(u2seg.pixel_mean),
            "MODEL.PIXEL_STD", list(u2seg.pixel_std),
            "INPUT.FORMAT", "RGB",
            "MODEL.ROI_HEADS.NUM_CLASSES", THINGS,
            "MODEL.SEM_SEG_HEAD.NUM_CLASSES", STUFF + 1,
            "MODEL.ROI_HEADS.SCORE_THRESH_TEST", SCORE_THRESHOLD,
            "MODEL.PANOPTIC_FPN.COMBINE.INSTANCES_CONFIDENCE_THRESH", SCORE_THRESHOLD,
            *overrides,
        ]
    )  # fmt: skip
    cfg.freeze()
    torch.manual_seed(seed)
    model = up.build_model(cfg)
    randomize(model, seed)
    return model.eval()


def randomize(model: nn.Module, seed: int) -> None:
    """Non-trivial norm statistics and predictors that give varied scores, boxes and masks."""
    generator = torch.Generator().manual_seed(seed)

    def fill(tensor: Tensor, low: float, high: float) -> None:
        tensor.copy_(torch.rand(tensor.shape, generator=generator) * (high - low) + low)

    norms = [module for module in model.modules() if isinstance(module, nn.BatchNorm2d)]
    with torch.no_grad():
        # Random affine parameters, then the statistics of a random input (so that activations
        # keep their scale through the randomly initialised ResNet), then perturbed statistics.
        for norm in norms:
            fill(norm.weight, 0.5, 1.5)
            fill(norm.bias, -0.2, 0.2)
            norm.momentum = 1.0
        backbone: Any = model.backbone  # type: ignore[union-attr]
        backbone.train()
        backbone(torch.randn((2, 3, 128, 224), generator=generator))
        backbone.eval()
        for norm in norms:
            norm.momentum = 0.1
            shape = norm.running_mean.shape
            norm.running_mean.add_(torch.randn(shape, generator=generator) * 0.05)
            norm.running_var.mul_(torch.exp(torch.randn(shape, generator=generator) * 0.1))
            norm.num_batches_tracked.fill_(4000)
        for module in model.modules():
            if isinstance(module, nn.GroupNorm):
                fill(module.weight, 0.5, 1.5)
                fill(module.bias, -0.2, 0.2)
        roi_heads: Any = model.roi_heads  # type: ignore[union-attr]
        for predictor in roi_heads.box_predictor:
            fill(predictor.cls_score.weight, -0.05, 0.05)
            fill(predictor.cls_score.bias, -1.0, 1.0)
            fill(predictor.bbox_pred.weight, -0.01, 0.01)
            fill(predictor.bbox_pred.bias, -0.2, 0.2)
        fill(roi_heads.mask_head.predictor.weight, -0.2, 0.2)
        fill(roi_heads.mask_head.predictor.bias, -1.0, 1.0)


def make_image(seed: int = 0) -> np.ndarray:
    """An RGB uint8 image with smooth structure and noise (HEIGHT × WIDTH × 3)."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand((1, 3, 6, 10), generator=generator)
    smooth = nn.functional.interpolate(coarse, size=(HEIGHT, WIDTH), mode="bilinear")[0]
    noise = torch.rand((3, HEIGHT, WIDTH), generator=generator) * 0.2
    image = ((smooth * 0.8 + noise).clamp(0, 1) * 255).round().to(torch.uint8)
    return image.permute(1, 2, 0).numpy()


# --------------------------------------------------------------------------------------------
# Running both networks and recording their intermediates.
# --------------------------------------------------------------------------------------------


@dataclass
class Trace:
    """One image's intermediates and outputs, in vpsbench's layout for the panoptic map."""

    proposals: Tensor
    stage_boxes: list[Tensor]  # input boxes of each cascade stage (stage 0: the proposals)
    stage_features: list[Tensor]  # 7×7 RoIAlign features of those boxes
    stage_logits: list[Tensor]  # class logits (background last)
    stage_deltas: list[Tensor]  # class-agnostic box deltas
    mask_boxes: Tensor  # the detections the mask head sees
    mask_logits: Tensor
    boxes: Tensor
    scores: Tensor
    classes: Tensor
    masks: Tensor
    semantic_logits: Tensor
    semantic: np.ndarray
    instance: np.ndarray


def run_upstream(model: nn.Module, image: np.ndarray, divisor: float = 255.0) -> Trace:
    """Upstream's inference (``model([{"image": ...}])``) with hooks on its modules.

    CUPS feeds ``image / 255.0`` (cups/data/utils.py ``load_image``); U2Seg feeds 0..255 (1.0).
    """
    roi_heads: Any = model.roi_heads  # type: ignore[union-attr]
    record: dict[str, Any] = {"boxes": [], "features": [], "logits": [], "deltas": []}

    def on_proposals(module: nn.Module, args: Any, output: Any) -> None:
        record["proposals"] = output[0][0].proposal_boxes.tensor.clone()

    def on_box_pooler(module: nn.Module, args: Any, output: Tensor) -> None:
        record["boxes"].append(args[1][0].tensor.clone())
        record["features"].append(output.clone())

    def on_predictor(module: nn.Module, args: Any, output: tuple[Tensor, Tensor]) -> None:
        record["logits"].append(output[0].clone())
        record["deltas"].append(output[1].clone())

    def on_mask_pooler(module: nn.Module, args: Any, output: Tensor) -> None:
        record["mask_boxes"] = args[1][0].tensor.clone()

    def on_mask_predictor(module: nn.Module, args: Any, output: Tensor) -> None:
        record["mask_logits"] = output.clone()

    hooks = [
        model.proposal_generator.register_forward_hook(on_proposals),  # type: ignore[union-attr]
        roi_heads.box_pooler.register_forward_hook(on_box_pooler),
        roi_heads.mask_pooler.register_forward_hook(on_mask_pooler),
        roi_heads.mask_head.predictor.register_forward_hook(on_mask_predictor),
        *(p.register_forward_hook(on_predictor) for p in roi_heads.box_predictor),
    ]
    tensor = torch.from_numpy(image).permute(2, 0, 1).float() / divisor
    try:
        with torch.no_grad():
            output = model([{"image": tensor}])[0]
    finally:
        for hook in hooks:
            hook.remove()
    instances = output["instances"]
    panoptic, segments = output["panoptic_seg"]
    semantic = np.full(panoptic.shape, -1, dtype=np.int32)
    instance = np.zeros(panoptic.shape, dtype=np.int32)
    for segment in segments:
        pixels = (panoptic == segment["id"]).numpy()
        if segment["isthing"]:  # things come first, ids 1..N in fusion order
            semantic[pixels] = STUFF + segment["category_id"]
            instance[pixels] = segment["id"]
        else:  # semantic channel c >= 1 is stuff class c - 1
            semantic[pixels] = segment["category_id"] - 1
    return Trace(
        proposals=record["proposals"],
        stage_boxes=record["boxes"],
        stage_features=record["features"],
        stage_logits=record["logits"],
        stage_deltas=record["deltas"],
        mask_boxes=record["mask_boxes"],
        mask_logits=record["mask_logits"],
        boxes=instances.pred_boxes.tensor,
        scores=instances.scores,
        classes=instances.pred_classes,
        masks=instances.pred_masks,
        semantic_logits=output["sem_seg"],
        semantic=semantic,
        instance=instance,
    )


def run_vpsbench(
    model: PanopticCascadeRCNN, image: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> Trace:
    """vpsbench's forward with hooks; RoIAlign's boxes seen through a pass-through spy."""
    record: dict[str, Any] = {"logits": [], "deltas": [], "pooled": []}
    pooled_calls: list[tuple[Sequence[Tensor], Tensor]] = []
    roi_align = cascade.multilevel_roi_align

    def spy(
        features: Sequence[Tensor], strides: Sequence[int], boxes: Sequence[Tensor], *args: Any
    ) -> Tensor:
        pooled = roi_align(features, strides, boxes, *args)
        pooled_calls.append(([b.clone() for b in boxes], pooled.clone()))
        return pooled

    monkeypatch.setattr(cascade, "multilevel_roi_align", spy)

    def on_proposals(module: nn.Module, args: Any, output: list[Tensor]) -> None:
        record["proposals"] = output[0].clone()

    def on_predictor(module: nn.Module, args: Any, output: tuple[Tensor, Tensor]) -> None:
        record["logits"].append(output[0].clone())
        record["deltas"].append(output[1].clone())

    def on_mask_predictor(module: nn.Module, args: Any, output: Tensor) -> None:
        record["mask_logits"] = output.clone()

    roi_heads = model.roi_heads
    hooks = [
        model.proposal_generator.register_forward_hook(on_proposals),
        roi_heads.mask_head.predictor.register_forward_hook(on_mask_predictor),
        *(p.register_forward_hook(on_predictor) for p in roi_heads.box_predictor),
    ]
    tensor = torch.from_numpy(image).permute(2, 0, 1)[None]
    try:
        output: PanopticOutput = model(tensor)[0]
    finally:
        for hook in hooks:
            hook.remove()
        monkeypatch.undo()
    frame = combine_panoptic(output, model.config)
    stages = len(roi_heads.box_predictor)
    assert len(pooled_calls) == stages + 1  # one RoIAlign per cascade stage, then the masks
    return Trace(
        proposals=record["proposals"],
        stage_boxes=[boxes[0] for boxes, _ in pooled_calls[:stages]],
        stage_features=[pooled for _, pooled in pooled_calls[:stages]],
        stage_logits=record["logits"],
        stage_deltas=record["deltas"],
        mask_boxes=pooled_calls[stages][0][0],
        mask_logits=record["mask_logits"],
        boxes=output.boxes,
        scores=output.scores,
        classes=output.classes,
        masks=output.masks,
        semantic_logits=output.semantic_logits,
        semantic=frame.semantic,
        instance=frame.instance,
    )


def max_abs_diff(first: Tensor, second: Tensor) -> float:
    """Largest absolute difference of two same-shaped tensors (0 for empty ones)."""
    assert first.shape == second.shape, (tuple(first.shape), tuple(second.shape))
    if first.numel() == 0:
        return 0.0
    return float((first.double() - second.double()).abs().max())


def compare(ours: Trace, theirs: Trace, *, relative_features: bool = False) -> dict[str, float]:
    """Max abs difference of every float intermediate; asserts the discrete outputs are equal.

    ``relative_features`` measures RoI features relative to their largest magnitude: at full
    width they reach ~1e2, where float32 RoIAlign rounding (vpsbench samples through
    ``grid_sample``, the stand-in in float64 coordinates) alone exceeds 1e-4 absolute.
    """
    diffs = {"proposals": max_abs_diff(ours.proposals, theirs.proposals)}
    stages = zip(
        ours.stage_boxes, ours.stage_features, ours.stage_logits, ours.stage_deltas,
        theirs.stage_boxes, theirs.stage_features, theirs.stage_logits, theirs.stage_deltas,
        strict=True,
    )  # fmt: skip
    for stage, (boxes, features, logits, deltas, *upstream_stage) in enumerate(stages):
        up_boxes, up_features, up_logits, up_deltas = upstream_stage
        diffs[f"stage{stage} boxes"] = max_abs_diff(boxes, up_boxes)
        diffs[f"stage{stage} RoI features"] = max_abs_diff(features, up_features)
        if relative_features:
            diffs[f"stage{stage} RoI features"] /= max(1.0, float(up_features.abs().max()))
        diffs[f"stage{stage} class probabilities"] = max_abs_diff(
            logits.softmax(dim=-1), up_logits.softmax(dim=-1)
        )
        diffs[f"stage{stage} box deltas"] = max_abs_diff(deltas, up_deltas)
    diffs["mask head boxes"] = max_abs_diff(ours.mask_boxes, theirs.mask_boxes)
    diffs["mask logits"] = max_abs_diff(ours.mask_logits, theirs.mask_logits)
    diffs["final boxes"] = max_abs_diff(ours.boxes, theirs.boxes)
    diffs["final scores"] = max_abs_diff(ours.scores, theirs.scores)
    diffs["semantic logits"] = max_abs_diff(ours.semantic_logits, theirs.semantic_logits)
    worst = {name: diff for name, diff in diffs.items() if not diff <= TOLERANCE}
    assert not worst, worst
    assert torch.equal(ours.classes, theirs.classes)
    assert torch.equal(ours.masks, theirs.masks)
    assert torch.equal(ours.semantic_logits.argmax(dim=0), theirs.semantic_logits.argmax(dim=0))
    np.testing.assert_array_equal(ours.semantic, theirs.semantic)
    np.testing.assert_array_equal(ours.instance, theirs.instance)
    return diffs


# --------------------------------------------------------------------------------------------
# The containers upstream writes.
# --------------------------------------------------------------------------------------------

LIGHTNING_VERSION = "2.2.1"


class Tripwire:
    """Records it was unpickled: a loader that runs pickled code would call ``__setstate__``."""

    unpickled = False

    def __setstate__(self, state: object) -> None:
        type(self).unpickled = True

    @classmethod
    def trip(cls) -> None:
        """Set the flag (a pickled call of this runs only under a code-running unpickler)."""
        cls.unpickled = True


def cups_hyper_parameters(up: Upstream, config_file: str) -> dict[str, Any]:
    """What ``UnsupervisedModel.__init__`` passes to ``save_hyperparameters`` (a yacs CfgNode)."""
    config = up.get_default_config(str(up.cups_root / "configs" / config_file))
    classes = range(STUFF + THINGS)  # stuff pseudo-classes first, then things
    return {
        "config": config,
        "thing_pseudo_classes": tuple(classes[STUFF:]),
        "stuff_pseudo_classes": tuple(classes[:STUFF]),
        "class_names": [f"class {index}" for index in range(27)],
        "classes_mask": None,
    }


def lightning_checkpoint(
    state_dict: dict[str, Tensor],
    hyper_parameters: dict[str, Any],
    optimizer_state: dict[str, Any],
    global_step: int,
) -> dict[str, Any]:
    """The dict Lightning's ``dump_checkpoint`` writes (``hyper_parameters = dict(hparams)``)."""
    from collections import OrderedDict

    return {
        "epoch": 0,
        "global_step": global_step,
        "pytorch-lightning_version": LIGHTNING_VERSION,
        "state_dict": OrderedDict(state_dict),
        "loops": {
            "fit_loop": {
                "state_dict": {},
                "epoch_progress": {"total": {"ready": 1, "started": 1, "processed": 0}},
            }
        },
        "callbacks": {
            "ModelCheckpoint{'monitor': None, 'mode': 'min', 'every_n_train_steps': 0}": {
                "best_model_score": None,
                "best_model_path": "",
                "dirpath": "experiments/checkpoints",
            }
        },
        "optimizer_states": [optimizer_state],
        "lr_schedulers": [],
        "hparams_name": None,  # save_hyperparameters(dict) finds no init argument name
        "hyper_parameters": hyper_parameters,
    }


def adamw_state(model: nn.Module, step: bool) -> dict[str, Any]:
    """CUPS' optimiser state (AdamW); ``step`` runs one update on a copy to fill its moments."""
    import copy

    params = [p for p in copy.deepcopy(model).parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5, weight_decay=1e-5)
    if step:
        for param in params:
            param.grad = torch.full_like(param, 1e-3)
        optimizer.step()
    return optimizer.state_dict()


def write_self_training_ckpt(
    up: Upstream, frozen: nn.Module, cfg: Any, path: Path, *, extra: dict[str, Any] | None = None
) -> Path:
    """``pl_model_self``'s checkpoint: frozen-BN student ``model.``, TTA teacher ``teacher_model.``.

    (The published ``cups.ckpt`` is such a file.)
    """
    import copy

    tta = up.model_module.PanopticFPNWithTTA
    teacher = tta(cfg, copy.deepcopy(frozen))
    with torch.no_grad():
        for value in teacher.state_dict().values():
            if value.is_floating_point():
                value.add_(0.5)  # the EMA teacher differs: the loader must take the student
    state = {f"model.{key}": value for key, value in frozen.state_dict().items()}
    state.update({f"teacher_model.{key}": value for key, value in teacher.state_dict().items()})
    checkpoint = lightning_checkpoint(
        state,
        cups_hyper_parameters(up, "train_self_cityscapes.yaml"),
        adamw_state(frozen, step=True),
        global_step=1500,
    )
    checkpoint.update(extra or {})
    torch.save(checkpoint, path)
    return path


def write_pseudo_training_ckpt(
    up: Upstream, model: nn.Module, path: Path, *, optimizer_step: bool = True
) -> Path:
    """``pl_model_pseudo``'s checkpoint: the trainable-BN model under ``model.``, no teacher."""
    state = {f"model.{key}": value for key, value in model.state_dict().items()}
    checkpoint = lightning_checkpoint(
        state,
        cups_hyper_parameters(up, "train_cityscapes.yaml"),
        adamw_state(model, step=optimizer_step),
        global_step=8000,
    )
    torch.save(checkpoint, path)
    return path


def write_u2seg_pkl(model: nn.Module, path: Path) -> Path:
    """A detectron2-format ``.pkl``: numpy arrays under ``model`` and an ``__author__``."""
    arrays = {key: value.numpy().copy() for key, value in model.state_dict().items()}
    with path.open("wb") as handle:
        pickle.dump({"model": arrays, "__author__": "U2Seg"}, handle)
    return path


def frozen_copy(up: Upstream, model: nn.Module) -> nn.Module:
    """What ``build_model_self`` trains: BN layers converted to detectron2's FrozenBatchNorm2d."""
    import copy

    frozen: nn.Module = up.frozen_batch_norm.convert_frozen_batchnorm(copy.deepcopy(model))
    return frozen.eval()


def reduced_overrides(**changes: object) -> dict[str, object]:
    """vpsbench config overrides matching the reduced upstream network and its thresholds."""
    return {
        "width_multiplier": WIDTH_MULTIPLIER,
        "roi_score_thresh_test": SCORE_THRESHOLD,
        "combine_instances_score_thresh": SCORE_THRESHOLD,
        "combine_stuff_area_thresh": STUFF_AREA,
        **changes,
    }


UPSTREAM_REDUCED = (*REDUCED_WIDTHS, "MODEL.PANOPTIC_FPN.COMBINE.STUFF_AREA_LIMIT", STUFF_AREA)


# --------------------------------------------------------------------------------------------
# Tests.
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reduced() -> tuple[nn.Module, Any]:
    """The reduced-width upstream network (trainable BN, as pseudo-label training leaves it)."""
    return build_upstream(upstream(), seed=0, overrides=UPSTREAM_REDUCED)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return make_image()


def report(name: str, diffs: dict[str, float], trace: Trace) -> None:
    """Print the measured comparison (shown with ``pytest -s``; the lead's table uses it)."""
    print(f"\n{name}: {HEIGHT}x{WIDTH} image, {trace.proposals.shape[0]} proposals, "
          f"{trace.boxes.shape[0]} detections, {int(trace.instance.max())} fused instances, "
          f"{len(np.unique(trace.semantic))} panoptic classes")  # fmt: skip
    for key, diff in diffs.items():
        print(f"  {key}: {diff:.3g}")


def test_cups_published_ckpt_matches_upstream(
    reduced: tuple[nn.Module, Any],
    image: np.ndarray,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The self-training ``.ckpt`` (frozen BN, teacher, CfgNode hparams) via the public path."""
    up = upstream()
    model, cfg = reduced
    frozen = frozen_copy(up, model)
    path = write_self_training_ckpt(up, frozen, cfg, tmp_path / "cups.ckpt")
    ours = build_from_checkpoint(path, "cups", overrides=reduced_overrides())
    assert (ours.config.num_thing_classes, ours.config.num_stuff_classes) == (THINGS, STUFF)
    theirs = run_upstream(frozen, image)
    trace = run_vpsbench(ours, image, monkeypatch)
    assert theirs.boxes.shape[0] >= 10 and int(theirs.instance.max()) >= 3  # a real test
    assert len(np.unique(theirs.semantic[theirs.instance == 0])) >= 3
    diffs = compare(trace, theirs)
    report("CUPS self-training .ckpt (frozen BN)", diffs, theirs)
    frame = ours.predict_panoptic(image)  # the path cups-sort takes per frame
    np.testing.assert_array_equal(frame.semantic, theirs.semantic)
    np.testing.assert_array_equal(frame.instance, theirs.instance)


def test_cups_ckpt_is_read_without_running_pickled_code(
    reduced: tuple[nn.Module, Any], tmp_path: Path
) -> None:
    """CfgNode hparams (and any other object) become inert placeholders; weights still load."""
    up = upstream()
    model, cfg = reduced
    frozen = frozen_copy(up, model)
    Tripwire.unpickled = False
    path = write_self_training_ckpt(
        up, frozen, cfg, tmp_path / "cups.ckpt", extra={"tripwire": Tripwire()}
    )
    raw = read_checkpoint_safely(path)
    config = raw["hyper_parameters"]["config"]
    assert type(config).__name__ == "CfgNode" and not isinstance(config, type(cfg))
    assert config["MODEL"]["INFERENCE_CONFIDENCE_THRESHOLD"] == 0.5  # items kept, inert
    assert raw["hyper_parameters"]["thing_pseudo_classes"] == tuple(range(STUFF, STUFF + THINGS))
    built = build_from_checkpoint(path, "cups", overrides=reduced_overrides())
    assert not Tripwire.unpickled
    expected = frozen.state_dict()
    for key, value in built.state_dict().items():
        assert torch.equal(value, expected[key]), key


class _Shout:
    """Pickles as a call of ``Tripwire.trip``: running pickled code would set the flag."""

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return (Tripwire.trip, ())


class _Items(list[int]):
    """A list subclass (pickled with APPENDS onto the placeholder)."""


def test_safe_reading_builds_data_and_runs_no_pickled_code(tmp_path: Path) -> None:
    """Tensors, arrays (protocol 2 pickles their bytes via ``_codecs.encode``) and sets survive;
    objects of other classes, including a pickled call, become inert placeholders."""
    Tripwire.unpickled = False
    payload = {
        "state_dict": {"model.w": torch.ones(2)},
        "hyper_parameters": {
            "array": np.arange(3),
            "set": {1, 2},
            "call": _Shout(),
            "object": Tripwire(),
            "items": _Items([1, 2]),
            "path": Path("/x/y"),
        },
    }
    torch.save(payload, tmp_path / "any.ckpt")
    with (tmp_path / "any.pkl").open("wb") as handle:
        pickle.dump({"model": {"w": np.ones(2, np.float32)}, "call": _Shout()}, handle, protocol=5)
    raw = read_checkpoint_safely(tmp_path / "any.ckpt")
    pkl = read_checkpoint_safely(tmp_path / "any.pkl")
    assert not Tripwire.unpickled
    hyper = raw["hyper_parameters"]
    np.testing.assert_array_equal(hyper["array"], np.arange(3))
    assert hyper["set"] == {1, 2} and torch.equal(raw["state_dict"]["model.w"], torch.ones(2))
    assert type(hyper["object"]).__name__ == "Tripwire" and not isinstance(
        hyper["object"], Tripwire
    )
    assert type(hyper["call"]).__name__ == "getattr" and hyper["items"].__dict__["items"] == [1, 2]
    np.testing.assert_array_equal(pkl["model"]["w"], np.ones(2, np.float32))


def test_cups_pseudo_training_ckpt_matches_upstream(
    reduced: tuple[nn.Module, Any],
    image: np.ndarray,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``pl_model_pseudo``'s ``.ckpt`` (trainable BN with counters, no teacher)."""
    up = upstream()
    model, _ = reduced
    path = write_pseudo_training_ckpt(up, model, tmp_path / "pseudo.ckpt")
    ours = build_from_checkpoint(path, "cups", overrides=reduced_overrides())
    diffs = compare(run_vpsbench(ours, image, monkeypatch), theirs := run_upstream(model, image))
    report("CUPS pseudo-label-training .ckpt (BN)", diffs, theirs)


def test_u2seg_pkl_matches_upstream_with_u2seg_normalisation(
    image: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A detectron2 ``.pkl`` through the ``u2seg`` preset: RGB 0..255, ImageNet mean/std."""
    up = upstream()
    model = build_u2seg_upstream(up, seed=1, overrides=UPSTREAM_REDUCED)
    path = write_u2seg_pkl(model, tmp_path / "u2seg.pkl")
    ours = build_from_checkpoint(path, "u2seg", overrides=reduced_overrides(test_min_size=0))
    theirs = run_upstream(model, image, divisor=1.0)
    diffs = compare(run_vpsbench(ours, image, monkeypatch), theirs)
    report("U2Seg-style detectron2 .pkl", diffs, theirs)
    # U2Seg publishes what detectron2's trainer writes (model_final.pth): tensors and trainer
    # state; it loads to the same weights.
    trainer_file = tmp_path / "model_0089999.pth"
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": {"base_lrs": [0.01], "last_epoch": 89999},
            "iteration": 89999,
        },
        trainer_file,
    )
    from_trainer = build_from_checkpoint(trainer_file, "u2seg", overrides=reduced_overrides())
    for key, value in from_trainer.state_dict().items():
        assert torch.equal(value, ours.state_dict()[key]), key


@pytest.fixture(scope="module")
def full_size(tmp_path_factory: pytest.TempPathFactory) -> tuple[nn.Module, Any, Path]:
    """CUPS' full-size network (27 = 10 thing + 17 stuff pseudo-classes), its cfg and ``.ckpt``.

    Built with CUPS' inference threshold (``MODEL.INFERENCE_CONFIDENCE_THRESHOLD`` 0.5, which
    ``panoptic_cascade_mask_r_cnn_from_checkpoint`` uses); saved as pseudo-label training
    leaves it (the self-training file holds a second, teacher copy: 600 MB).
    """
    up = upstream()
    model, cfg = build_upstream(up, seed=2, confidence_threshold=0.5)
    path = tmp_path_factory.mktemp("cups") / "cups_full.ckpt"
    write_pseudo_training_ckpt(up, model, path, optimizer_step=False)
    return model, cfg, path


@pytest.fixture(scope="module")
def full_size_vpsbench(full_size: tuple[nn.Module, Any, Path]) -> PanopticCascadeRCNN:
    """vpsbench's network from the full-size ``.ckpt``: the published preset, no overrides."""
    return build_from_checkpoint(full_size[2])


def test_full_size_cups_ckpt_loads_every_key(
    full_size: tuple[nn.Module, Any, Path], full_size_vpsbench: PanopticCascadeRCNN
) -> None:
    """No missing or unexpected key, same shapes and values, BN and frozen-BN layouts alike."""
    model, _, _ = full_size
    state = model.state_dict()
    assert len(state) == FULL_SIZE_KEYS
    ours = full_size_vpsbench
    config = ours.config
    assert (config.num_thing_classes, config.num_stuff_classes) == (THINGS, STUFF)
    assert config.num_pseudo_classes == 27
    ours_state = ours.state_dict()
    counters = {key for key in state if key.endswith("num_batches_tracked")}
    assert len(counters) == BN_COUNTERS
    assert set(ours_state) == set(state) - counters
    for key, value in ours_state.items():
        assert torch.equal(value, state[key]), key
    # What the self-training .ckpt holds: detectron2's convert_frozen_batchnorm keeps the counters.
    frozen = frozen_copy(upstream(), model).state_dict()
    assert set(frozen) == set(state)
    assert {key: tuple(frozen[key].shape) for key in ours_state} == {
        key: tuple(value.shape) for key, value in ours_state.items()
    }


@pytest.mark.slow
def test_full_size_network_matches_upstream(
    full_size: tuple[nn.Module, Any, Path],
    full_size_vpsbench: PanopticCascadeRCNN,
    image: np.ndarray,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The published architecture and CUPS' own thresholds (score 0.5, stuff area 4096): ~16 s."""
    model, _, _ = full_size
    theirs = run_upstream(model, image)
    trace = run_vpsbench(full_size_vpsbench, image, monkeypatch)
    diffs = compare(trace, theirs, relative_features=True)
    report("CUPS full-size .ckpt, CUPS' thresholds (RoI features: relative)", diffs, theirs)


def test_cups_preset_mirrors_cups_config(full_size: tuple[nn.Module, Any, Path]) -> None:
    """Every inference setting of ``PanopticCascadeConfig.cups()`` is CUPS' (its built cfg)."""
    from detectron2.modeling.box_regression import _DEFAULT_SCALE_CLAMP

    _, cfg, _ = full_size
    m = cfg.MODEL
    combine = m.PANOPTIC_FPN.COMBINE
    expected = {
        "pixel_mean": tuple(m.PIXEL_MEAN),
        "pixel_std": tuple(m.PIXEL_STD),
        "resnet_blocks": {50: (3, 4, 6, 3)}[m.RESNETS.DEPTH],
        "stride_in_1x1": m.RESNETS.STRIDE_IN_1X1,
        "fpn_out_channels": m.FPN.OUT_CHANNELS,
        "anchor_sizes": tuple(float(size) for (size,) in m.ANCHOR_GENERATOR.SIZES),
        "anchor_aspect_ratios": tuple(m.ANCHOR_GENERATOR.ASPECT_RATIOS[0]),
        "anchor_offset": m.ANCHOR_GENERATOR.OFFSET,
        "rpn_bbox_reg_weights": tuple(m.RPN.BBOX_REG_WEIGHTS),
        "rpn_pre_nms_topk_test": m.RPN.PRE_NMS_TOPK_TEST,
        "rpn_post_nms_topk_test": m.RPN.POST_NMS_TOPK_TEST,
        "rpn_nms_thresh": m.RPN.NMS_THRESH,
        "rpn_min_box_size": m.PROPOSAL_GENERATOR.MIN_SIZE,
        "box_pooler_resolution": m.ROI_BOX_HEAD.POOLER_RESOLUTION,
        "box_pooler_sampling_ratio": m.ROI_BOX_HEAD.POOLER_SAMPLING_RATIO,
        "box_num_conv": m.ROI_BOX_HEAD.NUM_CONV,
        "box_conv_dim": m.ROI_BOX_HEAD.CONV_DIM,
        "box_num_fc": m.ROI_BOX_HEAD.NUM_FC,
        "box_fc_dim": m.ROI_BOX_HEAD.FC_DIM,
        "box_head_norm": m.ROI_BOX_HEAD.NORM,
        "cascade_bbox_reg_weights": tuple(map(tuple, m.ROI_BOX_CASCADE_HEAD.BBOX_REG_WEIGHTS)),
        "box_scale_clamp": _DEFAULT_SCALE_CLAMP,
        "roi_score_thresh_test": m.ROI_HEADS.SCORE_THRESH_TEST,
        "roi_nms_thresh_test": m.ROI_HEADS.NMS_THRESH_TEST,
        "detections_per_image": cfg.TEST.DETECTIONS_PER_IMAGE,
        "mask_pooler_resolution": m.ROI_MASK_HEAD.POOLER_RESOLUTION,
        "mask_pooler_sampling_ratio": m.ROI_MASK_HEAD.POOLER_SAMPLING_RATIO,
        "mask_num_conv": m.ROI_MASK_HEAD.NUM_CONV,
        "mask_conv_dim": m.ROI_MASK_HEAD.CONV_DIM,
        "mask_head_norm": m.ROI_MASK_HEAD.NORM,
        "cls_agnostic_mask": m.ROI_MASK_HEAD.CLS_AGNOSTIC_MASK,
        "sem_seg_conv_dim": m.SEM_SEG_HEAD.CONVS_DIM,
        "sem_seg_common_stride": m.SEM_SEG_HEAD.COMMON_STRIDE,
        "sem_seg_norm": m.SEM_SEG_HEAD.NORM,
        "combine_overlap_thresh": combine.OVERLAP_THRESH,
        "combine_stuff_area_thresh": combine.STUFF_AREA_LIMIT,
        "combine_instances_score_thresh": combine.INSTANCES_CONFIDENCE_THRESH,
    }
    preset = PanopticCascadeConfig.cups()
    assert {name: getattr(preset, name) for name in expected} == expected
    # Inference-time equivalents: BN in eval mode is vpsbench's frozen BN; RoIAlignV2 everywhere;
    # CUPS feeds RGB in [0, 1] (image / 255) at the dataset's resolution.
    assert m.RESNETS.NORM == m.FPN.NORM == "BN" and preset.backbone_norm == preset.fpn_norm == "BN"
    assert m.ROI_BOX_HEAD.POOLER_TYPE == m.ROI_MASK_HEAD.POOLER_TYPE == "ROIAlignV2"
    assert list(m.ROI_HEADS.IN_FEATURES) == list(cascade.ROI_FEATURES)
    assert list(m.RPN.IN_FEATURES) == list(cascade.RPN_FEATURES)
    assert m.ROI_HEADS.NAME == "CustomCascadeROIHeads" and m.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG
    assert preset.input_format == "RGB" and preset.pixel_scale == 1.0 / 255.0
    assert preset.test_min_size == 0


def test_cups_sort_runs_end_to_end_with_a_cups_ckpt(
    full_size: tuple[nn.Module, Any, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``vpsbench run-method cups-sort --set weights=cups.ckpt`` on 1 video × 2 frames."""
    import json

    from vpsbench.datasets.synthetic import prepare_synthetic

    _, _, weights = full_size
    root = prepare_synthetic(
        tmp_path / "synthetic", videos=1, frames=2, height=48, width=96, seed=1,
        splits=["val"], workers=1,
    )  # fmt: skip
    run_dir = tmp_path / "run"
    args = ["run-method", "cups-sort", "--dataset", "synthetic", "--root", str(root)]
    args += ["--run-dir", str(run_dir), "--set", f"weights={weights}"]
    code, out, err = run_cli(args, capsys)
    assert code == 0, err
    assert "published weights" in err and "STQ" in out
    mode = json.loads((run_dir / "predict" / "mode.json").read_text())
    assert mode == {"mode": "published weights"}
    results = json.loads((run_dir / "results.json").read_text())
    assert results["counts"] == {"sequences": 1, "frames": 2}
    assert len(list((run_dir / "predictions").rglob("*.png"))) == 2


def test_roi_align_is_torchvisions_in_float64() -> None:
    """vpsbench's RoIAlignV2 is the stand-in's (torchvision's kernel) up to rounding.

    In float64 they agree to ~1e-12; in float32 vpsbench's ``grid_sample`` sampling and the
    stand-in's float64 sample coordinates round differently (~1e-6 of the feature magnitude),
    which is what the network comparisons above see in their RoI features.
    """
    install_standins()
    from torchvision.ops import roi_align as reference

    from vpsbench.models.ops import roi_align

    generator = torch.Generator().manual_seed(0)
    features = torch.randn((2, 8, 32, 56), generator=generator, dtype=torch.float64) * 50
    corner = torch.rand((300, 2), generator=generator, dtype=torch.float64) * 240 - 10
    size = torch.rand((300, 2), generator=generator, dtype=torch.float64) * 120  # some empty
    batch = torch.randint(0, 2, (300, 1), generator=generator).to(torch.float64)
    rois = torch.cat((batch, corner, corner + size), dim=1)
    for sampling_ratio in (0, 2):
        ours = roi_align(features, rois, (7, 7), 0.25, sampling_ratio, aligned=True)
        theirs = reference(features, rois, (7, 7), 0.25, sampling_ratio, aligned=True)
        assert max_abs_diff(ours, theirs) < 1e-9
