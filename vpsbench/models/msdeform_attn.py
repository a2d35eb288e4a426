"""Multi-scale deformable attention (Zhu et al., Deformable DETR, ICLR 2021) in pure PyTorch.

Each query attends to ``n_points`` sampled locations per head and per feature level, placed at
learned offsets around its reference point; the sampled values (bilinear, via
``torch.nn.functional.grid_sample``) are averaged with softmax-normalised learned weights. This is
the formulation of the paper's pure-PyTorch reference path (the CUDA kernel computes the same
sum); Mask2Former's pixel decoder uses it as its encoder's self-attention. Parameter names follow
the published checkpoints (``sampling_offsets``, ``attention_weights``, ``value_proj``,
``output_proj``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

SpatialShapes = Sequence[tuple[int, int]]


def multi_scale_deformable_attention(
    value: Tensor,
    spatial_shapes: SpatialShapes,
    sampling_locations: Tensor,
    attention_weights: Tensor,
) -> Tensor:
    """Weighted sum of bilinear samples of ``value`` at ``sampling_locations`` (Deformable DETR).

    Shapes: ``value`` (N, S, heads, head_dim) with S = Σ h·w over the levels (flattened row-major,
    level after level); ``sampling_locations`` (N, Lq, heads, levels, points, 2) as (x, y) in
    [0, 1] of each level's extent (0 and 1 are the outer pixel borders, so pixel centres sit at
    (i + 0.5) / size); ``attention_weights`` (N, Lq, heads, levels, points). Locations outside
    the map sample zeros. Returns (N, Lq, heads · head_dim).
    """
    batch, _, heads, head_dim = value.shape
    _, num_queries, _, levels, points, _ = sampling_locations.shape
    if len(spatial_shapes) != levels:
        raise ValueError(f"{len(spatial_shapes)} spatial shapes for {levels} sampling levels")
    sizes = [height * width for height, width in spatial_shapes]
    if sum(sizes) != value.shape[1]:
        raise ValueError(f"value has {value.shape[1]} positions, spatial shapes give {sum(sizes)}")
    value_per_level = torch.split(value, sizes, dim=1)
    # grid_sample expects coordinates in [-1, 1] with align_corners=False: -1 and 1 are the borders.
    grids = 2.0 * sampling_locations - 1.0
    samples_per_level = []
    for level, (height, width) in enumerate(spatial_shapes):
        # (N, h·w, heads, d) -> (N·heads, d, h, w)
        level_value = (
            value_per_level[level]
            .flatten(2)
            .transpose(1, 2)
            .reshape(batch * heads, head_dim, height, width)
        )
        # (N, Lq, heads, points, 2) -> (N·heads, Lq, points, 2)
        level_grid = grids[:, :, :, level].transpose(1, 2).flatten(0, 1)
        samples_per_level.append(
            F.grid_sample(
                level_value, level_grid, mode="bilinear", padding_mode="zeros", align_corners=False
            )
        )  # (N·heads, d, Lq, points)
    # (N, Lq, heads, levels, points) -> (N·heads, 1, Lq, levels·points)
    weights = attention_weights.transpose(1, 2).reshape(
        batch * heads, 1, num_queries, levels * points
    )
    stacked = torch.stack(samples_per_level, dim=-2).flatten(-2)  # (N·heads, d, Lq, levels·points)
    output = (stacked * weights).sum(-1).view(batch, heads * head_dim, num_queries)
    return output.transpose(1, 2).contiguous()


class MSDeformAttn(nn.Module):
    """Multi-scale deformable attention module with Deformable DETR's parameterisation."""

    def __init__(
        self, d_model: int = 256, n_levels: int = 4, n_heads: int = 8, n_points: int = 4
    ) -> None:
        super().__init__()
        if d_model % n_heads != 0:
            raise ValueError(f"d_model {d_model} is not divisible by n_heads {n_heads}")
        self.d_model = d_model
        self.n_levels = n_levels
        self.n_heads = n_heads
        self.n_points = n_points
        self.sampling_offsets = nn.Linear(d_model, n_heads * n_levels * n_points * 2)
        self.attention_weights = nn.Linear(d_model, n_heads * n_levels * n_points)
        self.value_proj = nn.Linear(d_model, d_model)
        self.output_proj = nn.Linear(d_model, d_model)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Deformable DETR's init: point k of head h starts k+1 steps along angle 2πh/heads."""
        nn.init.constant_(self.sampling_offsets.weight, 0.0)
        angles = torch.arange(self.n_heads, dtype=torch.float32) * (2.0 * math.pi / self.n_heads)
        directions = torch.stack([angles.cos(), angles.sin()], dim=-1)
        directions = directions / directions.abs().max(dim=-1, keepdim=True).values
        offsets = directions.view(self.n_heads, 1, 1, 2).repeat(1, self.n_levels, self.n_points, 1)
        steps = torch.arange(1, self.n_points + 1, dtype=torch.float32).view(1, 1, -1, 1)
        with torch.no_grad():
            self.sampling_offsets.bias.copy_((offsets * steps).flatten())
        nn.init.constant_(self.attention_weights.weight, 0.0)
        nn.init.constant_(self.attention_weights.bias, 0.0)
        nn.init.xavier_uniform_(self.value_proj.weight)
        nn.init.constant_(self.value_proj.bias, 0.0)
        nn.init.xavier_uniform_(self.output_proj.weight)
        nn.init.constant_(self.output_proj.bias, 0.0)

    def forward(
        self,
        query: Tensor,
        reference_points: Tensor,
        input_flatten: Tensor,
        spatial_shapes: SpatialShapes,
    ) -> Tensor:
        """Attend from ``query`` (N, Lq, C) around ``reference_points`` (N, Lq, levels, 2) ∈ [0, 1].

        ``input_flatten`` (N, S, C) holds the levels' features flattened and concatenated in the
        order of ``spatial_shapes`` ((h, w) per level). Offsets are predicted in pixels of each
        level and normalised by its (w, h), as in Deformable DETR.
        """
        batch, num_queries, _ = query.shape
        value = self.value_proj(input_flatten).view(
            batch, input_flatten.shape[1], self.n_heads, self.d_model // self.n_heads
        )
        offsets = self.sampling_offsets(query).view(
            batch, num_queries, self.n_heads, self.n_levels, self.n_points, 2
        )
        weights = self.attention_weights(query).view(
            batch, num_queries, self.n_heads, self.n_levels * self.n_points
        )
        weights = weights.softmax(-1).view(
            batch, num_queries, self.n_heads, self.n_levels, self.n_points
        )
        normalizer = torch.tensor(
            [[width, height] for height, width in spatial_shapes],
            dtype=query.dtype,
            device=query.device,
        )
        locations = (
            reference_points[:, :, None, :, None, :]
            + offsets / normalizer[None, None, None, :, None, :]
        )
        output = multi_scale_deformable_attention(value, spatial_shapes, locations, weights)
        projected: Tensor = self.output_proj(output)
        return projected
