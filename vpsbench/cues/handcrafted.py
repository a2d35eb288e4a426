"""Weight-free dense features: colour, texture, position (and depth) per cell, numpy/scipy only.

The weight-free baselines cluster these into pseudo-classes where VideoCUPS clusters distilled
DINO features (paper Sec. 3.1, k-means into 27 pseudo-classes). Per cell of ``stride × stride``
frame pixels (cell (i, j) = pixels ``[i·s, (i+1)·s) × [j·s, (j+1)·s)``, the last row/column
padded with edge pixels) the provider averages:

* ``L``, ``a``, ``b`` — CIE L*a*b* colour (sRGB, D65 white) — perceptually uniform, so Euclidean
  k-means distances match colour differences;
* texture at two scales σ ∈ {1, 3} px: ``grad@σ`` (gradient magnitude) and the oriented
  second-derivative responses ``dxx@σ`` (vertical structure), ``dyy@σ`` (horizontal),
  ``dxy@σ`` (diagonal) of L*, scale-normalised (× σ, × σ²) and turned into local energies
  (root-mean-square over a Gaussian window of 2σ, then ``log1p``) so that a textured region has a
  high value throughout, not only on its edges;
* ``x``, ``y`` — the cell centre in [-1, 1] (left/top = -1), times ``position_weight``;
* ``log_depth`` — only with ``depth=`` a depth provider name (e.g. ``oracle``): log of the depth
  clipped to [0.5, 500] m (``inf`` sky → 500), times ``depth_weight``.

Standardisation (``standardize``): ``fixed`` (default) maps every channel with constants chosen
once (:data:`FIXED_SCALING`) to roughly zero mean and unit spread on street scenes, so the same
colour gets the same feature in every frame and dataset-wide k-means is consistent; ``frame``
z-scores each channel per frame instead. Each channel then has about equal weight in Euclidean
k-means, apart from ``position_weight`` and ``depth_weight``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from vpsbench.cues.base import (
    DepthProvider,
    FeatureMap,
    FeatureProvider,
    FloatImage,
    Image,
    VideoClip,
    make_cue,
    register_cue,
)
from vpsbench.errors import VpsbenchError

FloatArray = npt.NDArray[np.float64]
TEXTURE_SCALES = (1.0, 3.0)
TEXTURE_FILTERS = ("grad", "dxx", "dyy", "dxy")
DEPTH_RANGE = (0.5, 500.0)
# (centre, spread) per channel for ``standardize="fixed"``: rounded means and standard deviations
# of the raw channels over vpsbench's synthetic street videos (3 videos × 4 frames, seed 0), so
# that each channel has about unit spread; position is scaled to unit variance (uniform on ±1).
FIXED_SCALING: dict[str, tuple[float, float]] = {
    "L": (45.0, 20.0),
    "a": (0.0, 10.0),
    "b": (0.0, 12.0),
    "grad@1": (1.2, 0.7),
    "dxx@1": (0.7, 0.65),
    "dyy@1": (0.75, 0.55),
    "dxy@1": (0.45, 0.4),
    "grad@3": (1.5, 0.65),
    "dxx@3": (1.0, 0.7),
    "dyy@3": (1.15, 0.55),
    "dxy@3": (0.75, 0.45),
    "x": (0.0, 1.0 / math.sqrt(3.0)),
    "y": (0.0, 1.0 / math.sqrt(3.0)),
    "log_depth": (3.0, 1.5),
}
_D65_WHITE = np.array([0.95047, 1.0, 1.08883])
_SRGB_TO_XYZ = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ]
)


def srgb_to_lab(image: Image | FloatImage) -> FloatArray:
    """CIE L*a*b* (D65) of an sRGB uint8 image (H, W, 3): L in [0, 100], a/b about ±100."""
    rgb = image[..., :3].astype(np.float64) / 255.0
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = linear @ _SRGB_TO_XYZ.T / _D65_WHITE
    epsilon = (6.0 / 29.0) ** 3
    f = np.where(xyz > epsilon, np.cbrt(xyz), xyz / (3 * (6.0 / 29.0) ** 2) + 4.0 / 29.0)
    lightness = 116.0 * f[..., 1] - 16.0
    a = 500.0 * (f[..., 0] - f[..., 1])
    b = 200.0 * (f[..., 1] - f[..., 2])
    return np.stack([lightness, a, b], axis=-1)


def texture_energies(lightness: FloatArray) -> dict[str, FloatArray]:
    """Local energies (log1p of a Gaussian-window RMS) of oriented derivative filters of L*."""
    energies: dict[str, FloatArray] = {}
    for sigma in TEXTURE_SCALES:
        responses = {
            "grad": sigma * ndimage.gaussian_gradient_magnitude(lightness, sigma),
            "dxx": sigma**2 * ndimage.gaussian_filter(lightness, sigma, order=(0, 2)),
            "dyy": sigma**2 * ndimage.gaussian_filter(lightness, sigma, order=(2, 0)),
            "dxy": sigma**2 * ndimage.gaussian_filter(lightness, sigma, order=(1, 1)),
        }
        for name, response in responses.items():
            power = ndimage.gaussian_filter(response**2, 2 * sigma)
            energies[f"{name}@{sigma:g}"] = np.log1p(np.sqrt(np.maximum(power, 0.0)))
    return energies


def cell_means(values: FloatArray, stride: int) -> FloatArray:
    """Mean over each ``stride × stride`` cell of (H, W, C) values; edges padded by replication."""
    height, width, channels = values.shape
    rows, cols = math.ceil(height / stride), math.ceil(width / stride)
    padded = np.pad(
        values, ((0, rows * stride - height), (0, cols * stride - width), (0, 0)), mode="edge"
    )
    blocks = padded.reshape(rows, stride, cols, stride, channels)
    means: FloatArray = blocks.mean(axis=(1, 3))
    return means


def _positive_number(value: object, option: str, integer: bool = False) -> float:
    try:
        number = float(str(value))
    except ValueError:
        number = -1.0
    invalid = not math.isfinite(number) or number < 0
    if invalid or (integer and (number != int(number) or number == 0)):
        kind = "a positive integer" if integer else "a non-negative number"
        raise VpsbenchError(f"option {option}={value!r} must be {kind}")
    return number


@register_cue
class HandcraftedFeatures(FeatureProvider):
    """Colour (Lab), texture, position and optional depth per cell; needs no weights."""

    name: ClassVar[str] = "handcrafted"
    description: ClassVar[str] = (
        "weight-free per-cell Lab colour, texture energies at two scales, position (and depth "
        "with depth=PROVIDER); options stride, depth, standardize, position_weight, depth_weight"
    )

    def __init__(
        self,
        stride: int | str = 4,
        depth: str | DepthProvider | None = None,
        depth_options: Mapping[str, Any] | None = None,
        standardize: str = "fixed",
        position_weight: float | str = 1.0,
        depth_weight: float | str = 1.0,
    ) -> None:
        self.stride = int(_positive_number(stride, "stride", integer=True))
        if standardize not in ("fixed", "frame"):
            raise VpsbenchError(f"option standardize={standardize!r} must be fixed or frame")
        self.standardize = standardize
        self.position_weight = _positive_number(position_weight, "position_weight")
        self.depth_weight = _positive_number(depth_weight, "depth_weight")
        self.depth_provider: DepthProvider | None
        if depth is None or isinstance(depth, DepthProvider):
            self.depth_provider = depth
        elif str(depth).lower() in {"", "none"}:
            self.depth_provider = None
        else:
            built = make_cue("depth", str(depth), depth_options)
            if not isinstance(built, DepthProvider):  # pragma: no cover - registry guarantees it
                raise VpsbenchError(f"{depth!r} is not a depth provider")
            self.depth_provider = built

    @property
    def channel_names(self) -> tuple[str, ...]:
        """Names of the feature channels, in order."""
        texture = tuple(f"{name}@{sigma:g}" for sigma in TEXTURE_SCALES for name in TEXTURE_FILTERS)
        depth = ("log_depth",) if self.depth_provider is not None else ()
        return ("L", "a", "b", *texture, "x", "y", *depth)

    def features(self, clip: VideoClip, t: int) -> FeatureMap:
        """Standardised features (C, ceil(H/stride), ceil(W/stride)); channels as named above."""
        image = clip.image(t)
        if self.depth_provider is None:
            return self._cell_features(image, None)
        depth = self.depth_provider.depth_motion(clip, t).depth.astype(np.float64)
        if depth.shape != image.shape[:2]:
            raise VpsbenchError(
                f"depth of shape {depth.shape} does not match the frame {image.shape[:2]}"
            )
        depth = np.where(np.isfinite(depth), depth, DEPTH_RANGE[1])
        return self._cell_features(image, np.log(np.clip(depth, *DEPTH_RANGE)))

    def image_features(self, image: Image | FloatImage) -> FeatureMap:
        """Features of any RGB image at ``stride``; position is relative to that image.

        Refused with ``depth=``: a crop or resized frame has no depth of its own here.
        """
        if self.depth_provider is not None:
            raise VpsbenchError(
                "handcrafted: image-level features (sliding windows, resized frames) have no "
                "depth channel; build the provider without depth= for them"
            )
        return self._cell_features(image, None)

    def _cell_features(self, image: Image | FloatImage, log_depth: FloatArray | None) -> FeatureMap:
        """Per-cell standardised channels of ``image`` (and of per-pixel ``log_depth``)."""
        lab = srgb_to_lab(image)
        appearance = [lab[..., 0], lab[..., 1], lab[..., 2]]
        appearance += list(texture_energies(lab[..., 0]).values())
        height, width = appearance[0].shape
        per_pixel = appearance if log_depth is None else [*appearance, log_depth]
        cells = cell_means(np.stack(per_pixel, axis=-1), self.stride)
        rows, cols = cells.shape[:2]
        centre_y = ((np.arange(rows) + 0.5) * self.stride).clip(max=height) / height * 2 - 1
        centre_x = ((np.arange(cols) + 0.5) * self.stride).clip(max=width) / width * 2 - 1
        grid_y, grid_x = np.meshgrid(centre_y, centre_x, indexing="ij")
        split = len(appearance)
        stacked = np.concatenate(
            [cells[..., :split], grid_x[..., None], grid_y[..., None], cells[..., split:]],
            axis=-1,
        )
        names = self.channel_names
        weights = np.ones(len(names))
        weights[names.index("x")] = weights[names.index("y")] = self.position_weight
        if log_depth is not None:
            weights[names.index("log_depth")] = self.depth_weight
        features = (self._standardized(stacked, names) * weights).transpose(2, 0, 1)
        return FeatureMap(
            features=np.ascontiguousarray(features, dtype=np.float32), stride=self.stride
        )

    def _standardized(self, values: FloatArray, names: tuple[str, ...]) -> FloatArray:
        if self.standardize == "fixed":
            centre = np.array([FIXED_SCALING[name][0] for name in names])
            spread = np.array([FIXED_SCALING[name][1] for name in names])
        else:
            flat = values.reshape(-1, values.shape[-1])
            centre, spread = flat.mean(axis=0), flat.std(axis=0)
            spread = np.where(spread > 1e-12, spread, 1.0)
        standardized: FloatArray = (values - centre) / spread
        return standardized
