"""Cosine k-means finds well-separated directions and is deterministic."""

from __future__ import annotations

import numpy as np

from vpsbench.clustering import assign_cosine, fit_cosine_kmeans, normalize_rows


def test_recovers_three_directions() -> None:
    rng = np.random.default_rng(0)
    directions = np.eye(3) * 5
    labels = rng.integers(0, 3, 600)
    samples = directions[labels] + rng.normal(scale=0.5, size=(600, 3))
    centroids = fit_cosine_kmeans(samples, 3, seed=1)
    found = assign_cosine(samples, centroids)
    # The clustering equals the true labels up to a renaming of the clusters.
    pairs = {(int(a), int(b)) for a, b in zip(labels, found, strict=True)}
    assert len(pairs) == 3
    np.testing.assert_allclose(np.linalg.norm(centroids, axis=1), 1.0)


def test_deterministic_and_no_empty_cluster() -> None:
    rng = np.random.default_rng(3)
    samples = rng.normal(size=(300, 8))
    first = fit_cosine_kmeans(samples, 10, seed=5)
    again = fit_cosine_kmeans(samples, 10, seed=5)
    np.testing.assert_array_equal(first, again)
    assert len(np.unique(assign_cosine(samples, first))) == 10


def test_scale_does_not_matter_for_cosine_assignment() -> None:
    centroids = normalize_rows(np.array([[1.0, 0.0], [0.0, 1.0]]))
    vectors = np.array([[10.0, 1.0], [0.1, 0.2], [3.0, 3.1]])
    assert assign_cosine(vectors, centroids).tolist() == [0, 1, 1]
