"""What every dataset loader provides: splits, frames, ground truth in the evaluation label space.

A loader turns a dataset's on-disk ground truth into :class:`~vpsbench.video.PanopticFrame` objects
in its *evaluation label space* (usually Cityscapes trainIds): ``semantic`` holds class ids in
``[0, num_classes)`` or ``ignore_label`` (255); ``instance`` holds track ids that are consistent
within a sequence, 0 meaning "no instance". A thing-class pixel with instance 0 is *crowd*.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from vpsbench.errors import VpsbenchError
from vpsbench.statistics import CodedFrame
from vpsbench.video import FrameRef, PanopticFrame, SequenceRef

IGNORE_LABEL = 255


@dataclass(frozen=True)
class LabelSpace:
    """The classes a dataset is evaluated in.

    ``evaluated`` lists the class ids that take part in matching and in the mean IoU; classes of the
    space that a dataset never annotates (e.g. wall, fence, terrain on Waymo in the Cityscapes
    space) are left out of it, so that a pseudo-class cannot be matched to a class with no pixels.
    """

    name: str
    class_names: tuple[str, ...]
    thing_classes: frozenset[int]
    evaluated: frozenset[int] | None = None
    ignore_label: int = IGNORE_LABEL

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def evaluated_classes(self) -> tuple[int, ...]:
        """Sorted ids of the classes that are matched and scored."""
        ids = range(self.num_classes) if self.evaluated is None else self.evaluated
        return tuple(sorted(ids))

    @property
    def evaluated_things(self) -> tuple[int, ...]:
        return tuple(c for c in self.evaluated_classes if c in self.thing_classes)

    @property
    def evaluated_stuff(self) -> tuple[int, ...]:
        return tuple(c for c in self.evaluated_classes if c not in self.thing_classes)


@dataclass(frozen=True)
class ClassMappingRow:
    """One row of a dataset's mapping from its native classes into the evaluation label space."""

    native_id: int
    native_name: str
    target_id: int  # IGNORE_LABEL when the class is void in evaluation
    note: str = ""


@dataclass(frozen=True)
class ProtocolOption:
    """A named protocol setting where the sources disagree; every choice is documented.

    ``choices`` lists the accepted values; an empty tuple accepts any non-negative integer.
    """

    default: str
    choices: tuple[str, ...]
    doc: str

    def accepts(self, value: str) -> bool:
        if self.choices:
            return value in self.choices
        return value.isdigit()


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset on disk, as ``vpsbench datasets verify`` reports it."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass(frozen=True)
class DatasetFacts:
    """Static facts shown by ``vpsbench datasets info``."""

    splits: tuple[str, ...]
    resolution: str
    annotated_frames: str
    layout: str
    citation: str = ""
    extra: Mapping[str, str] = field(default_factory=dict)


class DatasetNotFoundError(VpsbenchError):
    """The dataset root does not exist or does not look like the dataset."""


class Dataset(abc.ABC):
    """Base class of the dataset loaders; subclasses register with ``@register_dataset``.

    Subclasses set the class attributes and implement the abstract methods. ``protocol`` holds the
    chosen value of every option in ``protocol_options`` (defaults filled in).
    """

    name: ClassVar[str]
    description: ClassVar[str]
    facts: ClassVar[DatasetFacts]
    protocol_options: ClassVar[Mapping[str, ProtocolOption]] = {}

    def __init__(self, root: str | Path, protocol: Mapping[str, str] | None = None) -> None:
        self.root = Path(root)
        self.protocol = self.resolve_protocol(protocol or {})

    @classmethod
    def resolve_protocol(cls, chosen: Mapping[str, str]) -> dict[str, str]:
        """Fill in defaults and reject unknown options or values with a clear message."""
        resolved = {key: option.default for key, option in cls.protocol_options.items()}
        for key, value in chosen.items():
            if key not in cls.protocol_options:
                known = ", ".join(sorted(cls.protocol_options)) or "none"
                raise VpsbenchError(
                    f"dataset {cls.name!r} has no protocol option {key!r} (known: {known})"
                )
            option = cls.protocol_options[key]
            if not option.accepts(value):
                allowed = ", ".join(option.choices) or "a non-negative integer"
                raise VpsbenchError(
                    f"protocol option {key}={value!r} of {cls.name!r} must be {allowed}"
                )
            resolved[key] = value
        return resolved

    def default_split(self) -> str:
        """The split evaluated when none is named: ``val`` or ``validation``, else the first."""
        splits = self.facts.splits
        return next((s for s in ("val", "validation") if s in splits), splits[0])

    # -- what the evaluator needs -------------------------------------------------------------
    @abc.abstractmethod
    def label_space(self) -> LabelSpace:
        """The evaluation label space under the chosen protocol."""

    @abc.abstractmethod
    def class_mapping(self) -> Sequence[ClassMappingRow]:
        """Native class → evaluation class, as data (shown by ``datasets info``)."""

    @abc.abstractmethod
    def sequences(self, split: str) -> list[SequenceRef]:
        """The annotated frames of every sequence of ``split``, in temporal order.

        Raises :class:`DatasetNotFoundError` when the root or split is missing.
        """

    def official_split(self, split: str) -> Mapping[str, int] | None:
        """The official sequences of ``split`` and their annotated frame counts, if fixed.

        The same table ``verify`` checks against; ``evaluate`` refuses a split that lacks any of
        them unless the user names sequences on purpose. ``None``: the loader knows no fixed list.
        """
        return None

    def official_name(self, sequence: str) -> str:
        """The official name of a sequence as :meth:`sequences` lists it (the same by default)."""
        return sequence

    @abc.abstractmethod
    def load_ground_truth(self, split: str, frame: FrameRef) -> PanopticFrame:
        """Ground truth of one frame in the evaluation label space (ignore = 255, crowd = inst 0).

        Raises :class:`~vpsbench.errors.InputError` naming the file when it is missing or broken.
        """

    def load_ground_truth_codes(self, split: str, frame: FrameRef) -> CodedFrame | None:
        """The same ground truth as one code per pixel (the evaluator's fast path), or ``None``.

        Loaders whose files pack a frame into one pixel value (STEP PNGs) return it with a
        decoder whose results and errors are :meth:`load_ground_truth`'s; ``None``: use that.
        """
        return None

    def load_pixel_weights(self, split: str, frame: FrameRef) -> npt.NDArray[np.float64] | None:
        """Per-pixel weights for weighted STQ (Waymo wSTQ), or ``None`` for unit weights."""
        return None

    def image_path(self, split: str, frame: FrameRef) -> Path | None:
        """The RGB image of a frame, for visualisation; ``None`` if the layout has none."""
        return None

    @abc.abstractmethod
    def verify(self, split: str) -> list[Problem]:
        """Check the split on disk and return every problem found (empty list = all good).

        Looks for missing and extra frames, unreadable files, wrong sizes, ids out of range.
        """
