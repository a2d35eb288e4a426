"""Cosine-distance mini-batch k-means: how unsupervised methods turn features into pseudo-classes.

VideoCUPS clusters distilled features into c_p = 27 pseudo-classes that are consistent across the
whole dataset with stochastic cosine-distance k-means (paper Sec. 3.1); the weight-free baselines
do the same with handcrafted features. Features and centroids live on the unit sphere, so the
nearest centroid is the one with the largest dot product. Deterministic for a seed.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from vpsbench.errors import VpsbenchError

Features = npt.NDArray[np.floating]


def normalize_rows(vectors: Features) -> npt.NDArray[np.float64]:
    """Unit-length rows (zero rows stay zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.asarray(vectors / np.maximum(norms, 1e-12), dtype=np.float64)


def assign_cosine(vectors: Features, centroids: Features) -> npt.NDArray[np.int32]:
    """Index of the most similar centroid for every row (ties → lowest index)."""
    similarity = normalize_rows(vectors) @ normalize_rows(centroids).T
    return np.asarray(np.argmax(similarity, axis=1), dtype=np.int32)


def fit_cosine_kmeans(
    samples: Features,
    num_clusters: int,
    iterations: int = 100,
    batch_size: int = 4096,
    seed: int = 0,
) -> npt.NDArray[np.float64]:
    """Mini-batch spherical k-means (Sculley 2010 updates, cosine distance); unit centroids.

    Initialised with k-means++ on the cosine distance; a centroid that loses all its samples is
    re-seeded at the sample farthest from its centroid, so no cluster stays empty.
    """
    data = normalize_rows(samples)
    if data.shape[0] < num_clusters:
        raise VpsbenchError(
            f"{data.shape[0]} feature samples cannot make {num_clusters} clusters: lower the "
            "number of pseudo-classes (num_pseudo_classes) or give more frames"
        )
    rng = np.random.default_rng(seed)
    centroids = _kmeans_plus_plus(data, num_clusters, rng)
    counts = np.zeros(num_clusters)
    for _ in range(iterations):
        batch = data[rng.choice(data.shape[0], size=min(batch_size, data.shape[0]), replace=False)]
        labels = np.argmax(batch @ centroids.T, axis=1)
        for cluster in np.unique(labels):
            members = batch[labels == cluster]
            counts[cluster] += members.shape[0]
            rate = members.shape[0] / counts[cluster]
            centroids[cluster] = (1 - rate) * centroids[cluster] + rate * members.mean(axis=0)
        centroids = normalize_rows(centroids)
    labels = np.argmax(data @ centroids.T, axis=1)
    for cluster in np.setdiff1d(np.arange(num_clusters), labels):
        worst = int(np.argmin(np.max(data @ centroids.T, axis=1)))
        centroids[cluster] = data[worst]
    return centroids


def _kmeans_plus_plus(
    data: npt.NDArray[np.float64], num_clusters: int, rng: np.random.Generator
) -> npt.NDArray[np.float64]:
    """k-means++ seeding with the cosine distance 1 − ⟨x, c⟩."""
    chosen = [int(rng.integers(data.shape[0]))]
    distance = 1.0 - data @ data[chosen[0]]
    for _ in range(1, num_clusters):
        weights = np.maximum(distance, 0.0)
        total = weights.sum()
        index = (
            int(rng.choice(data.shape[0], p=weights / total))
            if total > 0
            else int(rng.integers(data.shape[0]))
        )
        chosen.append(index)
        distance = np.minimum(distance, 1.0 - data @ data[index])
    return data[chosen].copy()
