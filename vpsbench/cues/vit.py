"""Vision Transformer (Dosovitskiy et al., ICLR 2021) as DINO trains it (Caron et al., ICCV 2021).

Pure PyTorch, with the parameter names of DINO's ``vision_transformer.py`` (which timm shares):
``patch_embed.proj``, ``cls_token``, ``pos_embed``, ``blocks.{i}.norm1``, ``blocks.{i}.attn.qkv``,
``blocks.{i}.attn.proj``, ``blocks.{i}.norm2``, ``blocks.{i}.mlp.fc1``, ``blocks.{i}.mlp.fc2``,
``norm``. Pre-norm blocks, LayerNorm ε = 1e-6, GELU MLP of ratio 4, biased qkv. The learned
position embedding of the 224-pixel pre-training grid is resized bicubically to any input grid the
way DINO does it (``interpolate_pos_encoding``: scale factors ``(grid + 0.1) / side``), so
non-square and larger inputs work. ``last_self_attention`` gives the last block's attention maps
(DINO's ``get_last_selfattention``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F  # noqa: N812 - the PyTorch convention
from torch import nn

from vpsbench.cues.checkpoints import StateDict, tensors_only
from vpsbench.errors import VpsbenchError

Facet = Literal["tokens", "keys"]
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ViTConfig:
    """Width, depth, heads and patch size of one ViT; ``pretrain_size`` sets the stored grid."""

    embed_dim: int
    depth: int
    num_heads: int
    patch_size: int
    mlp_ratio: float = 4.0
    pretrain_size: int = 224


VIT_CONFIGS: dict[str, ViTConfig] = {
    "vits8": ViTConfig(embed_dim=384, depth=12, num_heads=6, patch_size=8),
    "vits16": ViTConfig(embed_dim=384, depth=12, num_heads=6, patch_size=16),
    "vitb8": ViTConfig(embed_dim=768, depth=12, num_heads=12, patch_size=8),
    "vitb16": ViTConfig(embed_dim=768, depth=12, num_heads=12, patch_size=16),
}
_ARCH_ALIASES = {
    "vit_small_patch8_224": "vits8",
    "vit_small_patch16_224": "vits16",
    "vit_base_patch8_224": "vitb8",
    "vit_base_patch16_224": "vitb16",
    "dino_vits8": "vits8",
    "dino_vits16": "vits16",
    "dino_vitb8": "vitb8",
    "dino_vitb16": "vitb16",
}


def canonical_arch(name: str) -> str:
    """``vits8``/``vits16``/``vitb8``/``vitb16`` from that or a timm / torch-hub DINO name."""
    key = name.strip().lower().removesuffix(".dino")
    key = _ARCH_ALIASES.get(key, key)
    if key not in VIT_CONFIGS:
        known = ", ".join(VIT_CONFIGS)
        raise VpsbenchError(f"unknown ViT architecture {name!r}; known: {known}")
    return key


class PatchEmbed(nn.Module):
    """Non-overlapping patches projected by a strided convolution."""

    def __init__(self, patch_size: int, embed_dim: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Tokens (B, h·w, D) of images (B, 3, h·p, w·p), row-major over the grid."""
        patches: torch.Tensor = self.proj(images)
        return patches.flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention with one fused, biased qkv projection."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Attention output (B, N, D) and the keys (B, N, D), heads concatenated."""
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, dim // self.num_heads)
        query, key, value = qkv.permute(2, 0, 3, 1, 4)  # each (B, heads, N, head_dim)
        attended = F.scaled_dot_product_attention(query, key, value)
        merged = attended.transpose(1, 2).reshape(batch, tokens, dim)
        keys = key.transpose(1, 2).reshape(batch, tokens, dim)
        out: torch.Tensor = self.proj(merged)
        return out, keys

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """Softmax attention (B, heads, N, N) of every token over all tokens (DINO's maps)."""
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, dim // self.num_heads)
        query, key, _ = qkv.permute(2, 0, 3, 1, 4)
        scores = query @ key.transpose(-2, -1) * (dim // self.num_heads) ** -0.5
        attention: torch.Tensor = scores.softmax(dim=-1)
        return attention


class Mlp(nn.Module):
    """Two-layer GELU MLP of a transformer block."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.fc2(self.act(self.fc1(x)))
        return out


class Block(nn.Module):
    """Pre-norm transformer block: x + Attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        dim = config.embed_dim
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, config.num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * config.mlp_ratio))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Block output and the keys of its attention."""
        attended, keys = self.attn(self.norm1(x))
        x = x + attended
        return x + self.mlp(self.norm2(x)), keys


class VisionTransformer(nn.Module):
    """DINO's ViT backbone without a head; returns dense patch tokens or keys."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.config = config
        dim = config.embed_dim
        side = config.pretrain_size // config.patch_size
        self.patch_embed = PatchEmbed(config.patch_size, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + side * side, dim))
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    @property
    def patch_size(self) -> int:
        """Pixels per patch side (the feature stride at the input resolution)."""
        return self.config.patch_size

    def position_embedding(self, grid_height: int, grid_width: int) -> torch.Tensor:
        """Position embedding (1, 1 + h·w, D) for a h×w patch grid (bicubic, as in DINO)."""
        stored = self.pos_embed.shape[1] - 1
        if grid_height * grid_width == stored and grid_height == grid_width:
            return self.pos_embed
        side = math.isqrt(stored)
        if side * side != stored:
            raise VpsbenchError(f"position embedding of {stored} patches is not a square grid")
        dim = self.pos_embed.shape[-1]
        grid = self.pos_embed[:, 1:].float().reshape(1, side, side, dim).permute(0, 3, 1, 2)
        # DINO adds 0.1 to the target grid so that floor(side * scale) lands on it exactly.
        scale = ((grid_height + 0.1) / side, (grid_width + 0.1) / side)
        resized = F.interpolate(grid, scale_factor=scale, mode="bicubic", align_corners=False)
        if tuple(resized.shape[-2:]) != (grid_height, grid_width):  # pragma: no cover - guard
            raise VpsbenchError(
                f"cannot resize the position embedding to {grid_height}x{grid_width}"
            )
        patches = resized.permute(0, 2, 3, 1).reshape(1, grid_height * grid_width, dim)
        return torch.cat([self.pos_embed[:, :1], patches.to(self.pos_embed.dtype)], dim=1)

    def _embed(self, images: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        """Class + patch tokens with position embedding (B, 1 + h·w, D), and the grid h, w."""
        batch, _, height, width = images.shape
        patch = self.config.patch_size
        if height % patch or width % patch:
            raise VpsbenchError(f"input {height}x{width} is not a multiple of the patch {patch}")
        grid_height, grid_width = height // patch, width // patch
        tokens = self.patch_embed(images)
        tokens = torch.cat([self.cls_token.expand(batch, -1, -1), tokens], dim=1)
        return tokens + self.position_embedding(grid_height, grid_width), grid_height, grid_width

    def last_self_attention(self, images: torch.Tensor) -> torch.Tensor:
        """Last block's attention (B, heads, 1 + h·w, 1 + h·w), class token first, as in DINO."""
        x, _, _ = self._embed(images)
        for block in self.blocks[:-1]:
            x, _ = block(x)
        last = self.blocks[-1]
        assert isinstance(last, Block)
        return last.attn.weights(last.norm1(x))

    def forward(self, images: torch.Tensor, facet: Facet = "tokens") -> torch.Tensor:
        """Last-layer patch tokens (after the final norm) or last-block keys, as (B, D, h, w)."""
        batch = images.shape[0]
        x, grid_height, grid_width = self._embed(images)
        keys = x
        for block in self.blocks:
            x, keys = block(x)
        dense = self.norm(x) if facet == "tokens" else keys
        return dense[:, 1:].transpose(1, 2).reshape(batch, -1, grid_height, grid_width)


def canonical_vit_state(entries: Mapping[str, Any]) -> StateDict:
    """Backbone weights of a DINO (backbone or full, teacher used) or timm checkpoint; no heads."""
    for wrapper in ("teacher", "state_dict", "model"):
        inner = entries.get(wrapper)
        if isinstance(inner, Mapping):
            entries = inner
            break
    state: StateDict = {}
    for key, value in tensors_only(entries).items():
        for prefix in ("module.", "backbone."):
            key = key.removeprefix(prefix)
        if key.startswith("head.") or key.startswith("head_"):
            continue
        state[key] = value
    return state


def infer_arch(state: Mapping[str, torch.Tensor]) -> str | None:
    """The architecture whose patch size and width match ``patch_embed.proj.weight``, if any."""
    weight = state.get("patch_embed.proj.weight")
    if weight is None or weight.ndim != 4:
        return None
    for name, config in VIT_CONFIGS.items():
        if (weight.shape[0], weight.shape[-1]) == (config.embed_dim, config.patch_size):
            return name
    return None
