"""Region growing in torch gives the very instance maps of the numpy/scipy version."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from vpsbench_methods.videocups.crf_torch import crf_device_available
from vpsbench_methods.videocups.instances import region_growing
from vpsbench_methods.videocups.instances_torch import region_growing_torch

from tests.videocups.test_instances import brute_force_region_growing


def cues(seed: int, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Few depth/flow levels with noise, exact zeros, sky (inf depth), NaN and inf flow."""
    rng = np.random.default_rng(seed)
    depth = rng.choice([5.0, 5.3, 9.0], size=shape) * rng.uniform(0.97, 1.03, shape)
    flow = rng.choice([-2.0, 0.5, 2.0], size=(*shape, 2)) + rng.normal(0, 0.05, (*shape, 2))
    flow[rng.uniform(size=shape) < 0.1] = 0.0
    depth[rng.uniform(size=shape) < 0.05] = np.inf
    depth[rng.uniform(size=shape) < 0.01] = np.nan
    flow[rng.uniform(size=shape) < 0.01] = np.inf
    motion = rng.uniform(size=shape)
    motion[rng.uniform(size=shape) < 0.01] = np.nan
    return depth, flow, motion


@pytest.mark.parametrize("seed", range(4))
def test_torch_matches_brute_force_on_tiny_inputs(seed: int) -> None:
    depth, flow, motion = cues(seed, (12, 16))
    depth[~np.isfinite(depth)] = 7.0  # the brute force oracle handles finite values only
    flow[~np.isfinite(flow)] = 1.0
    motion[~np.isfinite(motion)] = 0.0
    radius = 1 + seed % 3
    expected = brute_force_region_growing(depth, flow, motion, 0.3, radius, 0.04, 0.1)
    got = region_growing_torch(
        depth, flow, motion, alpha=0.3, radius=radius, tau_depth=0.04, tau_flow=0.1
    )
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(("seed", "radius", "min_area"), [(0, 2, 0), (1, 4, 3), (2, 8, 0)])
def test_torch_equals_numpy_with_degenerate_values(seed: int, radius: int, min_area: int) -> None:
    depth, flow, motion = cues(seed, (40, 57))
    options = {"alpha": 0.2, "radius": radius, "tau_depth": 0.04, "tau_flow": 0.1}
    expected = region_growing(depth, flow, motion, min_area=min_area, **options)
    got = region_growing_torch(depth, flow, motion, min_area=min_area, **options)
    np.testing.assert_array_equal(got, expected)
    assert got.max() > 1


def test_a_long_snake_needs_many_propagation_steps() -> None:
    """A one-pixel-wide zigzag is one component whose ends are far apart in the graph."""
    height, width = 41, 60
    motion = np.zeros((height, width))
    for row in range(0, height, 4):
        motion[row, :] = 0.9
        column = width - 1 if (row // 4) % 2 == 0 else 0
        motion[row : row + 4, column] = 0.9
    depth = np.full((height, width), 10.0)
    flow = np.zeros((height, width, 2))
    expected = region_growing(depth, flow, motion, radius=1)
    got = region_growing_torch(depth, flow, motion, radius=1)
    np.testing.assert_array_equal(got, expected)
    assert got.max() == 1


def test_no_seeds() -> None:
    depth, flow, motion = cues(5, (8, 9))
    empty = region_growing_torch(depth, flow, np.zeros_like(motion))
    assert empty.shape == (8, 9) and not empty.any()


@pytest.mark.skipif(not crf_device_available("cuda"), reason="no CUDA device here")
def test_cuda_equals_numpy() -> None:
    depth, flow, motion = cues(7, (64, 96))
    expected = region_growing(depth, flow, motion)
    np.testing.assert_array_equal(
        region_growing_torch(depth, flow, motion, device="cuda"), expected
    )
