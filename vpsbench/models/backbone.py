"""ResNet-50 (He et al., 2016) + FPN (Lin et al., 2017) with detectron2's module names.

Parameter names follow detectron2's state dicts so that its checkpoints load as they are:
``backbone.bottom_up.stem.conv1.{weight, norm.*}``, ``backbone.bottom_up.res{2..5}.{i}.conv{1,2,3}``
and ``.shortcut`` (each convolution carries its normalisation as a ``.norm`` child),
``backbone.fpn_lateral{2..5}`` and ``backbone.fpn_output{2..5}``.

Checkpoint batch norms are inference-only: ``"FrozenBN"``, ``"BN"`` and ``"SyncBN"`` are an affine
map from stored statistics (:class:`FrozenBatchNorm2d`, the same arithmetic as ``BatchNorm2d`` in
eval mode). ``"TrainBN"`` is a trainable ``nn.BatchNorm2d`` (same state-dict keys plus
``num_batches_tracked``) for training. ``"GN"`` is ``GroupNorm(32, C)``, or
``GroupNorm(gcd(32, C), C)`` when ``C`` is not a multiple of 32 (narrow test networks), and ``""``
means no norm (the convolution then has a bias).

Striding: detectron2's default (``RESNETS.STRIDE_IN_1X1 = True``, the original MSRA ResNet)
puts the stride-2 of a stage's first block on the 1×1 ``conv1``; torchvision-style weights such
as the DINO ResNet-50 used by U2Seg and CUPS put it on the 3×3 ``conv2``
(``STRIDE_IN_1X1 = False``). :class:`ResNet` takes either via ``stride_in_1x1``.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

NormName = Literal["", "FrozenBN", "BN", "SyncBN", "GN", "TrainBN"]
RESNET50_BLOCKS = (3, 4, 6, 3)
GROUP_NORM_GROUPS = 32


class FrozenBatchNorm2d(nn.Module):
    """Batch norm with fixed statistics and affine parameters (buffers, as in detectron2)."""

    weight: Tensor
    bias: Tensor
    running_mean: Tensor
    running_var: Tensor

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x: Tensor) -> Tensor:
        """``(x - mean) / sqrt(var + eps) * weight + bias`` per channel."""
        # PyTorch's fused inference batch norm, as detectron2's FrozenBatchNorm2d runs it without
        # gradients: the same rounding as the published models (x * scale + shift, or folding
        # the scale into the convolution, drifts by ~1e-4 over a ResNet-50 + FPN).
        return F.batch_norm(
            x,
            self.running_mean.to(x.dtype),
            self.running_var.to(x.dtype),
            self.weight.to(x.dtype),
            self.bias.to(x.dtype),
            training=False,
            eps=self.eps,
        )


def make_norm(norm: NormName, channels: int) -> nn.Module | None:
    """The normalisation module for ``norm``, or None for no norm (see the module docstring)."""
    if norm == "":
        return None
    if norm in ("FrozenBN", "BN", "SyncBN"):
        return FrozenBatchNorm2d(channels)
    if norm == "TrainBN":
        return nn.BatchNorm2d(channels)
    if norm == "GN":
        return nn.GroupNorm(group_norm_groups(channels), channels)
    raise ValueError(f"unknown norm {norm!r}")


def group_norm_groups(channels: int) -> int:
    """GroupNorm groups: 32 for multiples of 32 (detectron2), else ``gcd(32, channels)``."""
    return math.gcd(GROUP_NORM_GROUPS, channels)


class NormConv2d(nn.Conv2d):
    """A convolution with an optional ``norm`` child and ReLU (detectron2's ``Conv2d`` layout)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        norm: NormName = "",
        bias: bool | None = None,
        relu: bool = False,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            bias=(norm == "") if bias is None else bias,
        )
        self.norm = make_norm(norm, out_channels)
        self.relu = relu

    def forward(self, x: Tensor) -> Tensor:
        """Convolve, normalise, then apply the optional ReLU (detectron2's order of operations)."""
        x = super().forward(x)
        if self.norm is not None:
            x = self.norm(x)
        return F.relu(x, inplace=True) if self.relu else x


class BasicStem(nn.Module):
    """ResNet stem: 7×7/2 convolution, ReLU, 3×3/2 max-pool (He et al., 2016)."""

    def __init__(self, out_channels: int, norm: NormName) -> None:
        super().__init__()
        self.conv1 = NormConv2d(3, out_channels, 7, stride=2, padding=3, norm=norm, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """Stride-4 stem features."""
        x = F.relu(self.conv1(x), inplace=True)
        return F.max_pool2d(x, kernel_size=3, stride=2, padding=1)


class BottleneckBlock(nn.Module):
    """1×1 → 3×3 → 1×1 residual bottleneck (He et al., 2016), projection shortcut when needed."""

    def __init__(
        self,
        in_channels: int,
        bottleneck_channels: int,
        out_channels: int,
        *,
        stride: int,
        stride_in_1x1: bool,
        norm: NormName,
    ) -> None:
        super().__init__()
        self.shortcut = (
            NormConv2d(in_channels, out_channels, 1, stride=stride, norm=norm, bias=False)
            if in_channels != out_channels
            else None
        )
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = NormConv2d(
            in_channels, bottleneck_channels, 1, stride=stride_1x1, norm=norm, bias=False
        )
        self.conv2 = NormConv2d(
            bottleneck_channels,
            bottleneck_channels,
            3,
            stride=stride_3x3,
            padding=1,
            norm=norm,
            bias=False,
        )
        self.conv3 = NormConv2d(bottleneck_channels, out_channels, 1, norm=norm, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """Residual bottleneck output."""
        out = F.relu(self.conv1(x), inplace=True)
        out = F.relu(self.conv2(out), inplace=True)
        out = self.conv3(out)
        out += x if self.shortcut is None else self.shortcut(x)
        return F.relu(out, inplace=True)


class ResNet(nn.Module):
    """ResNet-50 trunk returning ``res2..res5`` (strides 4, 8, 16, 32)."""

    def __init__(
        self,
        *,
        stem_channels: int = 64,
        res2_channels: int = 256,
        blocks_per_stage: tuple[int, ...] = RESNET50_BLOCKS,
        stride_in_1x1: bool = True,
        norm: NormName = "FrozenBN",
    ) -> None:
        super().__init__()
        self.stem = BasicStem(stem_channels, norm)
        self.stage_names: list[str] = []
        self.out_channels: dict[str, int] = {}
        in_channels = stem_channels
        out_channels = res2_channels
        bottleneck = res2_channels // 4
        for index, num_blocks in enumerate(blocks_per_stage):
            name = f"res{index + 2}"
            blocks = [
                BottleneckBlock(
                    in_channels if block == 0 else out_channels,
                    bottleneck,
                    out_channels,
                    stride=(1 if index == 0 else 2) if block == 0 else 1,
                    stride_in_1x1=stride_in_1x1,
                    norm=norm,
                )
                for block in range(num_blocks)
            ]
            self.add_module(name, nn.Sequential(*blocks))
            self.stage_names.append(name)
            self.out_channels[name] = out_channels
            in_channels = out_channels
            out_channels *= 2
            bottleneck *= 2

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Features of every stage by name."""
        x = self.stem(x)
        outputs: dict[str, Tensor] = {}
        for name in self.stage_names:
            stage: nn.Module = getattr(self, name)
            x = stage(x)
            outputs[name] = x
        return outputs


class ResNetFPN(nn.Module):
    """FPN (Lin et al., 2017) over ResNet ``res2..res5``: ``p2..p5``, and ``p6`` by max-pooling."""

    # Top-down: p5' = lateral5(res5); pk' = lateralk(resk) + nearest_up2(p(k+1)');
    # pk = outputk(pk'); p6 = maxpool(p5, kernel 1, stride 2). Input sizes must be multiples of
    # size_divisibility.
    size_divisibility = 32
    feature_names = ("p2", "p3", "p4", "p5", "p6")
    feature_strides = (4, 8, 16, 32, 64)

    def __init__(self, bottom_up: ResNet, out_channels: int = 256, norm: NormName = "") -> None:
        super().__init__()
        self.bottom_up = bottom_up
        self.out_channels = out_channels
        for name in bottom_up.stage_names:
            level = name.removeprefix("res")
            in_channels = bottom_up.out_channels[name]
            self.add_module(
                f"fpn_lateral{level}", NormConv2d(in_channels, out_channels, 1, norm=norm)
            )
            self.add_module(
                f"fpn_output{level}",
                NormConv2d(out_channels, out_channels, 3, padding=1, norm=norm),
            )

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Pyramid features ``p2..p6`` by name."""
        bottom_up = self.bottom_up(x)
        outputs: dict[str, Tensor] = {}
        top_down: Tensor | None = None
        for name in reversed(self.bottom_up.stage_names):
            level = name.removeprefix("res")
            lateral: nn.Module = getattr(self, f"fpn_lateral{level}")
            output: nn.Module = getattr(self, f"fpn_output{level}")
            merged = lateral(bottom_up[name])
            if top_down is not None:
                merged = merged + F.interpolate(top_down, scale_factor=2.0, mode="nearest")
            top_down = merged
            outputs[f"p{level}"] = output(merged)
        outputs["p6"] = F.max_pool2d(outputs["p5"], kernel_size=1, stride=2, padding=0)
        return {name: outputs[name] for name in self.feature_names}
