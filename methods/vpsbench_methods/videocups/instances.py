"""Class-agnostic instance pseudo-labels by motion and depth region growing (Sec. 3.1, Eq. 1).

Seeds are the pixels whose motion probability exceeds α (``m > α``). Two seed pixels ``x`` and
``y`` with ``‖x − y‖∞ ≤ r``, ``y ≠ x`` are merged when, normalised by ``x``,

    |d_x − d_y| / |d_x| < τ_d   and   ‖f_x − f_y‖₂ / ‖f_x‖₂ < τ_f          (Eq. 1)

and merging runs to convergence. Merging is transitive and symmetric (two regions that merge
become one), so the converged partition is the set of connected components of the graph whose
edges are the merges; it does not depend on the order in which pixels are visited.

**Symmetrisation.** Eq. 1 is asymmetric: it is normalised by the depth and flow of ``x``, the
pixel that grows. The paper grows from *every* seed ``x`` (in parallel), so each pair is tested
twice, once from each end, and either test merging it joins the two regions. Hence an edge
``{x, y}`` exists when Eq. 1 holds from ``x`` to ``y`` OR from ``y`` to ``x`` (each direction
with both conditions, depth and flow, normalised by the same pixel). Requiring both directions
would be stricter than the paper's procedure.

**Degenerate values** (no NaN arises, no warning is emitted): a relative difference between two
identical values is 0 (the limit of equal values), so two pixels with exactly the same flow
(e.g. both ``0``: an object moving with the camera) or the same depth (both ``+inf``: sky)
agree; otherwise the limits hold: a non-zero difference relative to a zero flow or depth is
infinite (no merge from that side), and a finite depth never agrees with an infinite one (the
relative difference is 1 or ∞ from either side). NaN depth, NaN or infinite flow, and NaN motion
(never a seed) agree with nothing. Flow differences below ~1e-162 px count as identical (their
square underflows). A seed that merges with nobody is an instance of one pixel (drop such specks
with ``min_area``).

Vectorised: the graph is built over the ``((2r + 1)² − 1) / 2`` offsets of one half of the
Chebyshev neighbourhood (each unordered pair once) by gathering the neighbours of the seed pixels
only, through an index image; components come from ``scipy.sparse.csgraph``. Cost and memory are
proportional to the number of seeds times the neighbourhood, not to the image size.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import sparse
from scipy.sparse import csgraph

InstanceMap = npt.NDArray[np.int32]
FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.int64]

# Pending edges are folded into components once this many accumulate, bounding memory.
_EDGES_PER_FOLD = 4_000_000


def region_growing(
    depth: npt.NDArray[np.floating],
    flow: npt.NDArray[np.floating],
    motion: npt.NDArray[np.floating],
    *,
    alpha: float = 0.15,
    radius: int = 8,
    tau_depth: float = 0.02,
    tau_flow: float = 0.04,
    min_area: int = 0,
    min_flow_norm: float = 0.0,
) -> InstanceMap:
    """Instance ids 1..l (0 = no instance) of motion-seeded regions merged by Eq. 1 (Sec. 3.1).

    Defaults are the paper's (α = 0.15, Sec. 3.1; τ_d = 0.02, τ_f = 0.04, r = 8, Sec. 4).
    ``min_area`` (not in the paper) removes instances of fewer pixels; ``min_flow_norm`` (not in
    the paper, 0 = Eq. 1 exactly) floors ‖f_x‖ in the flow denominator against flow noise on
    near-static pixels. Ids follow the raster order of each instance's first pixel.
    """
    depth_values, flow_values, motion_values = _checked_inputs(depth, flow, motion, radius)
    height, width = motion_values.shape
    instances = np.zeros((height, width), dtype=np.int32)
    with np.errstate(invalid="ignore"):
        seed_rows, seed_cols = np.nonzero(motion_values > alpha)
    seed_count = seed_rows.size
    if seed_count == 0:
        return instances
    seed_attributes = _seed_attributes(
        depth_values[seed_rows, seed_cols],
        flow_values[seed_rows, seed_cols],
        tau_depth,
        tau_flow,
        min_flow_norm,
    )

    padded_width = width + 2 * radius
    seed_index = np.full((height + 2 * radius, padded_width), -1, dtype=np.int64)
    seed_index[seed_rows + radius, seed_cols + radius] = np.arange(seed_count)
    flat_seed_index = seed_index.ravel()
    seed_positions = (seed_rows + radius) * padded_width + (seed_cols + radius)

    components = np.arange(seed_count, dtype=np.int64)
    pending: list[tuple[IndexArray, IndexArray]] = []
    pending_count = 0
    for row_offset, col_offset in half_chebyshev_offsets(radius):
        neighbours = flat_seed_index[seed_positions + row_offset * padded_width + col_offset]
        sources = np.flatnonzero(neighbours >= 0)
        targets = neighbours[sources]
        merged = _merge_criterion(seed_attributes, sources, targets)
        pending.append((sources[merged], targets[merged]))
        pending_count += int(np.count_nonzero(merged))
        if pending_count > _EDGES_PER_FOLD:
            components = _fold_components(components, pending)
            pending, pending_count = [], 0
    components = _fold_components(components, pending)

    instance_ids = _raster_ordered_ids(components, min_area)
    instances[seed_rows, seed_cols] = instance_ids
    return instances


def half_chebyshev_offsets(radius: int) -> list[tuple[int, int]]:
    """One offset of each ± pair in the Chebyshev ball of ``radius`` (each pixel pair once)."""
    return [
        (row, col)
        for row in range(0, radius + 1)
        for col in range(-radius, radius + 1)
        if row > 0 or col > 0
    ]


def _checked_inputs(
    depth: npt.NDArray[np.floating],
    flow: npt.NDArray[np.floating],
    motion: npt.NDArray[np.floating],
    radius: int,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Float64 copies of the cues after checking their shapes (depth/motion (H,W), flow (H,W,2))."""
    motion_values = np.asarray(motion, dtype=np.float64)
    depth_values = np.asarray(depth, dtype=np.float64)
    flow_values = np.asarray(flow, dtype=np.float64)
    if motion_values.ndim != 2:
        raise ValueError(f"motion must be (H, W), got shape {motion_values.shape}")
    if depth_values.shape != motion_values.shape:
        raise ValueError(f"depth {depth_values.shape} and motion {motion_values.shape} differ")
    if flow_values.shape != (*motion_values.shape, 2):
        raise ValueError(f"flow must be (H, W, 2) = {(*motion_values.shape, 2)}, got {flow.shape}")
    if radius < 0:
        raise ValueError(f"radius must be ≥ 0, got {radius}")
    return depth_values, flow_values, motion_values


def _seed_attributes(
    seed_depth: FloatArray,
    seed_flow: FloatArray,
    tau_depth: float,
    tau_flow: float,
    min_flow_norm: float,
) -> FloatArray:
    """Per seed (depth, flow x, flow y, depth tolerance, squared flow tolerance) for Eq. 1.

    A zero tolerance becomes the smallest positive double, so ``gap < tolerance`` holds exactly
    for identical values; an infinite depth becomes ±max-double with that tolerance, so only an
    equally infinite depth agrees with it (both at infinity) and ``inf − inf`` never occurs.
    """
    smallest = np.nextafter(0.0, 1.0)
    infinite_depth = np.isinf(seed_depth)
    depth = np.where(infinite_depth, np.sign(seed_depth) * np.finfo(np.float64).max, seed_depth)
    depth_tolerance = np.where(infinite_depth, smallest, tau_depth * np.abs(depth))
    with np.errstate(over="ignore", invalid="ignore"):
        flow_norm = np.maximum(np.hypot(seed_flow[:, 0], seed_flow[:, 1]), min_flow_norm)
        flow_tolerance_squared = (tau_flow * flow_norm) ** 2
    attributes = np.stack(
        [
            depth,
            seed_flow[:, 0],
            seed_flow[:, 1],
            np.maximum(depth_tolerance, smallest),
            np.maximum(flow_tolerance_squared, smallest),
        ],
        axis=1,
    )
    return np.ascontiguousarray(attributes)


def _merge_criterion(
    seed_attributes: FloatArray, sources: IndexArray, targets: IndexArray
) -> npt.NDArray[np.bool_]:
    """Eq. 1 from the source OR from the target (see the module's symmetrisation note)."""
    source = seed_attributes.take(sources, axis=0)
    target = seed_attributes.take(targets, axis=0)
    with np.errstate(invalid="ignore", over="ignore"):
        depth_gap = np.abs(source[:, 0] - target[:, 0])
        flow_gap_squared = (source[:, 1] - target[:, 1]) ** 2 + (source[:, 2] - target[:, 2]) ** 2
        from_source = (depth_gap < source[:, 3]) & (flow_gap_squared < source[:, 4])
        from_target = (depth_gap < target[:, 3]) & (flow_gap_squared < target[:, 4])
    return np.asarray(from_source | from_target)


def _fold_components(
    components: IndexArray, pending: list[tuple[IndexArray, IndexArray]]
) -> IndexArray:
    """Component label of every seed after adding the pending merge edges (union of regions)."""
    count = components.size
    _, first_member, member_of = np.unique(components, return_index=True, return_inverse=True)
    representative = first_member[member_of.ravel()]
    sources = np.concatenate([np.arange(count), *(s for s, _ in pending)])
    targets = np.concatenate([representative, *(t for _, t in pending)])
    graph = sparse.coo_matrix(
        (np.ones(sources.size, dtype=np.int8), (sources, targets)), shape=(count, count)
    ).tocsr()
    _, labels = csgraph.connected_components(graph, directed=False)
    return np.asarray(labels, dtype=np.int64)


def _raster_ordered_ids(components: IndexArray, min_area: int) -> npt.NDArray[np.int32]:
    """Ids 1..l per seed (0 for components below ``min_area``), in order of first seed."""
    labels, first_seed, inverse, areas = np.unique(
        components, return_index=True, return_inverse=True, return_counts=True
    )
    kept = areas >= max(min_area, 1)
    order = np.argsort(first_seed, kind="stable")
    ids = np.zeros(labels.size, dtype=np.int32)
    kept_in_order = order[kept[order]]
    ids[kept_in_order] = np.arange(1, kept_in_order.size + 1, dtype=np.int32)
    return ids[inverse.ravel()]
