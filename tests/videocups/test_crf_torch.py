"""The torch CRF iterations equal the numpy/scipy ones (on the CPU, to float32 rounding)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from vpsbench_methods.videocups.crf_torch import (  # noqa: E402
    crf_device_available,
    dense_crf_torch,
)
from vpsbench_methods.videocups.semantics import CrfParameters, dense_crf, semantic_probabilities  # noqa: E402

from vpsbench.cues.base import FeatureMap  # noqa: E402


def scene(seed: int, shape: tuple[int, int], classes: int) -> tuple[np.ndarray, np.ndarray]:
    """A blocky colour image and noisy blocky class probabilities over it."""
    rng = np.random.default_rng(seed)
    height, width = shape
    cells = rng.integers(0, 256, (height // 6 + 1, width // 8 + 1, 3))
    image = np.repeat(np.repeat(cells, 6, axis=0), 8, axis=1)[:height, :width]
    image = np.clip(image + rng.normal(0, 5, image.shape), 0, 255).astype(np.uint8)
    labels = np.repeat(
        np.repeat(rng.integers(0, classes, (height // 6 + 1, width // 8 + 1)), 6, 0), 8, 1
    )
    logits = 2.0 * np.eye(classes)[labels[:height, :width]].transpose(2, 0, 1)
    logits += rng.normal(0, 1.0, logits.shape)
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=0, keepdims=True)
    return image, probabilities.astype(np.float32)


@pytest.mark.parametrize(("seed", "shape", "classes"), [(0, (24, 40), 4), (1, (37, 29), 6)])
@pytest.mark.parametrize("iterations", [1, 5])
def test_torch_iterations_equal_numpy_ones_on_cpu(
    seed: int, shape: tuple[int, int], classes: int, iterations: int
) -> None:
    image, probabilities = scene(seed, shape, classes)
    expected = dense_crf(probabilities, image, iterations)
    got = dense_crf_torch(probabilities, image, CrfParameters(iterations=iterations), "cpu")
    assert got.shape == expected.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=2e-5)
    top2 = np.sort(expected, axis=0)[-2:]
    clear = top2[1] - top2[0] > 1e-3  # labels may differ only at near-ties
    np.testing.assert_array_equal(np.argmax(got, 0)[clear], np.argmax(expected, 0)[clear])
    assert not np.allclose(expected, probabilities, atol=1e-3)  # the CRF did change something


def test_crf_device_setting_selects_the_torch_path() -> None:
    image, _ = scene(2, (16, 24), 3)
    centroids = np.eye(3, 4)

    def extract(picture: object) -> FeatureMap:
        rng = np.random.default_rng(0)
        return FeatureMap(rng.normal(size=(4, 4, 6)).astype(np.float32), stride=4)

    numpy_path = semantic_probabilities(
        image, extract, centroids, use_sliding_window=False, use_depth_guidance=False
    )
    torch_path = semantic_probabilities(
        image,
        extract,
        centroids,
        use_sliding_window=False,
        use_depth_guidance=False,
        crf=CrfParameters(device="cpu"),
    )
    np.testing.assert_allclose(torch_path, numpy_path, atol=2e-5)
    with pytest.raises(RuntimeError):  # the device setting really reaches torch
        semantic_probabilities(
            image,
            extract,
            centroids,
            use_sliding_window=False,
            use_depth_guidance=False,
            crf=CrfParameters(device="no-such-device"),
        )


@pytest.mark.skipif(not crf_device_available("cuda"), reason="no CUDA device here")
def test_cuda_iterations_equal_cpu_ones() -> None:
    image, probabilities = scene(3, (48, 64), 5)
    expected = dense_crf(probabilities, image)
    got = dense_crf_torch(probabilities, image, CrfParameters(), "cuda")
    np.testing.assert_allclose(got, expected, atol=1e-4)
