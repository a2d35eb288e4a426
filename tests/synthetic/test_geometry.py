"""Geometry and texture building blocks against brute-force references."""

from __future__ import annotations

import numpy as np

from vpsbench.synthetic.geometry import (
    camera_rotation,
    intersect_box,
    intrinsics_for,
    pixel_rays,
    project,
    rotation_z,
    segment_pose,
)
from vpsbench.synthetic.textures import band_coverage, fractal_noise, pulse_coverage


def test_box_intersection_matches_marching_along_the_rays() -> None:
    rng = np.random.default_rng(3)
    rays_x = rng.uniform(-1, 1, (20, 20)).astype(np.float32)
    rays_y = rng.uniform(-1, 1, (20, 20)).astype(np.float32)
    rotation = (rotation_z(0.4) @ camera_rotation(0.0, 0.3)).astype(np.float32)
    centre = np.array([0.3, -0.2, 4.0])
    half = np.array([0.8, 0.5, 1.2], dtype=np.float32)
    origin = (-(centre @ rotation)).astype(np.float32)
    depth = intersect_box(origin, rotation, half, rays_x, rays_y)
    steps = np.linspace(0.05, 10, 4000)
    rays = np.stack([rays_x, rays_y, np.ones_like(rays_x)], -1).astype(np.float64)
    points = rays[..., None, :] * steps[:, None]
    local = (points - centre) @ rotation.astype(np.float64)
    inside = (np.abs(local) <= half).all(axis=-1)
    first = np.where(inside.any(axis=-1), steps[np.argmax(inside, axis=-1)], np.inf)
    assert (np.isinf(depth) == np.isinf(first)).all()
    hit = np.isfinite(first)
    assert hit.sum() > 20
    assert np.abs(depth[hit] - first[hit]).max() < 10 / 4000 + 1e-4


def test_pixel_rays_project_back_to_their_pixels() -> None:
    k = intrinsics_for(30, 50)
    rays = pixel_rays(k, 30, 50)
    rows, cols = np.mgrid[0:30, 0:50]
    projected = project(k, rays * 7.0)
    assert np.allclose(projected[..., 0], cols) and np.allclose(projected[..., 1], rows)
    assert 78 < np.degrees(2 * np.arctan(25 / k[0, 0])) < 86  # horizontal field of view


def test_camera_looks_along_the_street_with_image_down_pointing_down() -> None:
    rotation = camera_rotation(0.0, 0.0)
    assert np.allclose(rotation @ [0, 0, 1], [1, 0, 0])  # optical axis = world x
    assert np.allclose(rotation @ [0, 1, 0], [0, 0, -1])  # image down = world down
    assert np.isclose(np.linalg.det(rotation), 1.0)


def test_segment_pose_spans_its_end_points() -> None:
    start = np.array([[0.0, 0.1, 1.0]])
    end = np.array([[0.3, 0.1, 0.6]])
    rotation, centre = segment_pose(start, end)
    assert np.allclose(centre + rotation[0] @ [0, 0, -0.25], end)
    assert np.allclose(centre + rotation[0] @ [0, 0, 0.25], start)


def test_filtered_patterns_are_exact_box_filter_averages() -> None:
    coords = np.linspace(-3, 7, 57)
    width = np.full_like(coords, 0.37)
    dense = coords[:, None] + np.linspace(-0.185, 0.185, 20001)
    period, start, fill = 1.3, 0.2, 0.45
    phase = np.mod(dense, period) - start
    expected = ((phase >= 0) & (phase < fill)).mean(axis=1)
    got = pulse_coverage(
        coords,
        np.full_like(coords, period),
        np.full_like(coords, start),
        np.full_like(coords, fill),
        width,
    )
    assert np.abs(got - expected).max() < 1e-3
    band = band_coverage(coords, np.full_like(coords, 1.0), np.full_like(coords, 1.2), width)
    expected_band = ((dense >= 1.0) & (dense <= 1.2)).mean(axis=1)
    assert np.abs(band - expected_band).max() < 1e-3


def test_noise_fades_to_its_mean_below_the_pixel_size() -> None:
    rng = np.random.default_rng(0)
    u, v = rng.uniform(0, 50, 1000), rng.uniform(0, 50, 1000)
    seed = np.full(1000, 7, dtype=np.uint32)
    cell = np.full(1000, 0.5)
    sharp = fractal_noise(u, v, seed, cell, np.full(1000, 0.01))
    blurred = fractal_noise(u, v, seed, cell, np.full(1000, 1.0))
    assert sharp.min() >= 0 and sharp.max() <= 1 and sharp.std() > 0.05
    assert np.allclose(blurred, 0.5)
