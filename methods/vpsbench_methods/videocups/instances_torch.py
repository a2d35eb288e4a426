"""Region growing (Eq. 1) in torch, so that it can run on a GPU: the same instances as numpy.

:func:`vpsbench_methods.videocups.instances.region_growing` builds the merge graph over half of the
Chebyshev neighbourhood and takes its connected components with scipy. Here the neighbour
gathers and the Eq. 1 tests (in float64, the same operations) run on ``device``, and the
components come from min-label propagation with pointer jumping (every seed ends labelled with
the smallest seed index of its component). The partition is the same graph's, so the raster-
ordered ids are identical; tests compare the two on the CPU.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch

from vpsbench_methods.videocups.instances import (
    InstanceMap,
    _checked_inputs,
    _raster_ordered_ids,
    _seed_attributes,
    half_chebyshev_offsets,
)


def _merge_edges(
    attributes: torch.Tensor,
    flat_seed_index: torch.Tensor,
    seed_positions: torch.Tensor,
    padded_width: int,
    radius: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(sources, targets) of every pair of seeds that Eq. 1 merges, from either end."""
    all_sources, all_targets = [], []
    for row_offset, col_offset in half_chebyshev_offsets(radius):
        neighbours = flat_seed_index[seed_positions + row_offset * padded_width + col_offset]
        sources = torch.nonzero(neighbours >= 0).flatten()
        targets = neighbours[sources]
        source = attributes[sources]
        target = attributes[targets]
        depth_gap = torch.abs(source[:, 0] - target[:, 0])
        flow_x = source[:, 1] - target[:, 1]
        flow_y = source[:, 2] - target[:, 2]
        flow_gap_squared = flow_x * flow_x + flow_y * flow_y
        from_source = (depth_gap < source[:, 3]) & (flow_gap_squared < source[:, 4])
        from_target = (depth_gap < target[:, 3]) & (flow_gap_squared < target[:, 4])
        merged = from_source | from_target
        all_sources.append(sources[merged])
        all_targets.append(targets[merged])
    return torch.cat(all_sources), torch.cat(all_targets)


def minimum_labels(count: int, sources: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per node, the smallest node index of its connected component (undirected edges)."""
    labels = torch.arange(count, device=sources.device)
    while True:
        lowest = torch.minimum(labels[sources], labels[targets])
        updated = labels.scatter_reduce(0, sources, lowest, reduce="amin")
        updated = updated.scatter_reduce(0, targets, lowest, reduce="amin")
        while True:  # pointer jumping: follow labels to their own labels
            jumped = updated[updated]
            if torch.equal(jumped, updated):
                break
            updated = jumped
        if torch.equal(updated, labels):
            return labels
        labels = updated


def region_growing_torch(
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
    device: str | torch.device = "cpu",
) -> InstanceMap:
    """:func:`~vpsbench_methods.videocups.instances.region_growing` with the pair tests on
    ``device``."""
    depth_values, flow_values, motion_values = _checked_inputs(depth, flow, motion, radius)
    height, width = motion_values.shape
    instances = np.zeros((height, width), dtype=np.int32)
    with np.errstate(invalid="ignore"):
        seed_rows, seed_cols = np.nonzero(motion_values > alpha)
    seed_count = seed_rows.size
    if seed_count == 0:
        return instances
    attributes = _seed_attributes(
        depth_values[seed_rows, seed_cols],
        flow_values[seed_rows, seed_cols],
        tau_depth,
        tau_flow,
        min_flow_norm,
    )
    target = torch.device(device)
    padded_width = width + 2 * radius
    seed_index = np.full((height + 2 * radius, padded_width), -1, dtype=np.int64)
    seed_index[seed_rows + radius, seed_cols + radius] = np.arange(seed_count)
    positions = (seed_rows + radius) * padded_width + (seed_cols + radius)
    sources, targets = _merge_edges(
        torch.from_numpy(attributes).to(target),
        torch.from_numpy(seed_index.ravel()).to(target),
        torch.from_numpy(positions.astype(np.int64)).to(target),
        padded_width,
        radius,
    )
    components = minimum_labels(seed_count, sources, targets).cpu().numpy().astype(np.int64)
    instances[seed_rows, seed_cols] = _raster_ordered_ids(components, min_area)
    return instances
