"""The dense CRF against pydensecrf, the library CUPS runs it with (``cups/crf.py``).

pydensecrf (installed from the ``pydensecrf2`` distribution, a packaging of Krähenbühl's code
under the same module name) is a test oracle only; the tests skip without it.
"""

from __future__ import annotations

import numpy as np
import pytest
from vpsbench_methods.videocups.semantics import dense_crf

densecrf = pytest.importorskip(
    "pydensecrf.densecrf", reason="pydensecrf (pip install pydensecrf2) is not installed"
)


def blocky_scene(seed: int, classes: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """A 64×128 image of noisy colour blocks and noisy class probabilities on a coarser layout."""
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, 256, (8, 16, 3))
    image = np.repeat(np.repeat(cells, 8, axis=0), 8, axis=1).astype(np.float64)
    image = np.clip(image + rng.normal(0, 4, image.shape), 0, 255).astype(np.uint8)
    labels = np.repeat(np.repeat(rng.integers(0, classes, (8, 16)), 8, axis=0), 8, axis=1)
    logits = 2.0 * np.eye(classes)[labels].transpose(2, 0, 1) + rng.normal(0, 1, (classes, 64, 128))
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=0)
    return image, probabilities.astype(np.float32)


def pydensecrf_marginals(
    probabilities: np.ndarray, image: np.ndarray, iterations: int
) -> np.ndarray:
    """CUPS' ``dense_crf`` calls, with its constants (MAX_ITER aside)."""
    classes, height, width = probabilities.shape
    crf = densecrf.DenseCRF2D(width, height, classes)
    unary = -np.log(np.clip(probabilities, 1e-8, 1.0)).reshape(classes, -1)  # unary_from_softmax
    crf.setUnaryEnergy(np.ascontiguousarray(unary, dtype=np.float32))
    crf.addPairwiseGaussian(sxy=1, compat=3)
    crf.addPairwiseBilateral(sxy=67, srgb=3, rgbim=np.ascontiguousarray(image), compat=4)
    return np.array(crf.inference(iterations)).reshape(classes, height, width)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_mean_field_step_matches_pydensecrf(seed: int) -> None:
    image, probabilities = blocky_scene(seed)
    expected = pydensecrf_marginals(probabilities, image, 1)
    got = dense_crf(probabilities, image, 1)
    # Two lattice filters with the same construction: the marginals agree to ~0.2 % on average
    # (σ_rgb 13 instead of CUPS' 3 is 0.013 away, no bilateral kernel 0.064).
    assert np.abs(got - expected).mean() < 0.005


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cups_crf_labels_match_pydensecrf(seed: int) -> None:
    image, probabilities = blocky_scene(seed)
    expected = pydensecrf_marginals(probabilities, image, 10)
    got = dense_crf(probabilities, image)  # CUPS' 10 iterations
    assert np.mean(got.argmax(axis=0) == expected.argmax(axis=0)) > 0.998
    assert np.abs(got - expected).mean() < 0.001
