"""The data model: a frame is a pair of integer maps, a video an ordered sequence of frames."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

LabelMap = npt.NDArray[np.int32]


@dataclass(frozen=True, slots=True)
class PanopticFrame:
    """Per-pixel semantic class and instance id of one frame (instance 0 = no instance).

    Both maps are ``int32`` arrays of the same 2-D shape. What the class ids mean (pseudo-classes,
    a dataset's native ids, or the evaluation label space) depends on who produced the frame.
    """

    semantic: LabelMap
    instance: LabelMap

    def __post_init__(self) -> None:
        if self.semantic.ndim != 2:
            raise ValueError(f"semantic map must be 2-D, got shape {self.semantic.shape}")
        if self.semantic.shape != self.instance.shape:
            raise ValueError(
                f"semantic shape {self.semantic.shape} != instance shape {self.instance.shape}"
            )

    @classmethod
    def from_arrays(cls, semantic: npt.ArrayLike, instance: npt.ArrayLike) -> PanopticFrame:
        """Build a frame from any integer arrays, converting them to ``int32``."""
        return cls(np.asarray(semantic, dtype=np.int32), np.asarray(instance, dtype=np.int32))

    @property
    def shape(self) -> tuple[int, int]:
        """Height and width in pixels."""
        height, width = self.semantic.shape
        return int(height), int(width)


@dataclass(frozen=True, slots=True)
class FrameRef:
    """Where a frame sits in a dataset: its sequence, its name (file stem) and temporal index."""

    sequence: str
    name: str
    index: int


@dataclass(frozen=True, slots=True)
class SequenceRef:
    """An ordered list of the annotated frames of one video."""

    name: str
    frames: tuple[FrameRef, ...]
