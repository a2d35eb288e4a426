"""VideoMask2Former inference (Cheng et al., 2021, "Mask2Former for Video Instance Segmentation").

This is the network VideoCutLER (Wang et al., 2023) trains class-agnostically on synthetic videos
made from CutLER masks; the VideoCUPS paper (Sec. 4) runs it on 30-frame clips as half of its
"DepthG + VideoCutLER" baseline. Pure PyTorch, CPU-friendly, inference only:

* backbone: ResNet-50 as detectron2 builds it (:class:`vpsbench.models.backbone.ResNet` with
  ``STRIDE_IN_1X1=False``: the stride sits in the 3×3 conv; frozen batch norm), ``res2``–``res5``;
* pixel decoder (``MSDeformAttnPixelDecoder``): ``res3``–``res5`` projected to ``conv_dim`` (1×1
  conv + GroupNorm), 6 multi-scale deformable-attention encoder layers (Zhu et al., 2021) with 2-D
  sine positions and a learned level embedding, then one FPN step adding ``res2`` (1×1 lateral +
  3×3 output conv, GroupNorm) and a 1×1 conv to the per-frame mask features at stride 4;
* transformer decoder (``VideoMultiScaleMaskedTransformerDecoder``): learned queries shared by the
  T frames of a clip; 9 layers = 3 rounds over the encoder's 1/32, 1/16, 1/8 maps, each layer
  masked cross-attention → self-attention → FFN (post-norm); memory positions are the 3-D sine
  encoding (x, y plus a time term); the attention mask of a layer is the previous prediction
  resized to the layer's scale, foreground = sigmoid ≥ 0.5, and a query whose mask is empty in
  every frame attends everywhere (Mask2Former's rule);
* heads: ``class_embed`` (K + 1 logits; K = 1 for VideoCutLER: object vs no-object) and a 3-layer
  MLP ``mask_embed`` whose dot product with each frame's mask features gives the mask logits.

Parameter names are those of the published detectron2 checkpoints (``backbone.stem.conv1.*``,
``backbone.res2.0.conv1.norm.running_var``, ``sem_seg_head.pixel_decoder.input_proj.0.0.*``,
``sem_seg_head.pixel_decoder.transformer.encoder.layers.0.self_attn.sampling_offsets.*``,
``sem_seg_head.pixel_decoder.adapter_1.*``, ``sem_seg_head.pixel_decoder.layer_1.*``,
``sem_seg_head.pixel_decoder.mask_features.*``,
``sem_seg_head.predictor.transformer_cross_attention_layers.0.multihead_attn.in_proj_weight``,
``sem_seg_head.predictor.query_feat.weight``, ``sem_seg_head.predictor.class_embed.weight``,
``sem_seg_head.predictor.mask_embed.layers.0.weight``, …), so :func:`load_checkpoint` reads
``videocutler_m2f_rn50.pth`` without renaming.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from vpsbench.cues.base import MissingWeightsError
from vpsbench.models.backbone import GROUP_NORM_GROUPS, NormConv2d, ResNet
from vpsbench.models.checkpoints import (
    CheckpointMismatchError,
    load_state_dict_checked,
    read_checkpoint_safely,
    tensor_state_dict,
)
from vpsbench.models.msdeform_attn import MSDeformAttn
from vpsbench.models.resize import resize_frame, shortest_edge_size

LabelMap = npt.NDArray[np.int32]

VIDEOCUTLER_WEIGHTS = (
    "https://drive.google.com/file/d/11TACB8tOaAc-eXBo_i2arR_7qgGSeXRg "
    "(videocutler_m2f_rn50.pth, linked from "
    "https://github.com/facebookresearch/CutLER/tree/main/videocutler)"
)
"""Where VideoCutLER's R50 VideoMask2Former checkpoint is published."""


@dataclass(frozen=True)
class VideoMask2FormerConfig:
    """Architecture and test-time input settings; defaults are VideoCutLER's published R50 model.

    Values from ``videocutler/configs/imagenet_video/video_mask2former_R50_cls_agnostic.yaml``
    (NUM_CLASSES 1, 100 queries, hidden 256, 8 heads, FFN 2048, DEC_LAYERS 10 = 9 layers + the
    prediction on the learned queries, 6 encoder layers, GN), Mask2Former's pixel decoder (its
    deformable encoder always uses FFN 1024 and 4 points), detectron2's R50 defaults and the
    Mask2Former pixel statistics (RGB, 0–255).
    """

    resnet_blocks: tuple[int, int, int, int] = (3, 4, 6, 3)
    stem_channels: int = 64
    res2_channels: int = 256
    conv_dim: int = 256
    mask_dim: int = 256
    encoder_layers: int = 6
    encoder_dim_feedforward: int = 1024
    encoder_points: int = 4
    hidden_dim: int = 256
    num_queries: int = 100
    num_heads: int = 8
    dim_feedforward: int = 2048
    decoder_layers: int = 9
    pre_norm: bool = False
    enforce_input_projection: bool = False
    num_classes: int = 1
    pixel_mean: tuple[float, float, float] = (123.675, 116.28, 103.53)
    pixel_std: tuple[float, float, float] = (58.395, 57.12, 57.375)
    size_divisibility: int = 32
    min_size_test: int | None = 360
    max_size_test: int = 1333

    @classmethod
    def tiny(cls) -> VideoMask2FormerConfig:
        """A few-thousand-parameter variant with the same structure, for tests."""
        return cls(
            resnet_blocks=(1, 1, 1, 1),
            stem_channels=8,
            res2_channels=16,
            conv_dim=32,
            mask_dim=32,
            encoder_layers=1,
            encoder_dim_feedforward=32,
            encoder_points=2,
            hidden_dim=32,
            num_queries=6,
            num_heads=2,
            dim_feedforward=32,
            decoder_layers=3,
            min_size_test=None,
        )

    def test_size(self, height: int, width: int) -> tuple[int, int]:
        """Network input size: shortest edge to ``min_size_test``, longest ≤ ``max_size_test``.

        detectron2's ``ResizeShortestEdge`` rule; ``min_size_test=None`` keeps the frame size.
        """
        if self.min_size_test is None:
            return height, width
        return shortest_edge_size(height, width, self.min_size_test, self.max_size_test)


# ---------------------------------------------------------------------------------------------
# Positional encodings (DETR's sine encoding, Carion et al. 2020; 3-D form of Mask2Former-VIS).


def _sine_features(coordinates: Tensor, num_feats: int, temperature: float = 10000.0) -> Tensor:
    """Interleaved sin/cos of ``coordinates[..., None] / temperature^(2⌊i/2⌋/num_feats)``."""
    index = torch.arange(num_feats, dtype=torch.float32, device=coordinates.device)
    frequencies = temperature ** (2 * torch.div(index, 2, rounding_mode="floor") / num_feats)
    phases = coordinates[..., None] / frequencies
    return torch.stack((phases[..., 0::2].sin(), phases[..., 1::2].cos()), dim=-1).flatten(-2)


def _normalized_positions(length: int, device: torch.device) -> Tensor:
    """Positions 1..length scaled to (0, 2π] (the ``normalize=True`` form, eps 1e-6)."""
    positions = torch.arange(1, length + 1, dtype=torch.float32, device=device)
    return positions / (length + 1e-6) * (2 * math.pi)


def sine_position_embedding_2d(
    height: int, width: int, num_feats: int, device: torch.device | None = None
) -> Tensor:
    """(2·num_feats, H, W) DETR sine encoding, normalised: first y channels, then x channels."""
    device = device or torch.device("cpu")
    y = _sine_features(_normalized_positions(height, device), num_feats)  # (H, F)
    x = _sine_features(_normalized_positions(width, device), num_feats)  # (W, F)
    pos_y = y[:, None, :].expand(height, width, num_feats)
    pos_x = x[None, :, :].expand(height, width, num_feats)
    return torch.cat((pos_y, pos_x), dim=-1).permute(2, 0, 1)


def sine_position_embedding_3d(
    frames: int, height: int, width: int, num_feats: int, device: torch.device | None = None
) -> Tensor:
    """(T, 2·num_feats, H, W): the 2-D encoding plus a time encoding over all 2·num_feats channels.

    Mask2Former-VIS's ``PositionEmbeddingSine3D``: time positions 1..T normalised like x and y,
    with frequencies over ``2·num_feats`` channels, added to the (y, x) concatenation.
    """
    device = device or torch.device("cpu")
    spatial = sine_position_embedding_2d(height, width, num_feats, device)
    temporal = _sine_features(_normalized_positions(frames, device), 2 * num_feats)  # (T, 2F)
    return spatial[None] + temporal[:, :, None, None]


# ---------------------------------------------------------------------------------------------
# Pixel decoder: deformable-attention encoder over res3–res5 + one FPN step to res2.


class DeformableEncoderLayer(nn.Module):
    """Deformable self-attention + FFN, post-norm (Deformable DETR's encoder layer)."""

    def __init__(
        self, d_model: int, d_ffn: int, n_levels: int, n_heads: int, n_points: int
    ) -> None:
        super().__init__()
        self.self_attn = MSDeformAttn(d_model, n_levels, n_heads, n_points)
        self.norm1 = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, d_ffn)
        self.linear2 = nn.Linear(d_ffn, d_model)
        self.norm2 = nn.LayerNorm(d_model)

    def forward(
        self,
        src: Tensor,
        pos: Tensor,
        reference_points: Tensor,
        spatial_shapes: Sequence[tuple[int, int]],
    ) -> Tensor:
        """One encoder layer on flattened multi-scale tokens (N, S, C)."""
        attended = self.self_attn(src + pos, reference_points, src, spatial_shapes)
        src = self.norm1(src + attended)
        output: Tensor = self.norm2(src + self.linear2(F.relu(self.linear1(src))))
        return output


class DeformableEncoder(nn.Module):
    """Stack of deformable encoder layers (``encoder.layers.{i}``)."""

    def __init__(self, layers: Sequence[DeformableEncoderLayer]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)

    @staticmethod
    def reference_points(
        spatial_shapes: Sequence[tuple[int, int]], batch: int, device: torch.device
    ) -> Tensor:
        """(N, S, levels, 2) normalised (x, y) pixel centres of every token, same for each level."""
        per_level = []
        for height, width in spatial_shapes:
            ys = (torch.arange(height, dtype=torch.float32, device=device) + 0.5) / height
            xs = (torch.arange(width, dtype=torch.float32, device=device) + 0.5) / width
            grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
            per_level.append(torch.stack((grid_x.reshape(-1), grid_y.reshape(-1)), dim=-1))
        points = torch.cat(per_level, dim=0)
        return points[None, :, None, :].expand(batch, -1, len(spatial_shapes), -1)

    def forward(
        self, src: Tensor, pos: Tensor, spatial_shapes: Sequence[tuple[int, int]]
    ) -> Tensor:
        """Encode tokens (N, S, C) with positions (N, S, C)."""
        reference = self.reference_points(spatial_shapes, src.shape[0], src.device)
        for layer in self.layers:
            src = layer(src, pos, reference, spatial_shapes)
        return src


class DeformableEncoderOnly(nn.Module):
    """Multi-scale encoder with a learned per-level embedding added to the positions."""

    def __init__(
        self, d_model: int, n_heads: int, n_layers: int, d_ffn: int, n_levels: int, n_points: int
    ) -> None:
        super().__init__()
        self.encoder = DeformableEncoder(
            [
                DeformableEncoderLayer(d_model, d_ffn, n_levels, n_heads, n_points)
                for _ in range(n_layers)
            ]
        )
        self.level_embed = nn.Parameter(torch.empty(n_levels, d_model))
        for parameter in self.parameters():
            if parameter.dim() > 1:
                nn.init.xavier_uniform_(parameter)
        for module in self.modules():
            if isinstance(module, MSDeformAttn):
                module.reset_parameters()
        nn.init.normal_(self.level_embed)

    def forward(self, sources: Sequence[Tensor], positions: Sequence[Tensor]) -> list[Tensor]:
        """Encode maps (N, C, h, w) per level; returns the encoded maps in the same layout."""
        shapes = [(int(source.shape[2]), int(source.shape[3])) for source in sources]
        tokens = torch.cat([source.flatten(2).transpose(1, 2) for source in sources], dim=1)
        pos = torch.cat(
            [
                position.flatten(2).transpose(1, 2) + self.level_embed[level].view(1, 1, -1)
                for level, position in enumerate(positions)
            ],
            dim=1,
        )
        memory = self.encoder(tokens, pos, shapes)
        batch, _, channels = memory.shape
        chunks = memory.split([height * width for height, width in shapes], dim=1)
        return [
            chunk.transpose(1, 2).reshape(batch, channels, height, width)
            for chunk, (height, width) in zip(chunks, shapes, strict=True)
        ]


class MSDeformAttnPixelDecoder(nn.Module):
    """Mask2Former's pixel decoder: deformable encoder on res3–res5, FPN step to res2 (stride 4)."""

    def __init__(self, config: VideoMask2FormerConfig, in_channels: Mapping[str, int]) -> None:
        super().__init__()
        conv_dim = config.conv_dim
        self.transformer_features = ("res5", "res4", "res3")  # low to high resolution
        self.input_proj = nn.ModuleList()
        for name in self.transformer_features:
            conv = nn.Conv2d(in_channels[name], conv_dim, kernel_size=1)
            nn.init.xavier_uniform_(conv.weight, gain=1)
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)
            self.input_proj.append(nn.Sequential(conv, nn.GroupNorm(GROUP_NORM_GROUPS, conv_dim)))
        self.transformer = DeformableEncoderOnly(
            conv_dim,
            config.num_heads,
            config.encoder_layers,
            config.encoder_dim_feedforward,
            len(self.transformer_features),
            config.encoder_points,
        )
        self.num_position_feats = conv_dim // 2
        self.mask_features = nn.Conv2d(conv_dim, config.mask_dim, kernel_size=1)
        # log2(8) - log2(4) = 1 extra FPN level: res2.
        self.adapter_1 = NormConv2d(in_channels["res2"], conv_dim, 1, norm="GN")
        self.layer_1 = NormConv2d(conv_dim, conv_dim, 3, padding=1, norm="GN", relu=True)
        for conv in (self.mask_features, self.adapter_1, self.layer_1):
            nn.init.kaiming_uniform_(conv.weight, a=1)  # detectron2's c2_xavier_fill
            if conv.bias is not None:
                nn.init.constant_(conv.bias, 0)

    def forward(self, features: Mapping[str, Tensor]) -> tuple[Tensor, list[Tensor]]:
        """Mask features (N, mask_dim, H/4, W/4) and the decoder's 3 scales (1/32, 1/16, 1/8)."""
        sources = []
        positions = []
        for projection, name in zip(self.input_proj, self.transformer_features, strict=True):
            x = features[name].float()
            sources.append(projection(x))
            height, width = int(x.shape[2]), int(x.shape[3])
            pos = sine_position_embedding_2d(height, width, self.num_position_feats, x.device)
            positions.append(pos[None].expand(x.shape[0], -1, -1, -1))
        encoded = self.transformer(sources, positions)
        lateral = self.adapter_1(features["res2"].float())
        top_down = F.interpolate(
            encoded[-1], size=lateral.shape[-2:], mode="bilinear", align_corners=False
        )
        finest = self.layer_1(lateral + top_down)
        return self.mask_features(finest), encoded


# ---------------------------------------------------------------------------------------------
# Transformer decoder with masked attention (Mask2Former), video form (queries shared over T).


class SelfAttentionLayer(nn.Module):
    """Query self-attention with residual and LayerNorm (post-norm unless ``pre_norm``)."""

    def __init__(self, d_model: int, n_heads: int, pre_norm: bool) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, n_heads)
        self.norm = nn.LayerNorm(d_model)
        self.pre_norm = pre_norm

    def forward(self, queries: Tensor, query_pos: Tensor) -> Tensor:
        """Queries (Q, N, C) attend to each other; positions added to queries and keys."""
        source = self.norm(queries) if self.pre_norm else queries
        with_pos = source + query_pos
        attended: Tensor = self.self_attn(with_pos, with_pos, value=source, need_weights=False)[0]
        return self._residual(queries, attended)

    def _residual(self, queries: Tensor, update: Tensor) -> Tensor:
        """Residual sum, normalised after it in the post-norm form."""
        if self.pre_norm:
            return queries + update
        normalized: Tensor = self.norm(queries + update)
        return normalized


class CrossAttentionLayer(nn.Module):
    """Masked cross-attention from queries to memory, residual and LayerNorm."""

    def __init__(self, d_model: int, n_heads: int, pre_norm: bool) -> None:
        super().__init__()
        self.multihead_attn = nn.MultiheadAttention(d_model, n_heads)
        self.norm = nn.LayerNorm(d_model)
        self.pre_norm = pre_norm

    def forward(
        self, queries: Tensor, memory: Tensor, attn_mask: Tensor, pos: Tensor, query_pos: Tensor
    ) -> Tensor:
        """Queries (Q, N, C) attend to memory (S, N, C) except where ``attn_mask`` is True."""
        source = self.norm(queries) if self.pre_norm else queries
        attended: Tensor = self.multihead_attn(
            query=source + query_pos,
            key=memory + pos,
            value=memory,
            attn_mask=attn_mask,
            need_weights=False,
        )[0]
        if self.pre_norm:
            return queries + attended
        normalized: Tensor = self.norm(queries + attended)
        return normalized


class FFNLayer(nn.Module):
    """Two-layer ReLU feed-forward block with residual and LayerNorm."""

    def __init__(self, d_model: int, dim_feedforward: int, pre_norm: bool) -> None:
        super().__init__()
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm = nn.LayerNorm(d_model)
        self.pre_norm = pre_norm

    def forward(self, queries: Tensor) -> Tensor:
        """Position-wise FFN on (Q, N, C)."""
        source = self.norm(queries) if self.pre_norm else queries
        update: Tensor = self.linear2(F.relu(self.linear1(source)))
        if self.pre_norm:
            return queries + update
        normalized: Tensor = self.norm(queries + update)
        return normalized


class MLP(nn.Module):
    """Multi-layer perceptron with ReLU between layers (``layers.{i}``)."""

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int) -> None:
        super().__init__()
        dims_in = [input_dim] + [hidden_dim] * (num_layers - 1)
        dims_out = [hidden_dim] * (num_layers - 1) + [output_dim]
        self.layers = nn.ModuleList(
            nn.Linear(d_in, d_out) for d_in, d_out in zip(dims_in, dims_out, strict=True)
        )

    def forward(self, x: Tensor) -> Tensor:
        """Apply the layers, ReLU after all but the last."""
        for index, layer in enumerate(self.layers):
            x = layer(x)
            if index < len(self.layers) - 1:
                x = F.relu(x)
        return x


def masked_attention_mask(
    mask_logits: Tensor, target_size: tuple[int, int], num_heads: int
) -> Tensor:
    """Mask2Former's attention mask from mask logits (Q, T, H, W): bool (heads, Q, T·h·w).

    The logits are resized (bilinear) to ``target_size``; a position is blocked (True) where the
    sigmoid is < 0.5. A query blocked everywhere (empty mask in every frame) is unblocked
    entirely, so it attends to the whole clip instead of nothing.
    """
    resized = F.interpolate(mask_logits, size=target_size, mode="bilinear", align_corners=False)
    blocked = (resized.sigmoid() < 0.5).flatten(1)
    blocked[blocked.all(dim=1)] = False
    return blocked[None].expand(num_heads, -1, -1)


class VideoMaskedTransformerDecoder(nn.Module):
    """Mask2Former-VIS decoder: one set of queries for the clip, masked attention over 3 scales."""

    def __init__(self, config: VideoMask2FormerConfig, in_channels: int) -> None:
        super().__init__()
        hidden = config.hidden_dim
        self.num_heads = config.num_heads
        self.num_levels = 3
        self.num_position_feats = hidden // 2
        self.transformer_self_attention_layers = nn.ModuleList(
            SelfAttentionLayer(hidden, config.num_heads, config.pre_norm)
            for _ in range(config.decoder_layers)
        )
        self.transformer_cross_attention_layers = nn.ModuleList(
            CrossAttentionLayer(hidden, config.num_heads, config.pre_norm)
            for _ in range(config.decoder_layers)
        )
        self.transformer_ffn_layers = nn.ModuleList(
            FFNLayer(hidden, config.dim_feedforward, config.pre_norm)
            for _ in range(config.decoder_layers)
        )
        for layer in self.modules():
            if isinstance(layer, SelfAttentionLayer | CrossAttentionLayer | FFNLayer):
                for parameter in layer.parameters():
                    if parameter.dim() > 1:
                        nn.init.xavier_uniform_(parameter)
        self.decoder_norm = nn.LayerNorm(hidden)
        self.query_feat = nn.Embedding(config.num_queries, hidden)
        self.query_embed = nn.Embedding(config.num_queries, hidden)
        self.level_embed = nn.Embedding(self.num_levels, hidden)
        self.input_proj = nn.ModuleList()
        for _ in range(self.num_levels):
            if in_channels != hidden or config.enforce_input_projection:
                projection = nn.Conv2d(in_channels, hidden, kernel_size=1)
                nn.init.kaiming_uniform_(projection.weight, a=1)
                if projection.bias is not None:
                    nn.init.zeros_(projection.bias)
                self.input_proj.append(projection)
            else:
                self.input_proj.append(nn.Identity())
        self.class_embed = nn.Linear(hidden, config.num_classes + 1)
        self.mask_embed = MLP(hidden, hidden, config.mask_dim, 3)

    def predict(
        self, queries: Tensor, mask_features: Tensor, target_size: tuple[int, int]
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Heads on queries (Q, 1, C): class logits (Q, K+1), masks (Q, T, H, W), next attn mask."""
        decoded = self.decoder_norm(queries)[:, 0]
        class_logits = self.class_embed(decoded)
        mask_logits = torch.einsum("qc,tchw->qthw", self.mask_embed(decoded), mask_features)
        attn_mask = masked_attention_mask(mask_logits, target_size, self.num_heads)
        return class_logits, mask_logits, attn_mask

    def forward(
        self, multi_scale: Sequence[Tensor], mask_features: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Decode one clip: maps (T, C, h, w) per scale, mask features (T, C, H, W).

        Returns the last layer's class logits (Q, K+1) and mask logits (Q, T, H, W).
        """
        frames = mask_features.shape[0]
        memories = []
        positions = []
        sizes = []
        for level in range(self.num_levels):
            x = multi_scale[level]
            height, width = int(x.shape[2]), int(x.shape[3])
            sizes.append((height, width))
            projected = self.input_proj[level](x) + self.level_embed.weight[level].view(1, -1, 1, 1)
            pos = sine_position_embedding_3d(
                frames, height, width, self.num_position_feats, x.device
            )
            # (T, C, h, w) -> (T·h·w, 1, C), time-major like the attention mask.
            memories.append(projected.permute(0, 2, 3, 1).reshape(-1, 1, projected.shape[1]))
            positions.append(pos.permute(0, 2, 3, 1).reshape(-1, 1, pos.shape[1]))
        query_pos = self.query_embed.weight[:, None]
        queries = self.query_feat.weight[:, None]
        class_logits, mask_logits, attn_mask = self.predict(queries, mask_features, sizes[0])
        for index, (cross, self_attention, ffn) in enumerate(
            zip(
                self.transformer_cross_attention_layers,
                self.transformer_self_attention_layers,
                self.transformer_ffn_layers,
                strict=True,
            )
        ):
            level = index % self.num_levels
            queries = cross(queries, memories[level], attn_mask, positions[level], query_pos)
            queries = self_attention(queries, query_pos)
            queries = ffn(queries)
            next_size = sizes[(index + 1) % self.num_levels]
            class_logits, mask_logits, attn_mask = self.predict(queries, mask_features, next_size)
        return class_logits, mask_logits


class MaskFormerHead(nn.Module):
    """``sem_seg_head``: the pixel decoder and the transformer decoder (``predictor``)."""

    def __init__(self, config: VideoMask2FormerConfig, in_channels: Mapping[str, int]) -> None:
        super().__init__()
        self.pixel_decoder = MSDeformAttnPixelDecoder(config, in_channels)
        self.predictor = VideoMaskedTransformerDecoder(config, config.conv_dim)

    def forward(self, features: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Class logits (Q, K+1) and mask logits (Q, T, H/4, W/4) of a clip's features."""
        mask_features, multi_scale = self.pixel_decoder(features)
        class_logits, mask_logits = self.predictor(multi_scale, mask_features)
        return class_logits, mask_logits


class VideoMask2Former(nn.Module):
    """VideoMask2Former (R50) for one clip; class-agnostic as VideoCutLER trains it."""

    pixel_mean: Tensor
    pixel_std: Tensor

    def __init__(self, config: VideoMask2FormerConfig | None = None) -> None:
        super().__init__()
        self.config = config or VideoMask2FormerConfig()
        self.backbone = ResNet(
            stem_channels=self.config.stem_channels,
            res2_channels=self.config.res2_channels,
            blocks_per_stage=self.config.resnet_blocks,
            stride_in_1x1=False,
            norm="FrozenBN",
        )
        self.sem_seg_head = MaskFormerHead(self.config, self.backbone.out_channels)
        mean = torch.tensor(self.config.pixel_mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(self.config.pixel_std, dtype=torch.float32).view(1, 3, 1, 1)
        self.register_buffer("pixel_mean", mean, persistent=False)
        self.register_buffer("pixel_std", std, persistent=False)
        self.eval()

    def padded_forward(self, clip: Tensor) -> tuple[Tensor, Tensor]:
        """Logits on the zero-padded canvas (sides multiples of ``size_divisibility``).

        ``clip`` is (T, 3, H, W) RGB in 0–255; it is normalised, then padded at the bottom and
        right (detectron2's ``ImageList``). Returns (Q, K+1) and (Q, T, H_pad/4, W_pad/4).
        """
        if clip.ndim != 4 or clip.shape[1] != 3:
            raise ValueError(f"clip must be (T, 3, H, W), got {tuple(clip.shape)}")
        images = (clip.to(self.pixel_mean) - self.pixel_mean) / self.pixel_std
        divisor = self.config.size_divisibility
        height, width = int(clip.shape[2]), int(clip.shape[3])
        pad_h = -height % divisor
        pad_w = -width % divisor
        if pad_h or pad_w:
            images = F.pad(images, (0, pad_w, 0, pad_h))
        # A contiguous NCHW batch as ImageList builds it: a channels-last view (frames stacked
        # from HWC arrays) runs other conv kernels, whose rounding the GroupNorms amplify.
        images = images.contiguous()
        class_logits, mask_logits = self.sem_seg_head(self.backbone(images))
        return class_logits, mask_logits

    def forward(self, clip: Tensor) -> tuple[Tensor, Tensor]:
        """Class logits (Q, K+1) and mask logits (Q, T, ⌈H/4⌉, ⌈W/4⌉) of a clip (T, 3, H, W)."""
        class_logits, mask_logits = self.padded_forward(clip)
        height, width = int(clip.shape[2]), int(clip.shape[3])
        return class_logits, mask_logits[..., : -(-height // 4), : -(-width // 4)]

    @torch.no_grad()
    def segment_clip(
        self,
        frames: Sequence[npt.NDArray[np.uint8]],
        score_threshold: float = 0.8,
        top_k: int = 10,
    ) -> list[LabelMap]:
        """Class-agnostic video instances of a clip: one int32 id map per frame (0 = background).

        Frames are RGB uint8 (H, W, 3), resized to the test size as VideoCutLER's test-time
        ``ResizeShortestEdge`` does (:func:`resize_frame`). Query q becomes id q + 1 in every
        frame. Defaults follow VideoCutLER: its inference keeps the top 10 queries
        (``VideoMaskFormer.inference_video``) and its demo (``demo.sh``) a 0.8 score threshold.
        """
        if not frames:
            return []
        shape = frames[0].shape
        for frame in frames:
            if frame.ndim != 3 or frame.shape[2] != 3 or frame.shape != shape:
                raise ValueError(f"frames must share one (H, W, 3) shape, got {frame.shape}")
        height, width = int(shape[0]), int(shape[1])
        input_size = self.config.test_size(height, width)
        if input_size != (height, width):
            frames = [resize_frame(frame, input_size) for frame in frames]
        clip = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float()
        class_logits, mask_logits = self.padded_forward(clip.to(self.pixel_mean.device))
        return instance_id_maps(
            class_logits, mask_logits, input_size, (height, width), score_threshold, top_k
        )


def instance_id_maps(
    class_logits: Tensor,
    padded_mask_logits: Tensor,
    input_size: tuple[int, int],
    output_size: tuple[int, int],
    score_threshold: float,
    top_k: int,
    mask_stride: int = 4,
) -> list[LabelMap]:
    """Per-frame int32 id maps from a clip's query predictions (VideoMaskFormer's inference).

    A query's score is its best foreground class probability (softmax over K + 1); the ``top_k``
    best queries with score ≥ ``score_threshold`` are kept. Masks are upsampled ×``mask_stride``
    to the padded canvas, cropped to ``input_size`` and resized to ``output_size`` (bilinear);
    a query covers a pixel where its logit is > 0. Where kept queries overlap, the pixel goes to
    the largest score × mask probability. Query q is written as id q + 1; uncovered pixels are 0.
    """
    height, width = output_size
    frames = int(padded_mask_logits.shape[1])
    scores = class_logits.softmax(-1)[:, :-1].max(dim=-1).values
    order = torch.argsort(scores, descending=True, stable=True)[: max(top_k, 0)]
    kept = order[scores[order] >= score_threshold]
    if kept.numel() == 0:
        return [np.zeros((height, width), dtype=np.int32) for _ in range(frames)]
    kept_scores = scores[kept].view(-1, 1, 1)
    ids = (kept + 1).to(torch.int64)
    padded_size = (
        int(padded_mask_logits.shape[2]) * mask_stride,
        int(padded_mask_logits.shape[3]) * mask_stride,
    )
    maps = []
    for t in range(frames):
        logits = F.interpolate(
            padded_mask_logits[kept, t][None],
            size=padded_size,
            mode="bilinear",
            align_corners=False,
        )[..., : input_size[0], : input_size[1]]
        if tuple(logits.shape[-2:]) != (height, width):
            logits = F.interpolate(logits, size=output_size, mode="bilinear", align_corners=False)
        logits = logits[0]
        weighted = kept_scores * logits.sigmoid() * (logits > 0)
        best_value, best_index = weighted.max(dim=0)
        frame_ids = torch.where(best_value > 0, ids[best_index], torch.zeros_like(best_index))
        maps.append(frame_ids.cpu().numpy().astype(np.int32))
    return maps


# ---------------------------------------------------------------------------------------------
# Checkpoints.


def _ignored_videocutler_key(key: str) -> bool:
    """Checkpoint entries that are not inference parameters (loss buffers, BN counters)."""
    return (
        key.startswith("criterion.")
        or key.endswith("num_batches_tracked")
        or key in {"pixel_mean", "pixel_std"}
    )


def load_checkpoint(model: VideoMask2Former, path: str | Path) -> None:
    """Load a VideoCutLER checkpoint: ``.pth`` (``{"model": …}``) or detectron2 ``.pkl`` (numpy).

    Loss buffers (``criterion.*``), BN counters and stored pixel statistics are skipped; any
    other missing, unexpected or misshaped key is one ``CheckpointMismatchError`` listing them
    all; an absent file is a ``MissingWeightsError`` naming where VideoCutLER's weights are.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError("VideoCutLER (VideoMask2Former R50)", path, VIDEOCUTLER_WEIGHTS)
    raw = read_checkpoint_safely(path)
    state = raw.get("model", raw) if isinstance(raw, Mapping) else raw
    if not isinstance(state, Mapping):
        raise CheckpointMismatchError(path, f"no state dict inside (a {type(state).__name__})")
    tensors = tensor_state_dict(state, path, _ignored_videocutler_key)
    load_state_dict_checked(model, tensors, path=path, strict=True)
