"""Semantic pseudo-labels: k-means pseudo-classes, depth-guided inference (Eq. 2), dense CRF.

VideoCUPS (paper Sec. 3.1) clusters distilled SSL features with cosine k-means into c_p = 27
pseudo-classes that are consistent across the dataset (the semantic model S), predicts class
probabilities at a low resolution (``P_low``, the whole frame resized, close to the SSL
pre-training resolution) and at a high resolution (``P_high``, overlapping sliding windows,
soft-aggregated), fuses them per pixel with the depth weight α = 1/(d + 1) (Eq. 2: near pixels
trust the coarse context, far pixels the fine detail), and regularises the result with a dense
CRF. :func:`semantic_probabilities` is that pipeline as CUPS runs it (``cups/semantics/model.py``,
``DepthG.depth_guided_sliding_window``), each step switchable for the paper's ablation:

* S on an image is a *feature extractor* (``FeatureProvider.image_features``: image → cells)
  followed by :func:`pixel_log_probabilities`: features resampled bilinearly to the pixels, then
  log-softmax of cosine similarity to the centroids / temperature (CUPS' ``cluster_probe`` with
  α = 2, i.e. temperature 0.5);
* P_low: the frame resized by ½ (bilinear), features of it and of its mirror image flipped back
  and averaged, resampled to the frame (:func:`low_resolution_log_probabilities`);
* P_high: square windows of half the frame height every quarter height (CUPS' ``crop = H // 2``,
  ``stride = H // 4``: 320 px every 160 px on its 640 × 1280 frames), CUPS' ``F.unfold`` layout
  with zero padding of the normalised image (the ImageNet mean colour), log-probabilities
  averaged per pixel (:func:`sliding_window_log_probabilities`);
* Eq. 2 on the log-probabilities, as CUPS does (:func:`depth_guided_fusion`); the CRF takes
  their softmax.

**Dense CRF.** The paper uses regularised Frank–Wolfe inference (Lê-Huu & Alahari 2021); this
module uses the classic mean-field solver of Krähenbühl & Koltun (2011) with Potts compatibility,
a Gaussian spatial kernel and a bilateral (position + colour) kernel. Mean field is the special
case of regularised Frank–Wolfe with entropy regularisation and step size 1, needs no step-size
or regularisation schedule, and is what the DepthG/STEGO lineage of the semantic model applies,
so it is the conservative reference. The bilateral kernel is filtered on the permutohedral
lattice, as CUPS' pydensecrf filters it (:mod:`vpsbench_methods.videocups.permutohedral`:
splat, blur and slice as sparse matrices built once per frame). The spatial kernel (σ = 1 px),
which pydensecrf also puts on a lattice, is the exact separable Gaussian: as fast here, and
exact. Both kernels are normalised symmetrically (``D^-1/2 K D^-1/2``, pydensecrf's
``NORMALIZE_SYMMETRIC``).
``tests/videocups/test_crf_oracle.py`` compares the result with pydensecrf itself;
``benchmarks/bench_crf.py`` times it against pydensecrf.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from vpsbench.clustering import fit_cosine_kmeans, normalize_rows
from vpsbench.cues.base import FeatureMap, FloatImage, Image
from vpsbench_methods.videocups.permutohedral import PermutohedralLattice

Probabilities = npt.NDArray[np.float32]  # (K, H, W), sums to 1 over K
LogProbabilities = npt.NDArray[np.float32]  # (K, H, W) log-probabilities
FloatArray = npt.NDArray[np.floating]
FeatureExtractor = Callable[[Image | FloatImage], FeatureMap]  # S's network: image_features
NUM_PSEUDO_CLASSES = 27  # c_p (paper Sec. 4, following CUPS)
DEFAULT_TEMPERATURE = 0.5  # CUPS' cluster_probe(code, alpha=2): softmax(2 · cosine)
LOW_RESOLUTION_SCALE = 0.5  # CUPS' P_low: the frame at H // 2 × W // 2
#: CUPS pads the ImageNet-normalised image with zeros: the mean colour, in [0, 255].
PAD_COLOUR = (0.485 * 255, 0.456 * 255, 0.406 * 255)
_TRUNCATE = 3.0  # the spatial Gaussian is cut at 3σ
_OPENCV_MAX_CHANNELS = 128  # the most channels sepFilter2D takes in one array (measured)
_LOG_FLOOR = 1e-8  # probabilities are clipped here before taking the CRF's unary −log P


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


def pixel_log_probabilities(
    features: FeatureMap,
    centroids: FloatArray,
    size: tuple[int, int],
    image_size: tuple[int, int] | None = None,
    temperature: float = DEFAULT_TEMPERATURE,
) -> LogProbabilities:
    """S at the pixels (K, H, W): features resampled bilinearly to ``size``, then log-softmax.

    The class scores are cosine similarities to the unit ``centroids`` divided by
    ``temperature`` — CUPS' ``cluster_probe(F.interpolate(code, size), 2, log_probs=True)``
    (α = 2 is temperature 0.5). ``image_size`` is the size of the image the features were
    computed from (default ``size``): a half-resolution pass is placed on the full frame. The
    resampling is torch's ``bilinear, align_corners=False`` on the cell grid; since a dot product
    is linear it is done on the K similarity maps, and the resampled features' norms come from
    per-row norms and neighbour products, so no (C, H, W) array is ever built.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    cells = _feature_array(features).astype(np.float32, copy=False)
    channels, rows, cols = cells.shape
    if centroids.ndim != 2 or centroids.shape[1] != channels:
        raise ValueError(f"centroids {centroids.shape} do not match {channels} feature channels")
    stride = features.stride if isinstance(features, FeatureMap) else 1
    height, width = size
    source_height, source_width = image_size if image_size is not None else size
    row_index = _interpolation(rows, height, source_height / (height * stride))
    col_index = _interpolation(cols, width, source_width / (width * stride))
    unit = normalize_rows(np.asarray(centroids, dtype=np.float64)).astype(np.float32)
    dots = np.einsum("kc,chw->khw", unit, cells)
    dots = _interpolate_axis(_interpolate_axis(dots, 1, row_index), 2, col_index)
    across = _interpolate_axis(cells, 2, col_index)  # (C, rows, W): resampled along x only
    below = np.minimum(np.arange(rows) + 1, rows - 1)
    squares = np.einsum("chw,chw->hw", across, across).astype(np.float64)
    products = np.einsum("chw,chw->hw", across, across[:, below]).astype(np.float64)
    lower, upper, upper_weight = row_index
    weight = upper_weight.astype(np.float64)[:, None]
    norm_squared = (
        (1.0 - weight) ** 2 * squares[lower]
        + weight**2 * squares[upper]
        + 2.0 * (1.0 - weight) * weight * products[lower]
    )
    norms = np.maximum(np.sqrt(np.maximum(norm_squared, 0.0)), 1e-12)  # F.normalize's eps
    logits = dots / (norms * temperature).astype(np.float32)[None]
    shifted = logits - logits.max(axis=0, keepdims=True)
    log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=0, keepdims=True))
    return np.ascontiguousarray(log_probabilities, dtype=np.float32)


def upsample(values: FloatArray, size: tuple[int, int]) -> npt.NDArray[np.float32]:
    """Bilinear resampling of (K, h, w) maps to ``size`` = (H, W) (torch, align_corners=False)."""
    array = np.asarray(values, dtype=np.float32)
    if array.ndim != 3:
        raise ValueError(f"maps must be (K, h, w), got shape {array.shape}")
    return np.ascontiguousarray(_resample_axis(_resample_axis(array, 1, size[0]), 2, size[1]))


def resize_image(image: Image | FloatImage, size: tuple[int, int]) -> FloatImage:
    """The RGB image bilinearly resized to ``size`` (CUPS' ``F.interpolate``), not rounded."""
    pixels = np.asarray(image[..., :3], dtype=np.float32)
    return np.ascontiguousarray(_resample_axis(_resample_axis(pixels, 0, size[0]), 1, size[1]))


def low_resolution_features(
    extract: FeatureExtractor, image: Image, scale: float = LOW_RESOLUTION_SCALE, flip: bool = True
) -> tuple[FeatureMap, tuple[int, int]]:
    """Features of the P_low pass and the size of the image they describe (CUPS, Eq. 2).

    The frame is resized by ``scale`` (CUPS: H // 2 × W // 2, bilinear) and, with ``flip``, the
    features of its mirror image are flipped back and averaged in (CUPS' flip average of the
    codes). The mirror image is padded on its left with edge pixels to a whole number of cells,
    so its flipped-back cells cover exactly the pixels of the unflipped ones.
    """
    if not 0 < scale <= 1:
        raise ValueError(f"the low-resolution scale must lie in (0, 1], got {scale}")
    height, width = int(image.shape[0]), int(image.shape[1])
    low_size = (max(1, math.floor(height * scale)), max(1, math.floor(width * scale)))
    small: Image | FloatImage = image
    if low_size != (height, width):
        small = resize_image(image, low_size)
    features = extract(small)
    if not flip:
        return features, low_size
    stride = features.stride
    left = -low_size[1] % stride
    mirror = np.pad(
        np.asarray(small[:, ::-1], dtype=np.float32), ((0, 0), (left, 0), (0, 0)), mode="edge"
    )
    mirrored = extract(np.ascontiguousarray(mirror, dtype=np.float32))
    if mirrored.stride != stride or mirrored.features.shape != features.features.shape:
        raise ValueError(
            f"the mirror image's features {mirrored.features.shape} at stride {mirrored.stride} "
            f"do not match {features.features.shape} at stride {stride}"
        )
    average = (features.features + mirrored.features[:, :, ::-1]) / 2.0
    return FeatureMap(np.ascontiguousarray(average, dtype=np.float32), stride), low_size


def low_resolution_log_probabilities(
    extract: FeatureExtractor,
    image: Image,
    centroids: FloatArray,
    scale: float = LOW_RESOLUTION_SCALE,
    flip: bool = True,
    temperature: float = DEFAULT_TEMPERATURE,
) -> LogProbabilities:
    """log P_low (K, H, W): :func:`low_resolution_features` resampled to the frame, then S."""
    features, low_size = low_resolution_features(extract, image, scale, flip)
    size = (int(image.shape[0]), int(image.shape[1]))
    return pixel_log_probabilities(features, centroids, size, low_size, temperature)


def window_layout(length: int, window: int, stride: int) -> list[int]:
    """Window starts along one axis as CUPS' ``F.unfold`` places them (negative = padding).

    CUPS pads both ends by ``(−length) mod stride`` (its ``bottom_pad``/``right_pad``) and
    takes every ``stride``-th window that fits in the padded length; a layout that leaves pixels
    uncovered (CUPS asserts against it) is a ``ValueError``. With CUPS' window = 2 × stride
    the windows always end flush with the frame.
    """
    if window <= 0 or stride <= 0:
        raise ValueError(f"window ({window}) and stride ({stride}) must be positive")
    pad = -length % stride
    count = (length + 2 * pad - window) // stride + 1
    starts = [-pad + k * stride for k in range(max(count, 0))]
    if not starts or stride > window or starts[-1] + window < length:
        raise ValueError(
            f"windows of {window} px every {stride} px (CUPS' padding {pad} px at each end) "
            f"do not cover {length} px; use a smaller window or stride"
        )
    return starts


def window_size(
    height: int, window: int | None = None, stride: int | None = None
) -> tuple[int, int]:
    """(window, stride) in px: CUPS' ``crop = H // 2``, ``stride = H // 4`` where not given."""
    side = height // 2 if window is None else window
    step = side // 2 if stride is None else stride
    if side <= 0 or step <= 0:
        raise ValueError(f"a {height}-px frame is too small for windows ({side}, {step})")
    return side, step


def sliding_window_log_probabilities(
    extract: FeatureExtractor,
    image: Image,
    centroids: FloatArray,
    window: int | None = None,
    stride: int | None = None,
    temperature: float = DEFAULT_TEMPERATURE,
) -> LogProbabilities:
    """log P_high (K, H, W): the mean over overlapping windows of S's log-probabilities (CUPS).

    Square windows (:func:`window_size`; CUPS: 320 px at stride 160 on its 640 × 1280 frames)
    laid out by :func:`window_layout`; as in CUPS' ``slide_segment`` the frame is padded with
    zeros of the normalised image — the ImageNet mean colour :data:`PAD_COLOUR` here — and each
    pixel averages the log-probabilities of the windows that contain it (``F.fold`` / count).
    """
    height, width = int(image.shape[0]), int(image.shape[1])
    side, step = window_size(height, window, stride)
    tops, lefts = window_layout(height, side, step), window_layout(width, side, step)
    pad_rows, pad_cols = -tops[0], -lefts[0]
    canvas = np.empty((height + 2 * pad_rows, width + 2 * pad_cols, 3), dtype=np.float32)
    canvas[...] = PAD_COLOUR
    canvas[pad_rows : pad_rows + height, pad_cols : pad_cols + width] = image[..., :3]
    total: npt.NDArray[np.float32] | None = None
    count = np.zeros(canvas.shape[:2], dtype=np.float32)
    for top in (t + pad_rows for t in tops):
        for left in (c + pad_cols for c in lefts):
            crop = canvas[top : top + side, left : left + side]
            scores = pixel_log_probabilities(
                extract(crop), centroids, (side, side), None, temperature
            )
            if total is None:
                total = np.zeros((scores.shape[0], *canvas.shape[:2]), dtype=np.float32)
            total[:, top : top + side, left : left + side] += scores
            count[top : top + side, left : left + side] += 1.0
    assert total is not None  # window_layout returns at least one start per axis
    inside = (slice(None), slice(pad_rows, pad_rows + height), slice(pad_cols, pad_cols + width))
    return np.ascontiguousarray(total[inside] / count[inside[1:]], dtype=np.float32)


def depth_guided_fusion(
    low: FloatArray, high: FloatArray, depth: FloatArray
) -> npt.NDArray[np.float32]:
    """Eq. 2: α·low + (1 − α)·high per pixel with α = 1/(d + 1) (d = ∞ → α = 0).

    VideoCUPS' pipeline passes log P_low and log P_high, as CUPS' ``depth_guided_sliding_window``
    does (the paper writes Eq. 2 on probabilities). Depth below 0 counts as 0 (α = 1); NaN depth
    counts as unknown-far (α = 0, the detailed high-resolution prediction).
    """
    if low.shape != high.shape or low.shape[1:] != depth.shape:
        raise ValueError(
            f"P_low {low.shape}, P_high {high.shape} and depth {depth.shape} must agree "
            "(resample P_low to P_high's resolution first)"
        )
    distance = np.maximum(np.nan_to_num(np.asarray(depth, dtype=np.float64), nan=np.inf), 0.0)
    alpha = 1.0 / (distance + 1.0)
    fused = alpha * np.asarray(low, dtype=np.float64) + (1.0 - alpha) * np.asarray(
        high, dtype=np.float64
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
    #: None: the numpy/scipy iterations; a torch device ("cpu", "cuda"): the same iterations in
    #: torch on that device (:mod:`vpsbench_methods.videocups.crf_torch`).
    device: str | None = None


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
    bilateral_filter = bilateral_lattice(image, bilateral_spatial_sigma, bilateral_colour_sigma)
    marginals = _softmax_rows(log_prior)
    for _ in range(iterations):
        message = spatial_weight * spatial_filter(marginals)
        message += bilateral_weight * bilateral_filter(marginals)
        marginals = _softmax_rows(log_prior + message)
    return np.ascontiguousarray(marginals.T.reshape(classes, height, width), dtype=np.float32)


class NormalisedGaussianFilter:
    """The spatial kernel: symmetrically normalised Gaussian blur of per-pixel (H·W, K) vectors.

    The blur is ``scipy.ndimage.gaussian_filter``'s (zero outside, cut at ``_TRUNCATE`` σ),
    computed by OpenCV's separable float32 filter (equal to scipy's to float32 rounding, ~3× as
    fast on 27 channels).
    """

    def __init__(self, size: tuple[int, int], sigma: float) -> None:
        self.size = size
        self.sigma = sigma
        self.taps = gaussian_taps(sigma)
        mass = self._blur(np.ones((*size, 1), dtype=np.float32))
        self.scale = (1.0 / np.sqrt(mass)).reshape(-1, 1).astype(np.float32)

    def _blur(self, planes: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """(H, W, K) planes blurred along rows and columns, at most 128 channels a call."""
        blurred = np.empty_like(planes)
        for low in range(0, planes.shape[2], _OPENCV_MAX_CHANNELS):
            part = np.ascontiguousarray(planes[:, :, low : low + _OPENCV_MAX_CHANNELS])
            result = cv2.sepFilter2D(part, -1, self.taps, self.taps, borderType=cv2.BORDER_CONSTANT)
            blurred[:, :, low : low + _OPENCV_MAX_CHANNELS] = result.reshape(part.shape)
        return blurred

    def __call__(self, values: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Filtered (N, K) values."""
        scaled = (values * self.scale).reshape(*self.size, -1)
        return np.asarray(self._blur(scaled).reshape(values.shape) * self.scale, dtype=np.float32)


def gaussian_taps(sigma: float, truncate: float = _TRUNCATE) -> npt.NDArray[np.float32]:
    """The normalised 1-D Gaussian that ``scipy.ndimage.gaussian_filter`` correlates with."""
    radius = int(truncate * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    taps = np.exp(-0.5 * (offsets / sigma) ** 2)
    return np.asarray(taps / taps.sum(), dtype=np.float32)


def bilateral_lattice(
    image: Image, spatial_sigma: float, colour_sigma: float
) -> PermutohedralLattice:
    """The appearance kernel's filter: (row, col)/σ_xy and RGB/σ_rgb on the permutohedral
    lattice."""
    height, width = image.shape[:2]
    rows, cols = np.mgrid[0:height, 0:width]
    colours = np.asarray(image, dtype=np.float64).reshape(-1, 3)
    return PermutohedralLattice(
        np.column_stack(
            [rows.ravel() / spatial_sigma, cols.ravel() / spatial_sigma, colours / colour_sigma]
        )
    )


def semantic_probabilities(
    image: Image,
    extract: FeatureExtractor,
    centroids: FloatArray,
    depth: FloatArray | None = None,
    *,
    low_scale: float = LOW_RESOLUTION_SCALE,
    flip: bool = True,
    window: int | None = None,
    window_stride: int | None = None,
    use_sliding_window: bool = True,
    use_depth_guidance: bool = True,
    use_crf: bool = True,
    crf: CrfParameters | None = None,
    temperature: float = DEFAULT_TEMPERATURE,
) -> Probabilities:
    """Pseudo-class probabilities (K, H, W) of the Sec. 3.1 pipeline as CUPS runs it.

    ``extract`` is S's feature network on an image (``FeatureProvider.image_features``),
    ``centroids`` its k-means classes. ``use_sliding_window`` / ``use_depth_guidance``: off/off
    → P_low (vanilla), on/on → Eq. 2's fusion of log P_low and log P_high (needs ``depth``),
    on/off → P_high alone; off/on is an error. The scores' softmax is then refined by
    :func:`dense_crf` with ``crf`` (default :class:`CrfParameters`) when ``use_crf``, as CUPS'
    ``dense_crf`` takes the softmax of ``depth_guided_sliding_window``'s output.
    """
    if use_depth_guidance and not use_sliding_window:
        raise ValueError("depth-guided inference fuses P_low with the sliding-window P_high")
    if use_depth_guidance and depth is None:
        raise ValueError("depth-guided inference needs a depth map")
    scores: npt.NDArray[np.float32] | None = None
    if use_depth_guidance or not use_sliding_window:
        scores = low_resolution_log_probabilities(
            extract, image, centroids, low_scale, flip, temperature
        )
    if use_sliding_window:
        high = sliding_window_log_probabilities(
            extract, image, centroids, window, window_stride, temperature
        )
        if scores is None:
            scores = high
        else:
            assert depth is not None
            scores = depth_guided_fusion(scores, high, depth)
    assert scores is not None
    classes, height, width = scores.shape
    probabilities = _softmax_rows(scores.reshape(classes, -1).T).T.reshape(classes, height, width)
    if not use_crf:
        return np.ascontiguousarray(probabilities, dtype=np.float32)
    settings = crf if crf is not None else CrfParameters()
    if settings.device is not None:
        from vpsbench_methods.videocups.crf_torch import (
            dense_crf_torch,
        )  # torch only when asked for

        return dense_crf_torch(probabilities, image, settings, settings.device)
    return dense_crf(
        probabilities,
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
    extract: FeatureExtractor,
    centroids: FloatArray,
    depth: FloatArray | None = None,
    *,
    low_scale: float = LOW_RESOLUTION_SCALE,
    flip: bool = True,
    window: int | None = None,
    window_stride: int | None = None,
    use_sliding_window: bool = True,
    use_depth_guidance: bool = True,
    use_crf: bool = True,
    crf: CrfParameters | None = None,
    temperature: float = DEFAULT_TEMPERATURE,
) -> npt.NDArray[np.int32]:
    """Pseudo-class id per pixel (H, W): argmax of :func:`semantic_probabilities` (Sec. 3.1)."""
    probabilities = semantic_probabilities(
        image,
        extract,
        centroids,
        depth,
        low_scale=low_scale,
        flip=flip,
        window=window,
        window_stride=window_stride,
        use_sliding_window=use_sliding_window,
        use_depth_guidance=use_depth_guidance,
        use_crf=use_crf,
        crf=crf,
        temperature=temperature,
    )
    return np.asarray(np.argmax(probabilities, axis=0), dtype=np.int32)


def _feature_array(features: FeatureMap | FloatArray) -> FloatArray:
    """The (C, h, w) array of a feature map or array."""
    cells = features.features if isinstance(features, FeatureMap) else np.asarray(features)
    if cells.ndim != 3:
        raise ValueError(f"features must be (C, h, w), got shape {cells.shape}")
    return cells


def _softmax_rows(logits: FloatArray) -> npt.NDArray[np.float32]:
    """Numerically stable softmax over the last axis, as float32 (computed in place on one copy,
    in the input's precision)."""
    result = np.array(logits, dtype=np.result_type(logits, np.float32))
    result -= result.max(axis=-1, keepdims=True)
    np.exp(result, out=result)
    result /= result.sum(axis=-1, keepdims=True)
    return np.asarray(result, dtype=np.float32)


Interpolation = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float32]]


def _interpolation(source_length: int, length: int, scale: float) -> Interpolation:
    """(lower, upper, upper weight) of ``length`` samples at source (i + ½)·scale − ½, clamped.

    torch's ``bilinear, align_corners=False`` rule (scale = source / target length).
    """
    source = (np.arange(length) + 0.5) * scale - 0.5
    source = np.clip(source, 0.0, source_length - 1)
    lower = np.floor(source).astype(np.int64)
    upper = np.minimum(lower + 1, source_length - 1)
    return lower, upper, (source - lower).astype(np.float32)


def _interpolate_axis(
    values: npt.NDArray[np.float32], axis: int, index: Interpolation
) -> npt.NDArray[np.float32]:
    """Linear interpolation of ``values`` along ``axis`` at the samples of ``index``."""
    lower, upper, upper_weight = index
    shape = [1] * values.ndim
    shape[axis] = lower.size
    weight = upper_weight.reshape(shape)
    return np.asarray(
        np.take(values, lower, axis=axis) * (1.0 - weight)
        + np.take(values, upper, axis=axis) * weight,
        dtype=np.float32,
    )


def _resample_axis(
    values: npt.NDArray[np.float32], axis: int, length: int
) -> npt.NDArray[np.float32]:
    """Linear resampling along ``axis`` to ``length`` samples (pixel centres, edges clamped)."""
    source_length = values.shape[axis]
    if source_length == length:
        return values
    return _interpolate_axis(
        values, axis, _interpolation(source_length, length, source_length / length)
    )
