"""Procedural, deterministic synthetic driving videos with exact panoptic labels and cues.

A street (road, sidewalks, facades, poles, vegetation, sky) with driving and parked vehicles,
walking, crossing and standing people and cyclists is drawn from a seed and rendered by ray casting
in numpy. Each frame comes with Cityscapes-trainId panoptic ground truth (tiny things as crowd),
metric depth, exact forward/backward optical flow, a mask of independently moving things and the
camera's intrinsics and pose. See :mod:`vpsbench.synthetic.geometry` for the conventions.
"""

from __future__ import annotations

from vpsbench.synthetic.config import FPS, SPLIT_CODES, SyntheticConfig
from vpsbench.synthetic.cues import read_camera, read_cues
from vpsbench.synthetic.geometry import CONVENTION
from vpsbench.synthetic.render import RenderedFrame, render_video
from vpsbench.synthetic.writer import write_dataset

__all__ = [
    "CONVENTION",
    "FPS",
    "SPLIT_CODES",
    "RenderedFrame",
    "SyntheticConfig",
    "read_camera",
    "read_cues",
    "render_video",
    "write_dataset",
]
