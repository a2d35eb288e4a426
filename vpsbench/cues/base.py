"""The unsupervised cues methods estimate on video, one interface per cue, selectable by name.

Three kinds of cue, as in VideoCUPS' pseudo-labelling (paper Sec. 3.1):

* ``flow`` — optical flow between two frames (SMURF in the paper);
* ``depth`` — monocular depth and the probability that a pixel moves independently
  (DynamoDepth in the paper);
* ``features`` — dense self-supervised features for semantic clustering (DINO / DepthG).

A provider works on a :class:`VideoClip` (a sequence of a dataset, images loaded on demand), so
the same call serves estimators that only look at pixels and the ``oracle`` that reads the
synthetic dataset's exact cues. Providers register with :func:`register_cue` and are built with
:func:`make_cue` (``make_cue("flow", "dis")``). Providers that need network weights take a
``weights`` path and raise :class:`MissingWeightsError` (naming the file and where it is
published) when it is absent.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
import numpy.typing as npt

from vpsbench.datasets.base import Dataset
from vpsbench.errors import VpsbenchError
from vpsbench.formats.png import read_png
from vpsbench.video import SequenceRef

Image = npt.NDArray[np.uint8]  # (H, W, 3) RGB
FloatImage = npt.NDArray[np.float32]  # (H, W, 3) RGB in [0, 255]: a resampled or padded frame
Flow = npt.NDArray[np.float32]  # (H, W, 2): (dx, dy) in pixels, from the source to the target
CUE_KINDS = ("flow", "depth", "features")


class MissingWeightsError(VpsbenchError):
    """A provider's network weights are not on disk; says which file and where to get it."""

    def __init__(self, provider: str, path: Path | None, published: str) -> None:
        where = f"{path}" if path is not None else "no weights file given"
        super().__init__(
            f"{provider}: weights not found ({where}); they are published at {published} — "
            "download them and pass their path (e.g. --set weights=PATH)"
        )


@dataclass
class VideoClip:
    """One sequence of a dataset split; RGB frames are read on demand and cached per clip."""

    dataset: Dataset
    split: str
    sequence: SequenceRef
    _images: dict[int, Image] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.sequence.frames)

    def image(self, t: int) -> Image:
        """RGB frame ``t`` (uint8, H×W×3)."""
        if t not in self._images:
            path = self.dataset.image_path(self.split, self.sequence.frames[t])
            if path is None:
                raise VpsbenchError(f"{self.dataset.name} has no images to estimate cues from")
            decoded = read_png(path)
            rgb = decoded if decoded.ndim == 3 else np.repeat(decoded[..., None], 3, axis=2)
            self._images[t] = rgb.astype(np.uint8, copy=False)
        return self._images[t]


@dataclass(frozen=True)
class DepthMotion:
    """Monocular depth (metres or relative, > 0) and motion probability in [0, 1], both (H, W)."""

    depth: npt.NDArray[np.float32]
    motion: npt.NDArray[np.float32]


@dataclass(frozen=True)
class FeatureMap:
    """Dense features (C, h, w) of a frame at ``stride`` pixels per cell."""

    features: npt.NDArray[np.float32]
    stride: int


def positive_int_option(value: object, option: str) -> int:
    """A provider option that must be an integer ≥ 1, given as a number or as text (``--set``)."""
    try:
        number = int(str(value))
    except ValueError:
        number = 0
    if number <= 0:
        raise VpsbenchError(f"option {option}={value!r} must be a positive integer")
    return number


class CueProvider(abc.ABC):
    """Base of every provider; ``options`` are its keyword arguments (weights path, sizes, …)."""

    kind: ClassVar[str]
    name: ClassVar[str]
    description: ClassVar[str]
    needs_weights: ClassVar[bool] = False


class FlowProvider(CueProvider):
    """Optical flow between two frames of a clip."""

    kind = "flow"

    @abc.abstractmethod
    def flow(self, clip: VideoClip, source: int, target: int) -> Flow:
        """Flow from frame ``source`` to frame ``target``: pixel p of source ↦ p + flow[p]."""


class DepthProvider(CueProvider):
    """Monocular depth and motion probability of a frame (its neighbours may be used)."""

    kind = "depth"

    @abc.abstractmethod
    def depth_motion(self, clip: VideoClip, t: int) -> DepthMotion:
        """Depth and motion probability of frame ``t``."""


class FeatureProvider(CueProvider):
    """Dense features of a frame for semantic clustering."""

    kind = "features"

    @abc.abstractmethod
    def features(self, clip: VideoClip, t: int) -> FeatureMap:
        """Features of frame ``t``."""

    @abc.abstractmethod
    def image_features(self, image: Image | FloatImage) -> FeatureMap:
        """Features of any RGB image (a frame, a crop, a resized frame) at its own pixel scale.

        Cell (i, j) covers image pixels ``[i·stride, (i+1)·stride) × [j·stride, (j+1)·stride)``
        (the last row/column padded), so a caller can place crops' and resized frames' features
        exactly — what sliding-window and low-resolution inference need (VideoCUPS Eq. 2).
        A float image (values in [0, 255]) is used as is, so a resized frame is not rounded.
        """


_REGISTRY: dict[tuple[str, str], type[CueProvider]] = {}
ProviderClass = TypeVar("ProviderClass", bound=type[CueProvider])


def register_cue(cls: ProviderClass) -> ProviderClass:
    """Class decorator: make a provider available as ``(cls.kind, cls.name)``."""
    key = (cls.kind, cls.name)
    if key in _REGISTRY and _REGISTRY[key] is not cls:
        raise VpsbenchError(f"cue provider {cls.kind}/{cls.name} is registered twice")
    _REGISTRY[key] = cls
    return cls


def cue_names(kind: str) -> list[str]:
    """Names of the registered providers of ``kind``."""
    _import_builtin_providers()
    return sorted(name for k, name in _REGISTRY if k == kind)


def cue_class(kind: str, name: str) -> type[CueProvider]:
    """The provider class; a clear error lists the known names of that kind."""
    _import_builtin_providers()
    if kind not in CUE_KINDS:
        raise VpsbenchError(f"unknown cue kind {kind!r}; kinds: {', '.join(CUE_KINDS)}")
    try:
        return _REGISTRY[(kind, name)]
    except KeyError:
        raise VpsbenchError(
            f"unknown {kind} provider {name!r}; known: {', '.join(cue_names(kind))}"
            + _unavailable_hint()
        ) from None


def make_cue(kind: str, name: str, options: Mapping[str, Any] | None = None) -> CueProvider:
    """Build a provider by kind and name with keyword ``options``."""
    return cue_class(kind, name)(**dict(options or {}))


_BUILTIN_MODULES: list[str] = []
#: Provider modules left out because an optional package is missing: module → package.
_UNAVAILABLE_MODULES: dict[str, str] = {}


def _import_builtin_providers() -> None:
    # Importing the modules runs their @register_cue decorators (torch ones only if installed).
    import importlib

    for module in _BUILTIN_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as error:
            if error.name not in {"torch", "cv2"}:
                raise
            _UNAVAILABLE_MODULES[module] = error.name
        else:
            _UNAVAILABLE_MODULES.pop(module, None)


def _unavailable_hint() -> str:
    """Why providers may be missing: the modules left out and the packages they need."""
    if not _UNAVAILABLE_MODULES:
        return ""
    modules = ", ".join(f"{m} (needs {p})" for m, p in sorted(_UNAVAILABLE_MODULES.items()))
    return f"; not loaded: {modules} — pip install 'vpsbench[methods]'"


def add_builtin_modules(*modules: str) -> None:
    """Declare modules whose import registers providers (done once, in ``vpsbench.cues``)."""
    _BUILTIN_MODULES.extend(m for m in modules if m not in _BUILTIN_MODULES)
