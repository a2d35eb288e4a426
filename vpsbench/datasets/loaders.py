"""Imports every built-in loader so that their ``@register_dataset`` decorators run."""

# Each import registers one dataset; keep this list in sync with the modules in this folder.
from vpsbench.datasets import (  # noqa: F401
    cityscapes_sequence,
    cityscapes_vps,
    kitti_mots,
    kitti_step,
    mots,
    synthetic,
    waymo,
)
