"""VideoCUPS' training settings equal CUPS' (its detectron2 config and its dense CRF constants).

The oracle is CUPS' own config as its builder assembles it: detectron2's ``get_cfg()`` merged
with ``cups/model/Panoptic-Cascade-Mask-R-CNN.yaml`` (``_BASE_`` chain included), and the
module-level constants of ``cups/crf.py`` (read with ``ast``: the module imports pydensecrf).
"""

from __future__ import annotations

import ast
import functools
import inspect
import sys
from typing import Any

import pytest
from vpsbench_methods.videocups.model.config import load_training_config
from vpsbench_methods.videocups.model.losses import LossConfig
from vpsbench_methods.videocups.model.network import PanopticCascadeMaskTrack
from vpsbench_methods.videocups.model.tracking import TrackHead
from vpsbench_methods.videocups.pseudo_labels import PseudoLabelSettings
from vpsbench_methods.videocups.semantics import CrfParameters

from tests.equivalence.upstream import install_standins, require, require_packages


@functools.cache
def cups_config() -> Any:
    """CUPS' detectron2 config, merged as ``panoptic_cascade_mask_r_cnn`` merges it."""
    detectron2_root = require("detectron2")
    model_folder = require("cups", "cups", "model")
    require_packages("fvcore", "yacs", "iopath")
    install_standins()
    if str(detectron2_root) not in sys.path:
        sys.path.insert(0, str(detectron2_root))
    from detectron2.config import get_cfg

    cfg = get_cfg()
    cfg.set_new_allowed(True)
    cfg.merge_from_file(str(model_folder / "Panoptic-Cascade-Mask-R-CNN.yaml"))
    return cfg


def crf_constants() -> dict[str, float]:
    """The numeric module constants of ``cups/crf.py`` (``MAX_ITER``, ``Bi_XY_STD``, …)."""
    source = require("cups", "cups", "crf.py").read_text()
    constants: dict[str, float] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            if not isinstance(node.value.value, int | float):
                continue
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id[0].isupper():
                    constants[target.id] = float(node.value.value)
    return constants


def paper_losses() -> LossConfig:
    loss: LossConfig = load_training_config("paper").loss
    return loss


@pytest.mark.parametrize("losses", [LossConfig(), None], ids=["defaults", "paper.yaml"])
def test_rpn_and_roi_sampling_equal_cups(losses: LossConfig | None) -> None:
    cfg = cups_config()
    losses = losses if losses is not None else paper_losses()
    rpn, roi = cfg.MODEL.RPN, cfg.MODEL.ROI_HEADS
    assert losses.rpn_pre_nms_topk_train == rpn.PRE_NMS_TOPK_TRAIN
    assert losses.rpn_post_nms_topk_train == rpn.POST_NMS_TOPK_TRAIN == 4000
    assert [losses.rpn_negative_iou, losses.rpn_positive_iou] == list(rpn.IOU_THRESHOLDS)
    assert losses.rpn_batch_size_per_image == rpn.BATCH_SIZE_PER_IMAGE
    assert losses.rpn_positive_fraction == rpn.POSITIVE_FRACTION
    assert losses.rpn_smooth_l1_beta == rpn.SMOOTH_L1_BETA
    assert losses.roi_batch_size_per_image == roi.BATCH_SIZE_PER_IMAGE
    assert losses.roi_positive_fraction == roi.POSITIVE_FRACTION
    assert losses.cascade_foreground_ious == tuple(cfg.MODEL.ROI_BOX_CASCADE_HEAD.IOUS)
    assert losses.roi_smooth_l1_beta == cfg.MODEL.ROI_BOX_HEAD.SMOOTH_L1_BETA
    assert losses.sem_loss_weight == cfg.MODEL.SEM_SEG_HEAD.LOSS_WEIGHT


def test_dense_crf_constants_equal_cups() -> None:
    constants = crf_constants()
    crf = CrfParameters()
    assert crf.iterations == constants["MAX_ITER"] == PseudoLabelSettings().crf_iterations
    assert crf.spatial_sigma == constants["POS_XY_STD"]
    assert crf.spatial_weight == constants["POS_W"]
    assert crf.bilateral_spatial_sigma == constants["Bi_XY_STD"]
    assert crf.bilateral_colour_sigma == constants["Bi_RGB_STD"]
    assert crf.bilateral_weight == constants["Bi_W"]


def test_masktrack_embedding_is_1024_wide() -> None:
    # MaskTrack R-CNN's track head: two FCs of fc_out_channels = 1024 (mmtracking's
    # masktrack_rcnn config, RoIEmbedHead num_fcs=2, fc_out_channels=1024).
    assert TrackHead(8, 7).fc2.out_features == 1024
    assert inspect.signature(PanopticCascadeMaskTrack).parameters["embed_dim"].default == 1024
    assert load_training_config("paper").model.embed_dim == 1024
