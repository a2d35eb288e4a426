"""Region growing (Eq. 1) on constructed cues with known instances, and against brute force."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import numpy.typing as npt
import pytest
from vpsbench_methods.videocups.instances import half_chebyshev_offsets, region_growing

FloatArray = npt.NDArray[np.float64]


def blank_cues(height: int, width: int) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Static background at 50 m with zero flow and zero motion."""
    return np.full((height, width), 50.0), np.zeros((height, width, 2)), np.zeros((height, width))


def test_objects_at_different_depths_moving_alike_stay_separate() -> None:
    depth, flow, motion = blank_cues(40, 60)
    motion[10:30, 10:30] = motion[10:30, 30:50] = 0.9  # touching boxes
    flow[10:30, 10:50] = (3.0, 0.5)  # identical motion
    depth[10:30, 10:30] = 10.0
    depth[10:30, 30:50] = 15.0
    instances = region_growing(depth, flow, motion)
    assert set(np.unique(instances)) == {0, 1, 2}
    assert len(np.unique(instances[10:30, 10:30])) == 1
    assert len(np.unique(instances[10:30, 30:50])) == 1
    assert instances[15, 15] != instances[15, 45]


def test_non_rigid_pedestrian_with_smooth_flow_stays_one_instance() -> None:
    depth, flow, motion = blank_cues(80, 40)
    rows = np.arange(10, 70)
    motion[10:70, 14:26] = 0.8
    depth[10:70, 14:26] = 12.0 + 0.001 * (rows - 10)[:, None]  # slight slope, < τ_d per pixel
    # Limbs swing: the flow grows linearly from head (1.0 px) to feet (1.59 px), 1 % per row —
    # under τ_f = 4 % between neighbours, far above it between head and feet.
    flow[10:70, 14:26, 0] = (1.0 + 0.01 * (rows - 10))[:, None]
    head_to_feet = abs(flow[69, 20, 0] - flow[10, 20, 0]) / flow[10, 20, 0]
    assert head_to_feet > 10 * 0.04
    instances = region_growing(depth, flow, motion)
    assert set(np.unique(instances)) == {0, 1}
    assert np.all(instances[10:70, 14:26] == 1)


def test_pixels_at_or_below_alpha_never_get_ids() -> None:
    rng = np.random.default_rng(0)
    motion = rng.uniform(size=(30, 40))
    motion[5, 5] = 0.15  # exactly α: not a seed (m > α is strict)
    depth = np.full(motion.shape, 10.0)
    flow = np.tile([2.0, 0.0], (*motion.shape, 1))
    instances = region_growing(depth, flow, motion, alpha=0.15)
    assert np.all(instances[motion <= 0.15] == 0)
    assert np.all(instances[motion > 0.15] > 0)
    assert instances[5, 5] == 0


@pytest.mark.parametrize(("radius", "merged"), [(8, False), (9, False), (10, True), (12, True)])
def test_radius_decides_whether_blobs_ten_pixels_apart_merge(radius: int, merged: bool) -> None:
    depth, flow, motion = blank_cues(30, 60)
    motion[10:20, 10:20] = motion[10:20, 29:39] = 0.9  # nearest columns 19 and 29: 10 px apart
    depth[motion > 0] = 8.0
    flow[motion > 0] = (1.5, -1.0)
    instances = region_growing(depth, flow, motion, radius=radius)
    assert instances.max() == (1 if merged else 2)


def test_sky_and_zero_flow_are_handled_without_nan() -> None:
    depth, flow, motion = blank_cues(20, 40)
    depth[:, :20] = np.inf  # sky, flagged as moving, zero flow
    motion[:, :20] = 0.9
    motion[:, 20:30] = 0.9  # a near object with zero flow (moving with the camera)
    depth[:, 20:30] = 5.0
    motion[:, 30:] = 0.9  # a far object whose flow is a hair above zero
    depth[:, 30:] = 5.0
    flow[:, 30:] = (0.01, 0.0)
    depth[0, 0] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "invalid value" from inf − inf or 0 / 0
        instances = region_growing(depth, flow, motion)
    assert instances.dtype == np.int32
    assert len(np.unique(instances[1:, :20])) == 1  # all of the sky is one region (both at ∞)
    assert len(np.unique(instances[:, 20:30])) == 1  # identical zero flow agrees
    assert len(np.unique(instances[:, 30:])) == 1
    assert len({instances[5, 5], instances[5, 25], instances[5, 35]}) == 3
    assert instances[0, 0] not in {instances[5, 5], 0}  # NaN depth: a seed that merges with nobody
    assert np.count_nonzero(instances == instances[0, 0]) == 1


@pytest.mark.parametrize(
    ("depth_y", "tau_depth", "merged"), [(10.3, 0.0295, True), (9.7, 0.0305, False)]
)
def test_eq1_holds_from_either_end_with_both_conditions_from_the_same_end(
    depth_y: float, tau_depth: float, merged: bool
) -> None:
    depth, flow, motion = blank_cues(1, 2)
    motion[:] = 0.9
    depth[0] = (10.0, depth_y)
    flow[0] = ((1.0, 0.0), (1.05, 0.0))  # flow: 0.05 from x, 0.0476 from y → only y passes
    # depth 10.3: 0.03 from x, 0.0291 from y → only y passes, and both: merged.
    # depth 9.7: 0.03 from x, 0.0309 from y → only x passes depth, only y flow: not merged.
    instances = region_growing(depth, flow, motion, tau_depth=tau_depth, tau_flow=0.049)
    assert instances.max() == (1 if merged else 2)


def test_min_area_drops_small_instances_and_renumbers() -> None:
    depth, flow, motion = blank_cues(30, 30)
    motion[2, 2] = 0.9  # a one-pixel speck, first in raster order
    motion[10:20, 10:20] = 0.9
    depth[10:20, 10:20] = 7.0
    flow[10:20, 10:20] = (1.0, 1.0)
    assert region_growing(depth, flow, motion).max() == 2
    instances = region_growing(depth, flow, motion, min_area=5)
    assert instances[2, 2] == 0
    assert set(np.unique(instances)) == {0, 1}


def test_no_seeds_gives_an_empty_map() -> None:
    depth, flow, motion = blank_cues(8, 8)
    instances = region_growing(depth, flow, motion)
    assert instances.shape == (8, 8) and not instances.any()


def test_half_offsets_cover_the_chebyshev_ball_once() -> None:
    for radius in (1, 3, 8):
        half = half_chebyshev_offsets(radius)
        assert len(half) == ((2 * radius + 1) ** 2 - 1) // 2
        both = set(half) | {(-r, -c) for r, c in half}
        assert both == {
            (r, c)
            for r, c in itertools.product(range(-radius, radius + 1), repeat=2)
            if (r, c) != (0, 0)
        }


def brute_force_region_growing(
    depth: FloatArray,
    flow: FloatArray,
    motion: FloatArray,
    alpha: float,
    radius: int,
    tau_depth: float,
    tau_flow: float,
) -> npt.NDArray[np.int32]:
    """Eq. 1 literally: every seed x tries to merge every y in N_r(x); union-find; raster ids."""
    height, width = motion.shape
    parent = list(range(height * width))

    def find(node: int) -> int:
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    def relative(difference: float, reference: float) -> float:
        if difference == 0.0:
            return 0.0
        return difference / reference if reference != 0.0 else np.inf

    for h, w in itertools.product(range(height), range(width)):
        if not motion[h, w] > alpha:
            continue
        for dh, dw in itertools.product(range(-radius, radius + 1), repeat=2):
            y_h, y_w = h + dh, w + dw
            if (dh, dw) == (0, 0) or not (0 <= y_h < height and 0 <= y_w < width):
                continue
            if not motion[y_h, y_w] > alpha:
                continue
            depth_change = relative(abs(depth[h, w] - depth[y_h, y_w]), abs(depth[h, w]))
            flow_change = relative(
                float(np.linalg.norm(flow[h, w] - flow[y_h, y_w])),
                float(np.linalg.norm(flow[h, w])),
            )
            if depth_change < tau_depth and flow_change < tau_flow:
                parent[find(h * width + w)] = find(y_h * width + y_w)

    instances = np.zeros((height, width), dtype=np.int32)
    ids: dict[int, int] = {}
    for h, w in itertools.product(range(height), range(width)):
        if motion[h, w] > alpha:
            root = find(h * width + w)
            instances[h, w] = ids.setdefault(root, len(ids) + 1)
    return instances


@pytest.mark.parametrize("seed", range(6))
def test_matches_brute_force_on_random_tiny_inputs(seed: int) -> None:
    rng = np.random.default_rng(seed)
    height, width = 12, 16
    # A few depth/flow levels with small noise, so that some pairs merge and some do not.
    depth = rng.choice([5.0, 5.3, 9.0], size=(height, width)) * rng.uniform(
        0.97, 1.03, (height, width)
    )
    flow = rng.choice([-2.0, 0.5, 2.0], size=(height, width, 2)) + rng.normal(
        0, 0.05, (height, width, 2)
    )
    flow[rng.uniform(size=(height, width)) < 0.1] = 0.0  # exact zero flow (the 0 / 0 rule)
    motion = rng.uniform(size=(height, width))
    radius = int(rng.integers(1, 4))
    expected = brute_force_region_growing(depth, flow, motion, 0.3, radius, 0.04, 0.1)
    assert expected.max() < np.count_nonzero(motion > 0.3)  # some merging happened
    assert expected.max() > 1  # but not everything merged
    np.testing.assert_array_equal(
        region_growing(depth, flow, motion, alpha=0.3, radius=radius, tau_depth=0.04, tau_flow=0.1),
        expected,
    )


def test_rejects_mismatched_shapes() -> None:
    depth, flow, motion = blank_cues(10, 12)
    with pytest.raises(ValueError, match="flow"):
        region_growing(depth, flow[:, :, :1], motion)
    with pytest.raises(ValueError, match="depth"):
        region_growing(depth[:5], flow, motion)


def test_handles_a_street_sized_frame() -> None:
    depth, flow, motion = blank_cues(256, 512)
    motion[100:200, 50:250] = 0.9
    depth[100:200, 50:250] = 10.0
    flow[100:200, 50:250] = (4.0, 0.0)
    instances = region_growing(depth, flow, motion)
    assert instances.max() == 1 and np.count_nonzero(instances) == 100 * 200
