"""What one training clip holds: images and the pseudo-label targets of each frame.

The model sees pseudo-classes split in two spaces (paper Sec. 3.1, thing/stuff split ψ):
thing classes ``0..T-1`` (detected as instances) and stuff classes ``0..S-1``. The semantic head
is Panoptic FPN's: channel 0 is the single "thing" channel and channel ``1 + s`` is stuff ``s``, so
:attr:`FrameTargets.semantic` holds 0 on thing pixels, ``1 + s`` on stuff pixels and
:data:`IGNORE` where the pseudo-label is void.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

IGNORE = 255
"""Semantic target value of void pseudo-label pixels (no loss)."""


@dataclass
class FrameTargets:
    """Pseudo-label targets of one frame, in network-input pixels (the image's own size)."""

    boxes: Tensor  # (N, 4) float32 x1, y1, x2, y2 (continuous coordinates, tight around the mask)
    classes: Tensor  # (N,) int64 thing class 0..T-1
    track_ids: Tensor  # (N,) int64 > 0, the same object has the same id in every frame of a clip
    masks: Tensor  # (N, H, W) bool, non-empty
    semantic: Tensor  # (H, W) int64: 0 = thing, 1 + s = stuff s, IGNORE = void

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.semantic.shape[0]), int(self.semantic.shape[1])

    def to(self, device: torch.device | str) -> FrameTargets:
        return FrameTargets(
            self.boxes.to(device),
            self.classes.to(device),
            self.track_ids.to(device),
            self.masks.to(device),
            self.semantic.to(device),
        )

    @staticmethod
    def empty(height: int, width: int) -> FrameTargets:
        """A frame without instances whose every pixel is void."""
        return FrameTargets(
            torch.zeros((0, 4)),
            torch.zeros((0,), dtype=torch.int64),
            torch.zeros((0,), dtype=torch.int64),
            torch.zeros((0, height, width), dtype=torch.bool),
            torch.full((height, width), IGNORE, dtype=torch.int64),
        )


def boxes_from_masks(masks: Tensor) -> Tensor:
    """Tight boxes (N, 4) of non-empty masks (N, H, W): pixel i covers [i, i + 1)."""
    if masks.shape[0] == 0:
        return torch.zeros((0, 4), device=masks.device)
    rows = masks.any(dim=2)
    cols = masks.any(dim=1)
    height, width = masks.shape[1:]
    row_index = torch.arange(height, device=masks.device)
    col_index = torch.arange(width, device=masks.device)
    y1 = torch.where(rows, row_index, height).min(dim=1).values
    y2 = torch.where(rows, row_index, -1).max(dim=1).values + 1
    x1 = torch.where(cols, col_index, width).min(dim=1).values
    x2 = torch.where(cols, col_index, -1).max(dim=1).values + 1
    return torch.stack((x1, y1, x2, y2), dim=1).float()


@dataclass
class Clip:
    """A clip of T consecutive frames: images (T, 3, H, W) float RGB 0..255 and their targets."""

    images: Tensor
    targets: list[FrameTargets]

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.shape[1] != 3:
            raise ValueError(f"clip images must be (T, 3, H, W), got {tuple(self.images.shape)}")
        if len(self.targets) != self.images.shape[0]:
            raise ValueError(
                f"clip has {self.images.shape[0]} images but {len(self.targets)} targets"
            )
