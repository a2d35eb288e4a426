"""Semantic pseudo-labels: pseudo-classes, Eq. 2 fusion, sliding windows, dense CRF."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from methods.videocups.semantics import (
    BilateralGrid,
    cells_to_pixels,
    class_probabilities,
    dense_crf,
    depth_guided_fusion,
    fit_pseudo_classes,
    low_resolution_probabilities,
    sample_feature_vectors,
    semantic_probabilities,
    semantic_pseudo_labels,
    sliding_window_probabilities,
    upsample,
)
from vpsbench.clustering import assign_cosine
from vpsbench.cues.base import FeatureMap, Image

FloatArray = npt.NDArray[np.float64]


def one_hot(labels: npt.NDArray[np.int64], classes: int, confidence: float) -> FloatArray:
    """(K, H, W) probabilities: ``confidence`` on the label, the rest spread evenly."""
    rest = (1.0 - confidence) / (classes - 1)
    probabilities = np.full((classes, *labels.shape), rest)
    np.put_along_axis(probabilities, labels[None], confidence, axis=0)
    return probabilities


# --- Eq. 2 and resampling -------------------------------------------------------------------


def test_depth_guided_fusion_is_eq2_on_hand_values() -> None:
    rng = np.random.default_rng(0)
    p_low = rng.dirichlet(np.ones(3), size=(1, 5)).transpose(2, 0, 1)
    p_high = rng.dirichlet(np.ones(3), size=(1, 5)).transpose(2, 0, 1)
    depth = np.array([[0.0, np.inf, 1.0, 3.0, np.nan]])
    fused = depth_guided_fusion(p_low, p_high, depth)
    np.testing.assert_allclose(fused[:, 0, 0], p_low[:, 0, 0], rtol=1e-6)  # d = 0 → α = 1
    np.testing.assert_allclose(fused[:, 0, 1], p_high[:, 0, 1], rtol=1e-6)  # d = ∞ → α = 0
    np.testing.assert_allclose(fused[:, 0, 2], (p_low[:, 0, 2] + p_high[:, 0, 2]) / 2, rtol=1e-6)
    expected = 0.25 * p_low[:, 0, 3] + 0.75 * p_high[:, 0, 3]  # α = 1/(3 + 1)
    np.testing.assert_allclose(fused[:, 0, 3], expected, rtol=1e-6)
    np.testing.assert_allclose(fused[:, 0, 4], p_high[:, 0, 4], rtol=1e-6)  # NaN → far
    np.testing.assert_allclose(fused.sum(axis=0), 1.0, rtol=1e-6)
    assert fused.dtype == np.float32


def test_fusion_rejects_unaligned_resolutions() -> None:
    with pytest.raises(ValueError, match="upsample"):
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


def test_cells_to_pixels_places_each_cell_centre_on_its_pixels() -> None:
    stride = 4
    cells = np.tile(np.arange(3, dtype=np.float32), (1, 2, 1))  # value = cell column
    pixels = cells_to_pixels(cells, stride=stride, size=(7, 10))  # padded grid: 8 × 12 pixels
    assert pixels.shape == (1, 7, 10)
    # Cell j's centre lies at pixel coordinate j·s + (s − 1)/2: a linear ramp stays exact.
    centre_coordinate = (np.arange(10) + 0.5) / stride - 0.5
    np.testing.assert_allclose(pixels[0, 3], np.clip(centre_coordinate, 0, 2), atol=1e-6)
    with pytest.raises(ValueError, match="cover"):
        cells_to_pixels(cells, stride=2, size=(7, 10))


# --- pseudo-classes ---------------------------------------------------------------------------


def frame_features(layout: npt.NDArray[np.int64], seed: int) -> FloatArray:
    """(C, h, w) features: one direction per content id in ``layout``, plus a little noise."""
    directions = np.array([[4.0, 0, 0, 0], [0, 4.0, 0, 0], [0, 0, 4.0, 0], [0, 0, 0, 4.0]])
    noise = np.random.default_rng(seed).normal(scale=0.3, size=(*layout.shape, 4))
    return np.asarray((directions[layout] + noise).transpose(2, 0, 1))


def test_pseudo_classes_are_consistent_across_frames_with_the_same_content() -> None:
    layout = np.repeat(np.arange(4), 16).reshape(8, 8)
    first = frame_features(layout, seed=1)
    second = frame_features(layout[::-1, ::-1], seed=2)  # same content, elsewhere in the frame
    samples = sample_feature_vectors([FeatureMap(first.astype(np.float32), 8), second], 64)
    centroids = fit_pseudo_classes(samples, num_classes=4, seed=0)
    np.testing.assert_array_equal(centroids, fit_pseudo_classes(samples, num_classes=4, seed=0))
    labels_first = np.argmax(class_probabilities(first, centroids), axis=0)
    labels_second = np.argmax(class_probabilities(second, centroids), axis=0)
    np.testing.assert_array_equal(labels_first, labels_second[::-1, ::-1])
    assert len(np.unique(labels_first)) == 4


def test_class_probabilities_are_a_softmax_of_cosine_similarity() -> None:
    rng = np.random.default_rng(3)
    features = rng.normal(size=(5, 6, 7))
    features[:, 0, 0] = 0.0  # no direction: uniform
    centroids = rng.normal(size=(4, 5))
    probabilities = class_probabilities(FeatureMap(features.astype(np.float32), 8), centroids, 0.1)
    assert probabilities.shape == (4, 6, 7)
    np.testing.assert_allclose(probabilities.sum(axis=0), 1.0, rtol=1e-5)
    np.testing.assert_allclose(probabilities[:, 0, 0], 0.25, rtol=1e-5)
    vectors = features.reshape(5, -1).T
    np.testing.assert_array_equal(
        np.argmax(probabilities, axis=0).ravel()[1:], assign_cosine(vectors, centroids)[1:]
    )
    softer = class_probabilities(features, centroids, 1.0)
    assert softer.max() < probabilities.max()


# --- low resolution and sliding windows --------------------------------------------------------


def constant_predictor(crop: Image) -> FloatArray:
    """The same distribution everywhere, at a quarter of the crop's resolution."""
    return np.broadcast_to(
        np.array([0.5, 0.3, 0.2])[:, None, None],
        (3, max(1, crop.shape[0] // 4), max(1, crop.shape[1] // 4)),
    ).copy()


def red_predictor(crop: Image) -> FloatArray:
    """Per-pixel 'redness' of the crop as a two-class distribution at the crop's resolution."""
    red = crop[..., 0].astype(np.float64) / 255.0
    return np.stack([red, 1.0 - red])


def test_sliding_window_of_a_constant_predictor_is_constant() -> None:
    image = np.random.default_rng(0).integers(0, 256, (70, 130, 3), dtype=np.uint8)
    probabilities = sliding_window_probabilities(constant_predictor, image, window=32, stride=20)
    assert probabilities.shape == (3, 70, 130)
    expected = np.broadcast_to(np.array([0.5, 0.3, 0.2])[:, None, None], probabilities.shape)
    np.testing.assert_allclose(probabilities, expected, rtol=1e-6)


def test_sliding_window_places_every_crop_where_it_came_from() -> None:
    image = np.random.default_rng(1).integers(0, 256, (50, 90, 3), dtype=np.uint8)
    for window, stride in [(16, 8), (24, 10), (64, 64), (200, 50)]:
        probabilities = sliding_window_probabilities(red_predictor, image, window, stride)
        np.testing.assert_allclose(probabilities, red_predictor(image), atol=1e-6)


def test_low_resolution_probabilities_resize_the_frame_and_come_back() -> None:
    seen: list[tuple[int, ...]] = []

    def recording_predictor(crop: Image) -> FloatArray:
        seen.append(crop.shape)
        return constant_predictor(crop)

    image = np.zeros((60, 120, 3), dtype=np.uint8)
    probabilities = low_resolution_probabilities(recording_predictor, image, 20)
    assert seen == [(20, 40, 3)]
    assert probabilities.shape == (3, 60, 120)
    low_resolution_probabilities(recording_predictor, image, (10, 30))
    assert seen[-1] == (10, 30, 3)


def size_predictor(crop: Image) -> FloatArray:
    """Class 0 for small (low-resolution) inputs, class 1 for full-resolution crops."""
    label = 0 if crop.shape[0] < 64 else 1
    return one_hot(np.full((4, 4), label), 2, 0.9)


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
        size_predictor,
        np.full((64, 128), depth_value),
        low_resolution=32,
        window=64,
        stride=32,
        use_sliding_window=sliding,
        use_depth_guidance=guided,
        use_crf=False,
    )
    assert labels.dtype == np.int32 and labels.shape == (64, 128)
    assert np.all(labels == expected)


def test_depth_guidance_trusts_coarse_near_and_fine_far() -> None:
    image = np.full((64, 128, 3), 90, dtype=np.uint8)
    depth = np.tile(np.linspace(0.0, 4.0, 128), (64, 1))  # α > 1/2 where d < 1
    labels = semantic_pseudo_labels(
        image, size_predictor, depth, low_resolution=32, window=64, stride=32, use_crf=False
    )
    assert np.all(labels[:, depth[0] < 0.9] == 0)
    assert np.all(labels[:, depth[0] > 1.1] == 1)


def test_pipeline_rejects_depth_guidance_without_its_inputs() -> None:
    image = np.zeros((64, 64, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="sliding-window"):
        semantic_probabilities(image, size_predictor, np.ones((64, 64)), use_sliding_window=False)
    with pytest.raises(ValueError, match="depth map"):
        semantic_probabilities(image, size_predictor, None)


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


@pytest.mark.parametrize(("colour_sigma", "mean_error"), [(13.0, 0.04), (3.0, 0.06)])
def test_bilateral_grid_approximates_the_exact_normalised_filter(
    colour_sigma: float, mean_error: float
) -> None:
    rng = np.random.default_rng(2)
    height, width = 24, 32
    rows, cols = np.mgrid[0:height, 0:width]
    colours = np.zeros((height, width, 3))
    colours[..., 0] = 100 + 80 * (cols > 15)
    colours[..., 1] = 60 + 3 * rows
    colours += rng.normal(scale=5.0, size=colours.shape)
    image = np.clip(colours, 0, 255).astype(np.uint8)
    spatial_sigma = 8.0
    features = np.column_stack(
        [
            rows.ravel() / spatial_sigma,
            cols.ravel() / spatial_sigma,
            image.reshape(-1, 3) / colour_sigma,
        ]
    )
    kernel = np.exp(-0.5 * ((features[:, None] - features[None]) ** 2).sum(axis=-1))
    mass = kernel.sum(axis=1)
    values = rng.dirichlet(np.ones(4), size=height * width).astype(np.float32)
    exact = (kernel / np.sqrt(mass[:, None] * mass[None])) @ values
    approximate = BilateralGrid(image, spatial_sigma, colour_sigma)(values)
    relative_error = np.abs(approximate - exact) / exact
    assert relative_error.mean() < mean_error
    assert np.abs(approximate - exact).max() < 0.3 * exact.max()


def test_crf_rejects_an_image_of_another_size() -> None:
    with pytest.raises(ValueError, match="differ"):
        dense_crf(np.full((2, 4, 4), 0.5), np.zeros((5, 4, 3), dtype=np.uint8))
