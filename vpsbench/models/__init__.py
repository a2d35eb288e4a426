"""Reference networks in plain PyTorch: the Panoptic Cascade Mask R-CNN of U2Seg and CUPS.

Importing this package imports ``torch`` (the ``methods`` extra); nothing else in vpsbench does.
"""

from vpsbench.models.checkpoints import (
    CheckpointMismatchError,
    LoadReport,
    build_from_checkpoint,
    infer_class_counts,
    load_detectron2_checkpoint,
    read_checkpoint,
)
from vpsbench.models.panoptic_cascade_rcnn import (
    PanopticCascadeConfig,
    PanopticCascadeRCNN,
    PanopticOutput,
    combine_panoptic,
    fuse_instances,
)

__all__ = [
    "CheckpointMismatchError",
    "LoadReport",
    "PanopticCascadeConfig",
    "PanopticCascadeRCNN",
    "PanopticOutput",
    "build_from_checkpoint",
    "combine_panoptic",
    "fuse_instances",
    "infer_class_counts",
    "load_detectron2_checkpoint",
    "read_checkpoint",
]
