"""Gaussian filtering in a d-dimensional feature space on the permutohedral lattice.

The dense CRF's bilateral message (Krähenbühl & Koltun 2011) is a Gaussian filter over pixels in
a (position, colour) feature space. CUPS computes it with pydensecrf, which filters on the
permutohedral lattice of Adams, Baek & Davis (2010, "Fast High-Dimensional Filtering Using the
Permutohedral Lattice"): every point is lifted onto the hyperplane of (d+1)-vectors summing to
zero, where the lattice tiles space with simplices; it *splats* its value onto the d + 1
vertices of its simplex with barycentric weights, the vertices are *blurred* with
[½, 1, ½] along each of the d + 1 lattice directions, and each point *slices* (reads back) with
the same weights. Features scaled by √(2/3)(d+1) make this approximate a unit-σ Gaussian.

Here the three steps are sparse matrices built once per image (splat = sliceᵀ, one blur matrix
per direction), so one filtering of (N, K) values is 2 + (d+1) sparse products, and the filter is
normalised symmetrically (D^-1/2 K D^-1/2, D the filtered ones), as pydensecrf's
``NORMALIZE_SYMMETRIC``; constant factors of the blur and slice cancel there. Like every lattice
filter, mass passing through vertices no point touched is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import sparse

FloatArray = npt.NDArray[np.floating]

_NEIGHBOUR_WEIGHT = 0.5  # the lattice blur [½, 1, ½] (Adams et al.'s [1, 2, 1] / 2)


class PermutohedralLattice:
    """Symmetrically normalised Gaussian filter of per-point vectors, σ = 1 in ``features``.

    ``features`` is (N, d): each point's position already divided by its σ per dimension.
    Calling the lattice on (N, K) values returns their filtered (N, K) values.
    """

    def __init__(self, features: FloatArray) -> None:
        points = np.asarray(features, dtype=np.float64)
        if points.ndim != 2 or points.shape[0] == 0:
            raise ValueError(f"features must be a non-empty (N, d) array, got {points.shape}")
        count, dimension = points.shape
        simplex = enclosing_simplex(points)
        keys, strides = packed_vertex_keys(simplex)
        packed, vertex_of = np.unique(keys, return_inverse=True)
        self.vertex_count = int(packed.size)
        self.slice = sparse.csr_matrix(
            (
                simplex.weights.ravel().astype(np.float32),
                vertex_of.ravel(),
                np.arange(0, count * (dimension + 1) + 1, dimension + 1),
            ),
            shape=(count, packed.size),
        )
        self.splat = self.slice.T  # CSC view: splatting is the transpose of slicing
        self.blurs = _blur_matrices(packed, strides, dimension)
        mass = self._filter_unnormalised(np.ones((count, 1), dtype=np.float32))
        self.scale = (1.0 / np.sqrt(np.maximum(mass, 1e-20))).astype(np.float32)

    def _filter_unnormalised(self, values: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Splat, blur along every lattice direction, slice."""
        lattice = self.splat @ values
        for blur in self.blurs:
            lattice = blur @ lattice
        return np.asarray(self.slice @ lattice, dtype=np.float32)

    def __call__(self, values: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Filtered (N, K) values."""
        return self._filter_unnormalised(values * self.scale) * self.scale


def elevate(features: FloatArray) -> npt.NDArray[np.float64]:
    """Points (N, d) lifted onto the hyperplane Σx = 0 of R^{d+1}, scaled for a unit-σ blur.

    Coordinate i ≥ 1 is Σ_{k>i} c_k − i·c_i and coordinate 0 is Σ_k c_k, where
    c_k = f_{k−1} · √(2/3)(d+1) / √(k(k+1)) (Adams et al. 2010, Sec. 3.1).
    """
    points = np.asarray(features, dtype=np.float64)
    dimension = points.shape[1]
    k = np.arange(1, dimension + 1, dtype=np.float64)
    scaled = points * (np.sqrt(2.0 / 3.0) * (dimension + 1) / np.sqrt(k * (k + 1)))
    suffix = np.zeros((points.shape[0], dimension + 1))
    suffix[:, :dimension] = np.cumsum(scaled[:, ::-1], axis=1)[:, ::-1]  # Σ_{k>i} c_k
    elevated = suffix.copy()
    elevated[:, 1:] -= k * scaled
    return elevated


@dataclass(frozen=True)
class Simplex:
    """Each point's enclosing lattice simplex: its remainder-0 vertex and coordinate ranks
    (which give the other d vertices) and the point's barycentric weights, all (N, d+1)."""

    remainder0: npt.NDArray[np.int64]
    rank: npt.NDArray[np.int64]
    weights: npt.NDArray[np.float64]


def enclosing_simplex(features: FloatArray) -> Simplex:
    """The simplex of the lattice that holds each point (Adams et al. 2010, Sec. 3.1–3.2).

    Round to the nearest remainder-0 lattice point, order the point's offsets from it (its rank
    per coordinate), bring points that rounding left off the plane Σx = 0 back, and read the
    barycentric weights off the sorted offsets.
    """
    elevated = elevate(features)
    count, size = elevated.shape  # size = d + 1
    dimension = size - 1
    nearest = np.rint(elevated / size)
    remainder0 = (nearest * size).astype(np.int64)
    off_plane = nearest.sum(axis=1).astype(np.int64)
    offsets = elevated - remainder0
    # rank[i]: how many coordinates lie further above their remainder-0 point (ties by index).
    above_i = offsets[:, None, :] > offsets[:, :, None]  # [n, i, j]: offset j above offset i
    earlier_tie = (offsets[:, None, :] == offsets[:, :, None]) & np.tri(size, k=-1, dtype=bool)
    rank = np.count_nonzero(above_i | earlier_tie, axis=2).astype(np.int64)
    rank += off_plane[:, None]
    below, above = rank < 0, rank > dimension
    rank[below] += size
    remainder0[below] += size
    rank[above] -= size
    remainder0[above] -= size

    shares = (elevated - remainder0) / size
    slot = dimension - rank  # (N, d+1), a permutation of 0..d per point
    upper = np.zeros((count, size + 1))
    lower = np.zeros((count, size + 1))
    np.put_along_axis(upper, slot, shares, axis=1)
    np.put_along_axis(lower, slot + 1, shares, axis=1)
    barycentric = upper - lower
    barycentric[:, 0] += 1.0 + barycentric[:, size]
    return Simplex(remainder0, rank, barycentric[:, :size])


def vertex_keys(simplex: Simplex) -> npt.NDArray[np.int64]:
    """The simplex's vertices (N, d+1, d): vertex r is remainder0 + r, less d + 1 where
    rank > d − r; a vertex is named by its first d coordinates (the last is minus their sum)."""
    size = simplex.rank.shape[1]
    remainders = np.arange(size)
    wraps = simplex.rank[:, None, :-1] > (size - 1 - remainders)[None, :, None]
    keys = simplex.remainder0[:, None, :-1] + remainders[None, :, None] - size * wraps
    return np.asarray(keys, dtype=np.int64)


def packed_vertex_keys(
    simplex: Simplex,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """:func:`vertex_keys` as one int64 per vertex (N, d+1), and the per-coordinate strides.

    The packing is linear, Σ_k (key_k − low_k)·stride_k, computed without building the keys.
    Each coordinate's range is padded by d + 1 on both sides, so that a neighbour's key (a step
    of at most d + 1 per coordinate) never aliases another vertex.
    """
    size = simplex.rank.shape[1]
    corner = simplex.remainder0[:, :-1]
    low = corner.min(axis=0) - 2 * size  # keys reach remainder0 − (d+1); neighbours d+1 further
    extent = corner.max(axis=0) + 2 * size - low + 1
    if np.sum(np.log2(extent.astype(np.float64))) > 62:
        raise ValueError("feature range too large for 64-bit lattice keys; scale the features")
    strides = np.cumprod(np.concatenate([[1], extent[:-1]])).astype(np.int64)
    base = (corner - low) @ strides
    packed = np.empty(simplex.rank.shape, dtype=np.int64)
    rank = simplex.rank[:, :-1]
    for remainder in range(size):
        wrapped = (rank > size - 1 - remainder).astype(np.int64) @ strides
        packed[:, remainder] = base + remainder * int(strides.sum()) - size * wrapped
    return packed, strides


def _blur_matrices(
    packed: npt.NDArray[np.int64], strides: npt.NDArray[np.int64], dimension: int
) -> list[sparse.csr_matrix]:
    """Per lattice direction j, the sparse (M, M) blur [½, 1, ½] among the touched vertices.

    Direction j's neighbour is the vertex + (d+1)·e_j − 1 (in all d+1 coordinates; e_d is the
    implicit last one), and its opposite. Each row holds the vertex and the neighbours present.
    """
    count = packed.size
    identity = np.arange(count)
    blurs: list[sparse.csr_matrix] = []
    for direction in range(dimension + 1):
        step = -int(strides.sum())
        if direction < dimension:  # the implicit last coordinate has no stride of its own
            step += (dimension + 1) * int(strides[direction])
        below, above = _find(packed, packed - step), _find(packed, packed + step)
        columns = np.stack([below, identity, above], axis=1)
        present = columns >= 0
        weights = np.where(present, np.float32(_NEIGHBOUR_WEIGHT), np.float32(0.0))
        weights[:, 1] = 1.0
        indptr = np.concatenate([[0], np.cumsum(np.count_nonzero(present, axis=1))])
        blurs.append(
            sparse.csr_matrix((weights[present], columns[present], indptr), shape=(count, count))
        )
    return blurs


def _find(packed: npt.NDArray[np.int64], targets: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Index of each target among the sorted ``packed`` keys, −1 where it is absent."""
    position = np.minimum(np.searchsorted(packed, targets), packed.size - 1)
    return np.where(packed[position] == targets, position, -1)
