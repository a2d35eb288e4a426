"""Semantic pseudo-labels: k-means pseudo-classes, depth-guided inference (Eq. 2), dense CRF.

VideoCUPS (paper Sec. 3.1) clusters distilled SSL features with cosine k-means into c_p = 27
pseudo-classes that are consistent across the dataset, predicts class probabilities at a low
resolution (``P_low``, the whole frame resized, close to the SSL pre-training resolution) and at
a high resolution (``P_high``, overlapping sliding windows, soft-aggregated), fuses them per
pixel with the depth weight α = 1/(d + 1) (Eq. 2: near pixels trust the coarse context, far
pixels the fine detail), and regularises the result with a dense CRF.

The steps are separate functions so that a method can switch each one (the paper's ablation:
vanilla low-resolution inference vs + depth-guided inference) — see :func:`semantic_probabilities`.
A *crop predictor* is any callable mapping an RGB crop ``(h, w, 3)`` uint8 to class probabilities
``(K, h', w')`` covering that crop (any resolution; they are resampled bilinearly to the crop,
:func:`cells_to_pixels` places a feature grid's cells exactly). All probability maps are float32.

**Dense CRF.** The paper uses regularised Frank–Wolfe inference (Lê-Huu & Alahari 2021); this
module uses the classic mean-field solver of Krähenbühl & Koltun (2011) with Potts compatibility,
a Gaussian spatial kernel and a bilateral (position + colour) kernel. Mean field is the special
case of regularised Frank–Wolfe with entropy regularisation and step size 1, needs no step-size
or regularisation schedule, and is what the DepthG/STEGO lineage of the semantic model applies,
so it is the conservative reference. The bilateral filtering runs on a sparse bilateral grid
(cells one σ wide, only the cells touched by the multilinear splat stored; the Gaussian blur is
separable, one [e^-1/2, 1, e^-1/2] pass per axis among those cells) instead of the permutohedral
lattice; both kernels are normalised symmetrically (``D^-1/2 K D^-1/2``, as the reference densecrf
code does), so the weights keep their usual scale and the grid's approximation (≈ 2–4 % mean
relative error against the exact filter) does not change it. Pure numpy/scipy (sparse matrix
products). Cost grows with the touched cells: CUPS' σ_rgb = 3 touches many (256×512, K = 27,
10 iterations: 8.5 s on a loaded 2-core machine, against 4.0 s for Krähenbühl & Koltun's
σ_rgb = 13 at 5 iterations, measured side by side).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image as PILImage
from scipy import ndimage, sparse

from vpsbench.clustering import fit_cosine_kmeans, normalize_rows
from vpsbench.cues.base import FeatureMap, Image

Probabilities = npt.NDArray[np.float32]  # (K, H, W), sums to 1 over K
FloatArray = npt.NDArray[np.floating]
CropPredictor = Callable[[Image], FloatArray]
NUM_PSEUDO_CLASSES = 27  # c_p (paper Sec. 4, following CUPS)
_TRUNCATE = 3.0  # the spatial Gaussian is cut at 3σ
_LOG_FLOOR = 1e-8  # probabilities are clipped here before taking the CRF's unary −log P
_DENSE_TABLE_LIMIT = 1 << 24  # grid keys below this are indexed by a table, else by sorting


def fit_pseudo_classes(
    feature_samples: FloatArray,
    num_classes: int = NUM_PSEUDO_CLASSES,
    seed: int = 0,
    iterations: int = 100,
    batch_size: int = 4096,
) -> npt.NDArray[np.float64]:
    """Unit centroids (K, C): cosine k-means on dataset-wide samples (Sec. 3.1, c_p = 27)."""
    samples = np.asarray(feature_samples, dtype=np.float64)
    if samples.ndim != 2:
        raise ValueError(f"feature samples must be (N, C), got shape {samples.shape}")
    return fit_cosine_kmeans(
        samples, num_classes, iterations=iterations, batch_size=batch_size, seed=seed
    )


def sample_feature_vectors(
    feature_maps: Iterable[FeatureMap | FloatArray], per_map: int, seed: int = 0
) -> npt.NDArray[np.float64]:
    """Up to ``per_map`` random cells (N, C) of each (C, h, w) map, to fit dataset-wide classes."""
    rng = np.random.default_rng(seed)
    chosen: list[npt.NDArray[np.float64]] = []
    for feature_map in feature_maps:
        cells = _feature_array(feature_map)
        vectors = cells.reshape(cells.shape[0], -1).T
        picked = rng.choice(vectors.shape[0], size=min(per_map, vectors.shape[0]), replace=False)
        chosen.append(np.asarray(vectors[np.sort(picked)], dtype=np.float64))
    if not chosen:
        raise ValueError("no feature maps to sample from")
    return np.concatenate(chosen, axis=0)


def class_probabilities(
    features: FeatureMap | FloatArray, centroids: FloatArray, temperature: float = 0.5
) -> Probabilities:
    """Soft pseudo-classes (K, h, w): softmax of cosine similarity / temperature (Sec. 3.1)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    cells = _feature_array(features)
    channels, height, width = cells.shape
    if centroids.ndim != 2 or centroids.shape[1] != channels:
        raise ValueError(f"centroids {centroids.shape} do not match {channels} feature channels")
    similarity = normalize_rows(cells.reshape(channels, -1).T) @ normalize_rows(centroids).T
    probabilities = _softmax_rows(similarity / temperature)
    return np.ascontiguousarray(probabilities.T.reshape(-1, height, width), dtype=np.float32)


def upsample(probabilities: FloatArray, size: tuple[int, int]) -> Probabilities:
    """Bilinear resampling of (K, h, w) maps to ``size`` = (H, W) (pixel centres aligned, Eq. 2)."""
    values = np.asarray(probabilities, dtype=np.float32)
    if values.ndim != 3:
        raise ValueError(f"probabilities must be (K, h, w), got shape {values.shape}")
    values = _resample_axis(values, 1, size[0])
    return np.ascontiguousarray(_resample_axis(values, 2, size[1]))


def cells_to_pixels(probabilities: FloatArray, stride: int, size: tuple[int, int]) -> Probabilities:
    """Per-cell maps (K, h, w) of a ``stride``-px grid (padded frame) at the frame's (H, W)."""
    _, cells_high, cells_wide = probabilities.shape
    if cells_high * stride < size[0] or cells_wide * stride < size[1]:
        raise ValueError(f"{cells_high}×{cells_wide} cells of {stride} px do not cover {size}")
    full = upsample(probabilities, (cells_high * stride, cells_wide * stride))
    return np.ascontiguousarray(full[:, : size[0], : size[1]])


def low_resolution_probabilities(
    predictor: CropPredictor, image: Image, size: int | tuple[int, int]
) -> Probabilities:
    """P_low (Eq. 2): the frame resized to ``size`` (short side, or (h, w)), upsampled back."""
    height, width = image.shape[:2]
    if isinstance(size, int):
        scale = size / min(height, width)
        low_size = (max(1, round(height * scale)), max(1, round(width * scale)))
    else:
        low_size = size
    resized = np.asarray(
        PILImage.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).resize(
            (low_size[1], low_size[0]), PILImage.Resampling.BILINEAR
        )
    )
    return upsample(_checked_prediction(predictor(resized)), (height, width))


def sliding_window_probabilities(
    predictor: CropPredictor, image: Image, window: int, stride: int
) -> Probabilities:
    """P_high (Eq. 2): mean of overlapping ``window``² crops' predictions (last window flush)."""
    if window <= 0 or stride <= 0:
        raise ValueError(f"window ({window}) and stride ({stride}) must be positive")
    height, width = image.shape[:2]
    window_high, window_wide = min(window, height), min(window, width)
    total: Probabilities | None = None
    coverage = np.zeros((height, width), dtype=np.float32)
    for top in _window_starts(height, window_high, stride):
        for left in _window_starts(width, window_wide, stride):
            crop = image[top : top + window_high, left : left + window_wide]
            crop_probabilities = upsample(
                _checked_prediction(predictor(crop)), (window_high, window_wide)
            )
            if total is None:
                total = np.zeros((crop_probabilities.shape[0], height, width), dtype=np.float32)
            total[:, top : top + window_high, left : left + window_wide] += crop_probabilities
            coverage[top : top + window_high, left : left + window_wide] += 1.0
    assert total is not None  # at least one window always fits
    return np.ascontiguousarray(total / coverage, dtype=np.float32)


def depth_guided_fusion(p_low: FloatArray, p_high: FloatArray, depth: FloatArray) -> Probabilities:
    """Eq. 2: P* = α·P_low + (1 − α)·P_high with α = 1/(d + 1) per pixel (d = ∞ → α = 0).

    Depth below 0 counts as 0 (α = 1); NaN depth counts as unknown-far (α = 0, the detailed
    high-resolution prediction).
    """
    if p_low.shape != p_high.shape or p_low.shape[1:] != depth.shape:
        raise ValueError(
            f"P_low {p_low.shape}, P_high {p_high.shape} and depth {depth.shape} must agree "
            "(upsample P_low to P_high's resolution first)"
        )
    distance = np.maximum(np.nan_to_num(np.asarray(depth, dtype=np.float64), nan=np.inf), 0.0)
    alpha = 1.0 / (distance + 1.0)
    fused = alpha * np.asarray(p_low, dtype=np.float64) + (1.0 - alpha) * np.asarray(
        p_high, dtype=np.float64
    )
    return np.ascontiguousarray(fused, dtype=np.float32)


# CUPS' dense-CRF constants (cups/crf.py, the STEGO/DepthG lineage): 10 iterations, Gaussian
# kernel σ_xy 1 px with weight 3, bilateral kernel σ_xy 67 px, σ_rgb 3 with weight 4.
CRF_ITERATIONS = 10
CRF_SPATIAL_SIGMA = 1.0
CRF_SPATIAL_WEIGHT = 3.0
CRF_BILATERAL_SPATIAL_SIGMA = 67.0
CRF_BILATERAL_COLOUR_SIGMA = 3.0
CRF_BILATERAL_WEIGHT = 4.0


@dataclass(frozen=True)
class CrfParameters:
    """Dense-CRF settings, CUPS' by default (``cups/crf.py``; sigmas in px and RGB units)."""

    iterations: int = CRF_ITERATIONS
    spatial_sigma: float = CRF_SPATIAL_SIGMA
    spatial_weight: float = CRF_SPATIAL_WEIGHT
    bilateral_spatial_sigma: float = CRF_BILATERAL_SPATIAL_SIGMA
    bilateral_colour_sigma: float = CRF_BILATERAL_COLOUR_SIGMA
    bilateral_weight: float = CRF_BILATERAL_WEIGHT


def dense_crf(
    probabilities: FloatArray,
    image: Image,
    iterations: int = CRF_ITERATIONS,
    *,
    spatial_sigma: float = CRF_SPATIAL_SIGMA,
    spatial_weight: float = CRF_SPATIAL_WEIGHT,
    bilateral_spatial_sigma: float = CRF_BILATERAL_SPATIAL_SIGMA,
    bilateral_colour_sigma: float = CRF_BILATERAL_COLOUR_SIGMA,
    bilateral_weight: float = CRF_BILATERAL_WEIGHT,
) -> Probabilities:
    """Mean-field marginals (K, H, W) of a fully connected Potts CRF (Sec. 3.1's regularisation).

    Unary −log P; pairwise w_s·k_spatial + w_b·k_bilateral on [l_i ≠ l_j]. Each iteration:
    Q ← softmax(log P + w_s·K̃_s Q + w_b·K̃_b Q), K̃ the symmetrically normalised kernels.
    """
    prior = np.asarray(probabilities, dtype=np.float32)
    classes, height, width = prior.shape
    if image.shape[:2] != (height, width):
        raise ValueError(f"image {image.shape[:2]} and probabilities {prior.shape[1:]} differ")
    log_prior = np.log(np.clip(prior, _LOG_FLOOR, 1.0)).reshape(classes, -1).T
    spatial_filter = NormalisedGaussianFilter((height, width), spatial_sigma)
    bilateral_filter = BilateralGrid(image, bilateral_spatial_sigma, bilateral_colour_sigma)
    marginals = _softmax_rows(log_prior)
    for _ in range(iterations):
        message = spatial_weight * spatial_filter(marginals)
        message += bilateral_weight * bilateral_filter(marginals)
        marginals = _softmax_rows(log_prior + message)
    return np.ascontiguousarray(marginals.T.reshape(classes, height, width), dtype=np.float32)


class NormalisedGaussianFilter:
    """The spatial kernel: symmetrically normalised Gaussian blur of per-pixel (H·W, K) vectors."""

    def __init__(self, size: tuple[int, int], sigma: float) -> None:
        self.size = size
        self.sigma = sigma
        mass = ndimage.gaussian_filter(
            np.ones(size, dtype=np.float32), sigma, mode="constant", truncate=_TRUNCATE
        )
        self.scale = (1.0 / np.sqrt(mass)).reshape(-1, 1).astype(np.float32)

    def __call__(self, values: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Filtered (N, K) values."""
        scaled = (values * self.scale).reshape(*self.size, -1)
        blurred = ndimage.gaussian_filter(
            scaled, (self.sigma, self.sigma, 0.0), mode="constant", truncate=_TRUNCATE
        )
        return np.asarray(blurred.reshape(values.shape) * self.scale, dtype=np.float32)


class BilateralGrid:
    """Symmetrically normalised bilateral filter of per-pixel vectors on a sparse 5-D grid.

    Features (row, col)/σ_xy and RGB/σ_rgb; one grid cell per σ. A pixel splats into its 32
    surrounding cells with multilinear weights, the touched cells are blurred with the sampled
    Gaussian exp(−Δ²/2) one axis after the other, and each pixel reads back with its splat
    weights — sparse matrices built once per image, so one filtering is seven sparse products.
    Like the permutohedral lattice's blur, mass passing through untouched cells is dropped.
    """

    def __init__(self, image: Image, spatial_sigma: float, colour_sigma: float) -> None:
        height, width = image.shape[:2]
        rows, cols = np.mgrid[0:height, 0:width]
        colours = np.asarray(image, dtype=np.float64).reshape(-1, 3)
        positions = np.column_stack(
            [rows.ravel() / spatial_sigma, cols.ravel() / spatial_sigma, colours / colour_sigma]
        )
        positions -= positions.min(axis=0) - 1.0  # every cell index ≥ 1: neighbours never wrap
        lower = np.floor(positions).astype(np.int64)
        fraction = positions - lower
        extent = lower.max(axis=0) + 3
        strides = np.cumprod(np.concatenate([[1], extent[:0:-1]]))[::-1]
        base_key = lower @ strides
        pixel_count = positions.shape[0]

        corners = np.array(list(itertools.product((0, 1), repeat=5)))  # (32, 5)
        keys = base_key[:, None] + (corners @ strides)[None, :]  # (N, 32)
        weights = np.ones((pixel_count, corners.shape[0]))
        for dimension in range(5):
            upper = corners[:, dimension] == 1
            weights *= np.where(
                upper,
                fraction[:, dimension : dimension + 1],
                1.0 - fraction[:, dimension : dimension + 1],
            )
        cells, cell_of = _compact_keys(keys.ravel())
        # Each pixel reads exactly its 32 corners: the slice matrix is CSR by construction.
        self.slice = sparse.csr_matrix(
            (weights.ravel().astype(np.float32), cell_of, np.arange(0, keys.size + 1, 32)),
            shape=(pixel_count, cells.size),
        )
        self.splat = self.slice.T  # CSC view: splatting is the transpose of slicing
        self.blurs = _grid_blur_matrices(cells, strides)
        mass = self._filter_unnormalised(np.ones((pixel_count, 1), dtype=np.float32))
        self.scale = (1.0 / np.sqrt(np.maximum(mass, 1e-20))).astype(np.float32)

    def _filter_unnormalised(self, values: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Splat, blur, slice."""
        grid = self.splat @ values
        for blur in self.blurs:
            grid = blur @ grid
        return np.asarray(self.slice @ grid, dtype=np.float32)

    def __call__(self, values: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Filtered (N, K) values."""
        return self._filter_unnormalised(values * self.scale) * self.scale


def semantic_probabilities(
    image: Image,
    predictor: CropPredictor,
    depth: FloatArray | None = None,
    *,
    low_resolution: int | tuple[int, int] = 320,
    window: int = 320,
    stride: int = 160,
    use_sliding_window: bool = True,
    use_depth_guidance: bool = True,
    use_crf: bool = True,
    crf: CrfParameters | None = None,
) -> Probabilities:
    """Pseudo-class probabilities (K, H, W) of the Sec. 3.1 pipeline, each step switchable.

    ``use_sliding_window`` / ``use_depth_guidance``: off/off → P_low (vanilla), on/on → P* of
    Eq. 2 (needs ``depth``), on/off → P_high alone; off/on is an error. ``use_crf`` then applies
    :func:`dense_crf` with ``crf`` (default :class:`CrfParameters`).
    """
    if use_depth_guidance and not use_sliding_window:
        raise ValueError("depth-guided inference fuses P_low with the sliding-window P_high")
    if use_depth_guidance and depth is None:
        raise ValueError("depth-guided inference needs a depth map")
    if not use_sliding_window:
        fused = low_resolution_probabilities(predictor, image, low_resolution)
    elif not use_depth_guidance:
        fused = sliding_window_probabilities(predictor, image, window, stride)
    else:
        assert depth is not None
        fused = depth_guided_fusion(
            low_resolution_probabilities(predictor, image, low_resolution),
            sliding_window_probabilities(predictor, image, window, stride),
            depth,
        )
    if not use_crf:
        return fused
    settings = crf if crf is not None else CrfParameters()
    return dense_crf(
        fused,
        image,
        settings.iterations,
        spatial_sigma=settings.spatial_sigma,
        spatial_weight=settings.spatial_weight,
        bilateral_spatial_sigma=settings.bilateral_spatial_sigma,
        bilateral_colour_sigma=settings.bilateral_colour_sigma,
        bilateral_weight=settings.bilateral_weight,
    )


def semantic_pseudo_labels(
    image: Image,
    predictor: CropPredictor,
    depth: FloatArray | None = None,
    *,
    low_resolution: int | tuple[int, int] = 320,
    window: int = 320,
    stride: int = 160,
    use_sliding_window: bool = True,
    use_depth_guidance: bool = True,
    use_crf: bool = True,
    crf: CrfParameters | None = None,
) -> npt.NDArray[np.int32]:
    """Pseudo-class id per pixel (H, W): argmax of :func:`semantic_probabilities` (Sec. 3.1)."""
    probabilities = semantic_probabilities(
        image,
        predictor,
        depth,
        low_resolution=low_resolution,
        window=window,
        stride=stride,
        use_sliding_window=use_sliding_window,
        use_depth_guidance=use_depth_guidance,
        use_crf=use_crf,
        crf=crf,
    )
    return np.asarray(np.argmax(probabilities, axis=0), dtype=np.int32)


def _feature_array(features: FeatureMap | FloatArray) -> FloatArray:
    """The (C, h, w) array of a feature map or array."""
    cells = features.features if isinstance(features, FeatureMap) else np.asarray(features)
    if cells.ndim != 3:
        raise ValueError(f"features must be (C, h, w), got shape {cells.shape}")
    return cells


def _softmax_rows(logits: FloatArray) -> npt.NDArray[np.float32]:
    """Numerically stable softmax over the last axis."""
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return np.asarray(shifted / shifted.sum(axis=-1, keepdims=True), dtype=np.float32)


def _resample_axis(
    values: npt.NDArray[np.float32], axis: int, length: int
) -> npt.NDArray[np.float32]:
    """Linear interpolation along ``axis`` to ``length`` samples (pixel centres, edges clamped)."""
    source_length = values.shape[axis]
    if source_length == length:
        return values
    source = (np.arange(length) + 0.5) * (source_length / length) - 0.5
    source = np.clip(source, 0.0, source_length - 1)
    lower = np.floor(source).astype(np.int64)
    upper = np.minimum(lower + 1, source_length - 1)
    shape = [1] * values.ndim
    shape[axis] = length
    upper_weight = (source - lower).astype(np.float32).reshape(shape)
    return np.asarray(
        np.take(values, lower, axis=axis) * (1.0 - upper_weight)
        + np.take(values, upper, axis=axis) * upper_weight,
        dtype=np.float32,
    )


def _window_starts(length: int, window: int, stride: int) -> list[int]:
    """Window offsets every ``stride`` px, plus one flush with the end so every pixel is covered."""
    starts = list(range(0, length - window + 1, stride))
    if starts[-1] != length - window:
        starts.append(length - window)
    return starts


def _checked_prediction(prediction: FloatArray) -> npt.NDArray[np.float32]:
    """A predictor's (K, h', w') output as float32, with a clear error for a wrong shape."""
    values = np.asarray(prediction, dtype=np.float32)
    if values.ndim != 3:
        raise ValueError(
            f"a crop predictor must return (K, h, w) probabilities, got {values.shape}"
        )
    return values


def _compact_keys(
    keys: npt.NDArray[np.int64],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Sorted distinct keys and each key's index among them (counting pass when keys are small)."""
    key_range = int(keys.max()) + 1
    if key_range > _DENSE_TABLE_LIMIT:
        distinct, index = np.unique(keys, return_inverse=True)
        return distinct, index.ravel()
    present = np.zeros(key_range, dtype=bool)
    present[keys] = True
    rank = np.cumsum(present, dtype=np.int32) - 1
    return np.flatnonzero(present), rank[keys].astype(np.int64)


def _grid_blur_matrices(
    cells: npt.NDArray[np.int64], strides: npt.NDArray[np.int64]
) -> list[sparse.csr_matrix]:
    """Per axis, the sparse (M, M) blur [e^-1/2, 1, e^-1/2] among the touched grid cells."""
    count = cells.size
    lookup: Callable[[npt.NDArray[np.int64]], npt.NDArray[np.int64]]
    key_range = int(cells.max()) + int(strides @ np.ones_like(strides)) + 1
    if key_range <= _DENSE_TABLE_LIMIT:
        table = np.full(key_range, -1, dtype=np.int32)
        table[cells] = np.arange(count)

        def lookup(keys: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
            return table[keys].astype(np.int64)

    else:

        def lookup(keys: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
            position = np.minimum(np.searchsorted(cells, keys), count - 1)
            return np.where(cells[position] == keys, position, -1)

    neighbour_weight = np.float32(np.exp(-0.5))
    blurs: list[sparse.csr_matrix] = []
    identity = np.arange(count)
    for axis_stride in strides:
        rows, cols, values = [identity], [identity], [np.ones(count, dtype=np.float32)]
        for direction in (-1, 1):
            neighbour = lookup(cells + direction * axis_stride)
            found = np.flatnonzero(neighbour >= 0)
            rows.append(found)
            cols.append(neighbour[found])
            values.append(np.full(found.size, neighbour_weight, dtype=np.float32))
        blurs.append(
            sparse.csr_matrix(
                (np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))),
                shape=(count, count),
            )
        )
    return blurs
