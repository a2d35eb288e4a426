"""Semantic pseudo-labels: pseudo-classes, Eq. 2 fusion, sliding windows, dense CRF."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from scipy import ndimage
from vpsbench_methods.videocups.semantics import (
    PAD_COLOUR,
    NormalisedGaussianFilter,
    dense_crf,
    depth_guided_fusion,
    fit_pseudo_classes,
    gaussian_taps,
    low_resolution_features,
    low_resolution_log_probabilities,
    pixel_log_probabilities,
    sample_feature_vectors,
    semantic_probabilities,
    semantic_pseudo_labels,
    sliding_window_log_probabilities,
    upsample,
    window_layout,
    window_size,
)

from vpsbench.clustering import assign_cosine
from vpsbench.cues.base import FeatureMap, FloatImage, Image

FloatArray = npt.NDArray[np.float64]
AnyImage = Image | FloatImage


def one_hot(labels: npt.NDArray[np.int64], classes: int, confidence: float) -> FloatArray:
    """(K, H, W) probabilities: ``confidence`` on the label, the rest spread evenly."""
    rest = (1.0 - confidence) / (classes - 1)
    probabilities = np.full((classes, *labels.shape), rest)
    np.put_along_axis(probabilities, labels[None], confidence, axis=0)
    return probabilities


def softmax(scores: FloatArray) -> FloatArray:
    shifted = np.exp(scores - scores.max(axis=0, keepdims=True))
    return np.asarray(shifted / shifted.sum(axis=0, keepdims=True))


# --- Eq. 2 and resampling -------------------------------------------------------------------


def test_depth_guided_fusion_is_eq2_on_hand_values() -> None:
    rng = np.random.default_rng(0)
    low = np.log(rng.dirichlet(np.ones(3), size=(1, 5)).transpose(2, 0, 1))
    high = np.log(rng.dirichlet(np.ones(3), size=(1, 5)).transpose(2, 0, 1))
    depth = np.array([[0.0, np.inf, 1.0, 3.0, np.nan]])
    fused = depth_guided_fusion(low, high, depth)
    np.testing.assert_allclose(fused[:, 0, 0], low[:, 0, 0], rtol=1e-6)  # d = 0 → α = 1
    np.testing.assert_allclose(fused[:, 0, 1], high[:, 0, 1], rtol=1e-6)  # d = ∞ → α = 0
    np.testing.assert_allclose(fused[:, 0, 2], (low[:, 0, 2] + high[:, 0, 2]) / 2, rtol=1e-6)
    expected = 0.25 * low[:, 0, 3] + 0.75 * high[:, 0, 3]  # α = 1/(3 + 1)
    np.testing.assert_allclose(fused[:, 0, 3], expected, rtol=1e-6)
    np.testing.assert_allclose(fused[:, 0, 4], high[:, 0, 4], rtol=1e-6)  # NaN → far
    assert fused.dtype == np.float32


def test_fusion_in_log_space_is_a_normalised_geometric_mixture() -> None:
    # CUPS fuses log-probabilities; the paper's Eq. 2 reads as a mixture of probabilities.
    # At α = ½ the two disagree here: both maps half-trust class 1, each is sure of another.
    p_low = np.array([0.69, 0.30, 0.01])[:, None, None]
    p_high = np.array([0.01, 0.30, 0.69])[:, None, None]
    fused = softmax(depth_guided_fusion(np.log(p_low), np.log(p_high), np.ones((1, 1))))
    geometric = np.sqrt(p_low * p_high)
    np.testing.assert_allclose(fused, geometric / geometric.sum(), rtol=1e-5)
    assert int(np.argmax(fused)) == 1
    assert int(np.argmax(0.5 * p_low + 0.5 * p_high)) != 1


def test_fusion_rejects_unaligned_resolutions() -> None:
    with pytest.raises(ValueError, match="resample"):
        depth_guided_fusion(np.ones((2, 4, 4)), np.ones((2, 8, 8)), np.ones((8, 8)))


def test_upsample_matches_torch_bilinear_and_keeps_constants() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    coarse = rng.uniform(size=(3, 5, 7)).astype(np.float32)
    fine = upsample(coarse, (17, 30))
    reference = torch.nn.functional.interpolate(
        torch.from_numpy(coarse)[None], size=(17, 30), mode="bilinear", align_corners=False
    )[0].numpy()
    np.testing.assert_allclose(fine, reference, atol=1e-6)
    np.testing.assert_allclose(upsample(np.full((2, 3, 4), 0.25), (9, 13)), 0.25)
    np.testing.assert_array_equal(upsample(coarse, (5, 7)), coarse)


@pytest.mark.parametrize(
    ("cells", "stride", "size", "image_size"),
    [
        ((5, 7), 8, (40, 56), None),
        ((5, 7), 8, (80, 112), (40, 56)),
        ((4, 9), 4, (33, 70), (16, 36)),
    ],
)
def test_pixel_log_probabilities_are_cups_interpolate_then_cluster_probe(
    cells: tuple[int, int],
    stride: int,
    size: tuple[int, int],
    image_size: tuple[int, int] | None,
) -> None:
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    rng = np.random.default_rng(4)
    features = rng.normal(size=(16, *cells)).astype(np.float32)
    centroids = rng.normal(size=(6, 16))
    ours = pixel_log_probabilities(FeatureMap(features, stride), centroids, size, image_size)
    # CUPS: code = F.interpolate(code, size); cluster_probe(code, alpha=2, log_probs=True)
    code = functional.interpolate(
        torch.from_numpy(features)[None], size, mode="bilinear", align_corners=False
    )
    clusters = functional.normalize(torch.from_numpy(centroids).float(), dim=1)
    inner = torch.einsum("bchw,nc->bnhw", functional.normalize(code, dim=1), clusters)
    reference = functional.log_softmax(inner * 2, dim=1)[0].numpy()
    np.testing.assert_allclose(ours, reference, atol=2e-5)
    labels = np.argmax(ours, axis=0)
    vectors = code[0].numpy().reshape(16, -1).T
    np.testing.assert_array_equal(labels.ravel(), assign_cosine(vectors, centroids))


def test_pixel_log_probabilities_reject_centroids_of_another_width() -> None:
    with pytest.raises(ValueError, match="feature channels"):
        pixel_log_probabilities(
            FeatureMap(np.ones((4, 2, 2), np.float32), 8), np.ones((3, 5)), (16, 16)
        )


# --- pseudo-classes ---------------------------------------------------------------------------


def frame_features(layout: npt.NDArray[np.int64], seed: int) -> FloatArray:
    """(C, h, w) features: one direction per content id in ``layout``, plus a little noise."""
    directions = np.array([[4.0, 0, 0, 0], [0, 4.0, 0, 0], [0, 0, 4.0, 0], [0, 0, 0, 4.0]])
    noise = np.random.default_rng(seed).normal(scale=0.3, size=(*layout.shape, 4))
    return np.asarray((directions[layout] + noise).transpose(2, 0, 1))


def test_pseudo_classes_are_consistent_across_frames_with_the_same_content() -> None:
    layout = np.repeat(np.arange(4), 16).reshape(8, 8)
    first = FeatureMap(frame_features(layout, seed=1).astype(np.float32), 1)
    second = FeatureMap(frame_features(layout[::-1, ::-1], seed=2).astype(np.float32), 1)
    samples = sample_feature_vectors([first, second.features], 64)
    centroids = fit_pseudo_classes(samples, num_classes=4, seed=0)
    np.testing.assert_array_equal(centroids, fit_pseudo_classes(samples, num_classes=4, seed=0))
    labels_first = np.argmax(pixel_log_probabilities(first, centroids, (8, 8)), axis=0)
    labels_second = np.argmax(pixel_log_probabilities(second, centroids, (8, 8)), axis=0)
    np.testing.assert_array_equal(labels_first, labels_second[::-1, ::-1])
    assert len(np.unique(labels_first)) == 4


# --- extractors: S's feature network on an image, as FeatureProvider.image_features -----------


def pixel_extractor(image: AnyImage) -> FeatureMap:
    """One cell per pixel: its RGB (+ 1, so that black is a direction too)."""
    return FeatureMap(np.asarray(image, np.float32).transpose(2, 0, 1) + 1.0, 1)


def columns_and_red(stride: int):  # type: ignore[no-untyped-def]
    """Cells of ``stride`` px (edge-padded) holding (cell column, mean red of the cell)."""

    def extract(image: AnyImage) -> FeatureMap:
        height, width = image.shape[:2]
        rows, cols = -(-height // stride), -(-width // stride)
        padded = np.pad(
            np.asarray(image, np.float64)[..., 0],
            ((0, rows * stride - height), (0, cols * stride - width)),
            mode="edge",
        )
        red = padded.reshape(rows, stride, cols, stride).mean(axis=(1, 3))
        column = np.broadcast_to(np.arange(cols, dtype=np.float64), (rows, cols))
        return FeatureMap(np.stack([column, red]).astype(np.float32), stride)

    return extract


def test_flip_average_places_the_mirror_cells_on_the_same_pixels() -> None:
    image = np.random.default_rng(5).integers(0, 256, (28, 30, 3), dtype=np.uint8)
    extract = columns_and_red(4)  # the 14 × 15 low-resolution image: 15 = 3·4 + 3 columns
    averaged, low_size = low_resolution_features(extract, image, 0.5, flip=True)
    plain, _ = low_resolution_features(extract, image, 0.5, flip=False)
    assert low_size == (14, 15) and averaged.stride == 4
    cols = plain.features.shape[2]
    np.testing.assert_allclose(averaged.features[0], (cols - 1) / 2)  # column ramps cancel
    np.testing.assert_allclose(averaged.features[1], plain.features[1], rtol=1e-6)  # same pixels
    np.testing.assert_array_equal(plain.features[0], np.arange(cols)[None].repeat(4, 0))


def test_low_resolution_pass_is_the_half_frame_resampled_back() -> None:
    torch = pytest.importorskip("torch")
    image = np.random.default_rng(6).integers(0, 256, (20, 36, 3), dtype=np.uint8)
    centroids = np.random.default_rng(7).normal(size=(4, 3))
    ours = low_resolution_log_probabilities(pixel_extractor, image, centroids, flip=False)
    small = torch.nn.functional.interpolate(
        torch.from_numpy(image.transpose(2, 0, 1).astype(np.float32))[None],
        (10, 18),
        mode="bilinear",
        align_corners=False,
    )[0].numpy()
    reference = pixel_log_probabilities(FeatureMap(small + 1.0, 1), centroids, (20, 36), (10, 18))
    np.testing.assert_allclose(ours, reference, atol=1e-5)


# --- sliding windows --------------------------------------------------------------------------


def test_window_layout_is_cups_unfold_with_its_padding() -> None:
    assert window_size(640) == (320, 160)  # CUPS on its 640 × 1280 Cityscapes frames
    assert window_size(368) == (184, 92)  # and on KITTI's 368 × 1104
    assert window_layout(640, 320, 160) == [0, 160, 320]
    assert window_layout(1280, 320, 160) == [0, 160, 320, 480, 640, 800, 960]
    assert window_layout(256, 128, 64) == [0, 64, 128]
    assert window_layout(370, 185, 92) == [-90, 2, 94, 186]  # 370 % 92 = 2: 90 px padding
    assert window_layout(512, 320, 160) == [-128, 32, 192]
    with pytest.raises(ValueError, match="do not cover"):
        window_layout(100, 40, 50)  # gaps between windows
    with pytest.raises(ValueError, match="do not cover"):
        window_layout(300, 200, 160)  # CUPS' layout misses the last rows


@pytest.mark.parametrize(
    ("height", "width", "window", "stride"), [(37, 52, 18, 9), (64, 100, 40, 20)]
)
def test_window_layout_matches_torch_unfold(
    height: int, width: int, window: int, stride: int
) -> None:
    torch = pytest.importorskip("torch")
    pad = (-height % stride, -width % stride)
    rows = (
        torch.arange(1, height + 1, dtype=torch.float64)
        .view(1, 1, height, 1)
        .expand(1, 1, height, width)
    )
    cols = (
        torch.arange(1, width + 1, dtype=torch.float64)
        .view(1, 1, 1, width)
        .expand(1, 1, height, width)
    )
    windows = []
    for coordinate in (rows, cols):
        unfolded = torch.nn.functional.unfold(coordinate, window, stride=stride, padding=pad)
        windows.append(unfolded[0].view(window, window, -1))
    tops = window_layout(height, window, stride)
    lefts = window_layout(width, window, stride)
    assert windows[0].shape[-1] == len(tops) * len(lefts)
    for n in range(windows[0].shape[-1]):
        top, left = tops[n // len(lefts)], lefts[n % len(lefts)]
        inside = windows[0][..., n] > 0
        r, c = np.argwhere(inside.numpy() & (windows[1][..., n] > 0).numpy())[0]
        assert windows[0][r, c, n] - 1 - r == top and windows[1][r, c, n] - 1 - c == left


def test_sliding_window_places_every_window_where_it_came_from() -> None:
    image = np.random.default_rng(1).integers(0, 256, (50, 90, 3), dtype=np.uint8)
    centroids = np.random.default_rng(2).normal(size=(5, 3))
    whole = pixel_log_probabilities(pixel_extractor(image), centroids, (50, 90))
    for window, stride in [(16, 8), (24, 12), (50, 25), (None, None)]:
        high = sliding_window_log_probabilities(pixel_extractor, image, centroids, window, stride)
        np.testing.assert_allclose(high, whole, atol=1e-5)


def test_sliding_window_averages_the_windows_log_probabilities_and_pads_with_the_mean() -> None:
    # A window's features are its mean colour: each pixel averages the log-probabilities of the
    # windows over it; CUPS' zero padding of the normalised image is the ImageNet mean colour.
    height, width, side, step = 20, 30, 10, 5
    image = np.random.default_rng(3).integers(0, 256, (height, width, 3), dtype=np.uint8)
    centroids = np.random.default_rng(4).normal(size=(4, 3))
    seen: list[AnyImage] = []

    def mean_colour(crop: AnyImage) -> FeatureMap:
        seen.append(crop)
        return FeatureMap(np.asarray(crop, np.float32).mean(axis=(0, 1))[:, None, None], side)

    high = sliding_window_log_probabilities(mean_colour, image, centroids, side, step)
    total = np.zeros((4, height, width))
    count = np.zeros((height, width))
    for top in range(0, height - side + 1, step):
        for left in range(0, width - side + 1, step):
            colour = image[top : top + side, left : left + side].reshape(-1, 3).mean(axis=0)
            cosine = (
                colour @ centroids.T / np.linalg.norm(colour) / np.linalg.norm(centroids, axis=1)
            )
            total[:, top : top + side, left : left + side] += np.log(softmax(2 * cosine))[
                :, None, None
            ]
            count[top : top + side, left : left + side] += 1
    np.testing.assert_allclose(high, total / count, atol=1e-5)
    seen.clear()
    padded = sliding_window_log_probabilities(mean_colour, image[:18], centroids, 10, 5)
    assert padded.shape == (4, 18, 30) and len(seen) == 3 * 5  # rows start at -2, 3, 8
    np.testing.assert_allclose(seen[0][:2], np.broadcast_to(PAD_COLOUR, (2, 10, 3)), rtol=1e-6)
    np.testing.assert_array_equal(seen[0][2:], image[:8, :10])  # 18 % 5 = 3: 2 px padding


# --- the pipeline -----------------------------------------------------------------------------


def size_extractor(image: AnyImage) -> FeatureMap:
    """Class 0 for the half-resolution frame (wider than a window), class 1 for windows."""
    label = 0 if image.shape[1] > image.shape[0] else 1
    return FeatureMap(
        np.eye(2, dtype=np.float32)[label][:, None, None].repeat(4, 1).repeat(4, 2), 8
    )


@pytest.mark.parametrize(
    ("sliding", "guided", "depth_value", "expected"),
    [(False, False, 0.0, 0), (True, False, 0.0, 1), (True, True, 0.0, 0), (True, True, 1e6, 1)],
)
def test_pipeline_switches_select_the_inference(
    sliding: bool, guided: bool, depth_value: float, expected: int
) -> None:
    image = np.full((64, 128, 3), 90, dtype=np.uint8)
    labels = semantic_pseudo_labels(
        image,
        size_extractor,
        np.eye(2),
        np.full((64, 128), depth_value),
        use_sliding_window=sliding,
        use_depth_guidance=guided,
        use_crf=False,
    )
    assert labels.dtype == np.int32 and labels.shape == (64, 128)
    assert np.all(labels == expected)


def test_depth_guidance_trusts_coarse_near_and_fine_far() -> None:
    image = np.full((64, 128, 3), 90, dtype=np.uint8)
    depth = np.tile(np.linspace(0.0, 4.0, 128), (64, 1))  # α > 1/2 where d < 1
    labels = semantic_pseudo_labels(image, size_extractor, np.eye(2), depth, use_crf=False)
    assert np.all(labels[:, depth[0] < 0.9] == 0)
    assert np.all(labels[:, depth[0] > 1.1] == 1)


def test_pipeline_rejects_depth_guidance_without_its_inputs() -> None:
    image = np.zeros((64, 64, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="sliding-window"):
        semantic_probabilities(
            image, size_extractor, np.eye(2), np.ones((64, 64)), use_sliding_window=False
        )
    with pytest.raises(ValueError, match="depth map"):
        semantic_probabilities(image, size_extractor, np.eye(2), None)


def test_low_and_high_resolution_predictions_of_a_random_dino_differ(tmp_path: Path) -> None:
    # The check: with DINO features P_low and P_high are different predictions, so
    # Eq. 2 has something to fuse (with two strides of one whole-frame pass they coincided).
    torch = pytest.importorskip("torch")
    from vpsbench.cues.dino import DinoProvider
    from vpsbench.cues.vit import VIT_CONFIGS, VisionTransformer

    torch.manual_seed(0)
    weights = tmp_path / "dino_deitsmall16_pretrain.pth"
    torch.save(VisionTransformer(VIT_CONFIGS["vits16"]).state_dict(), weights)
    provider = DinoProvider(weights=weights, device="cpu")
    image = np.random.default_rng(8).integers(0, 256, (64, 128, 3), dtype=np.uint8)
    features, _ = low_resolution_features(provider.image_features, image)
    samples = sample_feature_vectors([features], 64)
    centroids = fit_pseudo_classes(samples, num_classes=4, seed=0)
    low = low_resolution_log_probabilities(provider.image_features, image, centroids)
    high = sliding_window_log_probabilities(provider.image_features, image, centroids)
    assert low.shape == high.shape == (4, 64, 128)
    assert np.abs(low - high).max() > 0.1
    disagree = np.mean(np.argmax(low, axis=0) != np.argmax(high, axis=0))
    assert disagree > 0.05
    near = semantic_probabilities(
        image, provider.image_features, centroids, np.zeros((64, 128)), use_crf=False
    )
    far = semantic_probabilities(
        image, provider.image_features, centroids, np.full((64, 128), np.inf), use_crf=False
    )
    np.testing.assert_allclose(near, softmax(low), atol=1e-5)
    np.testing.assert_allclose(far, softmax(high), atol=1e-5)


# --- dense CRF --------------------------------------------------------------------------------


def two_colour_image(height: int, width: int, edge: int) -> Image:
    """Red left of column ``edge``, blue right of it, with slight noise."""
    image = np.zeros((height, width, 3))
    image[:, :edge] = (200, 40, 40)
    image[:, edge:] = (40, 40, 200)
    image += np.random.default_rng(0).normal(scale=3.0, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def test_crf_keeps_a_clean_two_region_labelling() -> None:
    image = two_colour_image(40, 60, 30)
    labels = np.zeros((40, 60), dtype=np.int64)
    labels[:, 30:] = 1
    marginals = dense_crf(one_hot(labels, 3, 0.7), image)
    assert marginals.shape == (3, 40, 60)
    np.testing.assert_allclose(marginals.sum(axis=0), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(np.argmax(marginals, axis=0), labels)


def test_crf_removes_isolated_noise_inside_a_uniform_region() -> None:
    image = two_colour_image(40, 60, 30)
    labels = np.zeros((40, 60), dtype=np.int64)
    labels[:, 30:] = 1
    noisy = labels.copy()
    for row, col in [(5, 5), (20, 10), (33, 25), (12, 17), (25, 45)]:
        noisy[row, col] = 1 - labels[row, col]
    probabilities = one_hot(noisy, 3, 0.6)
    assert np.count_nonzero(np.argmax(probabilities, axis=0) != labels) == 5
    np.testing.assert_array_equal(np.argmax(dense_crf(probabilities, image), axis=0), labels)


def test_crf_snaps_an_uncertain_boundary_to_the_colour_edge() -> None:
    image = two_colour_image(40, 60, 30)
    labels = np.zeros((40, 60), dtype=np.int64)
    labels[:, 30:] = 1
    probabilities = one_hot(labels, 3, 0.7)
    probabilities[:, :, 30:34] = np.array([0.45, 0.4, 0.15])[:, None, None]  # class 0 leaks over
    assert np.count_nonzero(np.argmax(probabilities, axis=0) != labels) == 40 * 4
    refined = np.argmax(dense_crf(probabilities, image), axis=0)
    np.testing.assert_array_equal(refined, labels)
    # It is the appearance kernel that finds the edge: without colour, the leak is not undone.
    flat = np.full_like(image, 120)
    assert np.any(np.argmax(dense_crf(probabilities, flat), axis=0) != labels)


def test_crf_rejects_an_image_of_another_size() -> None:
    with pytest.raises(ValueError, match="differ"):
        dense_crf(np.full((2, 4, 4), 0.5), np.zeros((5, 4, 3), dtype=np.uint8))


def test_taps_are_scipys_gaussian() -> None:
    impulse = np.zeros(41, dtype=np.float64)
    impulse[20] = 1.0
    for sigma in (0.7, 3.0, 5.5):
        taps = gaussian_taps(sigma)
        filtered = ndimage.gaussian_filter1d(impulse, sigma, mode="constant", truncate=3.0)
        radius = taps.size // 2
        np.testing.assert_allclose(taps, filtered[20 - radius : 21 + radius], rtol=1e-6)


@pytest.mark.parametrize(("size", "classes"), [((37, 29), 27), ((5, 3), 520), ((1, 1), 2)])
def test_spatial_kernel_is_scipys_normalised_gaussian(size: tuple[int, int], classes: int) -> None:
    values = np.random.default_rng(5).dirichlet(np.ones(classes), size=size[0] * size[1])
    values = values.astype(np.float32)

    def blur(planes: np.ndarray) -> np.ndarray:
        return ndimage.gaussian_filter(planes, (1.0, 1.0, 0.0), mode="constant", truncate=3.0)

    scale = 1.0 / np.sqrt(blur(np.ones((*size, 1))).reshape(-1, 1))
    expected = blur((values * scale).reshape(*size, classes)).reshape(values.shape) * scale
    got = NormalisedGaussianFilter(size, 1.0)(values)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
