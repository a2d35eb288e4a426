"""The permutohedral lattice: its geometry by hand, its filter against the exact Gaussian."""

from __future__ import annotations

import numpy as np
import pytest
from vpsbench_methods.videocups.permutohedral import (
    PermutohedralLattice,
    elevate,
    enclosing_simplex,
    packed_vertex_keys,
    vertex_keys,
)


@pytest.mark.parametrize("dimension", [1, 2, 5])
def test_each_point_is_the_barycentric_mix_of_its_simplex_vertices(dimension: int) -> None:
    points = np.random.default_rng(dimension).normal(scale=4.0, size=(2000, dimension))
    simplex = enclosing_simplex(points)
    keys, weights = vertex_keys(simplex), simplex.weights
    full = np.concatenate([keys, -keys.sum(axis=2, keepdims=True)], axis=2)  # Σ coordinates = 0
    assert weights.min() >= 0.0
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose((weights[:, :, None] * full).sum(axis=1), elevate(points), atol=1e-9)
    # Vertex r is a remainder-r lattice point: every coordinate ≡ r (mod d + 1).
    size = dimension + 1
    remainders = np.broadcast_to(np.arange(size)[None, :, None], full.shape)
    np.testing.assert_array_equal(full % size, remainders)
    # Consecutive vertices differ by one lattice edge: +1 everywhere and −d at one coordinate.
    steps = np.diff(full, axis=1)
    assert np.all(np.sort(steps, axis=2) == np.r_[-dimension, np.ones(dimension)])


def test_packed_keys_name_the_same_vertices_as_the_keys() -> None:
    points = np.random.default_rng(4).normal(scale=6.0, size=(3000, 5))
    simplex = enclosing_simplex(points)
    keys = vertex_keys(simplex).reshape(-1, 5)
    packed, strides = packed_vertex_keys(simplex)
    # Linear in the keys, with no two distinct vertices on one int64.
    np.testing.assert_array_equal(np.diff(packed.ravel()), np.diff(keys @ strides))
    assert np.unique(packed).size == np.unique(keys, axis=0).shape[0]


def test_elevation_lies_on_the_hyperplane_and_keeps_distances_up_to_scale() -> None:
    points = np.random.default_rng(0).normal(size=(50, 3))
    lifted = elevate(points)
    np.testing.assert_allclose(lifted.sum(axis=1), 0.0, atol=1e-12)
    original = np.linalg.norm(points[:, None] - points[None], axis=-1)
    lifted_distance = np.linalg.norm(lifted[:, None] - lifted[None], axis=-1)
    ratio = lifted_distance[original > 0] / original[original > 0]
    np.testing.assert_allclose(ratio, np.sqrt(2.0 / 3.0) * 4, rtol=1e-9)  # √(2/3)(d+1), d = 3


def test_blur_links_each_vertex_to_its_lattice_neighbours_only() -> None:
    points = np.random.default_rng(3).uniform(0, 3, size=(300, 2))
    lattice = PermutohedralLattice(points)
    keys = vertex_keys(enclosing_simplex(points))
    full = np.concatenate([keys, -keys.sum(axis=2, keepdims=True)], axis=2).reshape(-1, 3)
    # Each point's slice row reads its d + 1 vertices in order: that names every column's vertex.
    columns = lattice.slice.indices.reshape(-1, 3)
    vertex = {int(column): tuple(key) for column, key in zip(columns.ravel(), full, strict=True)}
    index = {key: column for column, key in vertex.items()}
    for direction, blur in enumerate(lattice.blurs):
        step = np.full(3, -1)
        step[direction] += 3
        expected = np.eye(lattice.vertex_count, dtype=np.float32)
        for column, key in vertex.items():
            for sign in (-1, 1):
                neighbour = index.get(tuple(np.asarray(key) + sign * step))
                if neighbour is not None:
                    expected[column, neighbour] = 0.5
        np.testing.assert_array_equal(blur.toarray(), expected)


@pytest.mark.parametrize("dimension", [1, 2, 3])
def test_impulse_response_is_close_to_a_unit_gaussian(dimension: int) -> None:
    samples = {1: 1201, 2: 121, 3: 31}[dimension]
    axis = np.linspace(-6.0, 6.0, samples)
    grid = np.stack(np.meshgrid(*([axis] * dimension), indexing="ij"), -1).reshape(-1, dimension)
    lattice = PermutohedralLattice(grid)
    impulse = np.zeros((grid.shape[0], 1), dtype=np.float32)
    impulse[np.argmin((grid**2).sum(axis=1))] = 1.0
    response = lattice._filter_unnormalised(impulse)[:, 0].astype(np.float64)
    response /= response.sum()
    np.testing.assert_allclose(response @ grid, 0.0, atol=0.02)  # centred
    std = np.sqrt(response @ grid**2)
    assert np.all((std > 0.85) & (std < 1.05)), std  # Adams et al.'s scaling: σ ≈ 1


@pytest.mark.parametrize(("colour_sigma", "mean_error"), [(13.0, 0.03), (3.0, 0.08)])
def test_lattice_approximates_the_exact_normalised_bilateral_filter(
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
    approximate = PermutohedralLattice(features)(values)
    relative_error = np.abs(approximate - exact) / exact
    assert relative_error.mean() < mean_error
    assert np.abs(approximate - exact).max() < 0.3 * exact.max()


@pytest.mark.parametrize("shape", [(0, 3), (5,)])
def test_lattice_rejects_features_that_are_not_points(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="features"):
        PermutohedralLattice(np.zeros(shape))
