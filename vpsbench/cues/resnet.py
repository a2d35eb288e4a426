"""ResNet encoder (He et al., CVPR 2016) in pure PyTorch, as Monodepth2 / Dynamo-Depth use it.

The module layout mirrors torchvision's ``ResNet`` (``conv1``, ``bn1``, ``layer1``…``layer4`` of
``BasicBlock``/``Bottleneck`` with ``downsample.0``/``downsample.1``), so checkpoints saved from
torchvision-based encoders load by name; :class:`ResNetEncoder` wraps it as ``encoder`` like
Monodepth2's ``ResnetEncoder`` (keys ``encoder.conv1.weight``, ``encoder.layer1.0.bn1.weight``, …)
and returns the five feature maps of its U-Net decoders (strides 2, 4, 8, 16, 32).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

MONODEPTH_MEAN = 0.45  # Monodepth2 normalises inputs in [0, 1] as (x - 0.45) / 0.225
MONODEPTH_STD = 0.225


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with a residual connection (ResNet-18/34)."""

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = channels * self.expansion
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample = _shortcut(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return torch.relu(out + identity)


class Bottleneck(nn.Module):
    """1×1 → 3×3 (strided) → 1×1 convolutions with a residual connection (ResNet-50)."""

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = channels * self.expansion
        self.conv1 = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = nn.Conv2d(channels, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return torch.relu(out + identity)


def _shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Sequential | None:
    # torchvision's projection shortcut: 1×1 strided conv + BN, only where the shape changes.
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
        nn.BatchNorm2d(out_channels),
    )


@dataclass(frozen=True)
class ResNetSpec:
    """Block type and blocks per stage of one ResNet depth."""

    block: type[BasicBlock] | type[Bottleneck]
    blocks: tuple[int, int, int, int]


RESNET_SPECS: dict[int, ResNetSpec] = {
    18: ResNetSpec(BasicBlock, (2, 2, 2, 2)),
    34: ResNetSpec(BasicBlock, (3, 4, 6, 3)),
    50: ResNetSpec(Bottleneck, (3, 4, 6, 3)),
}


class ResNet(nn.Module):
    """ResNet trunk with torchvision's module names and any number of input channels (no head)."""

    def __init__(self, num_layers: int = 18, in_channels: int = 3) -> None:
        super().__init__()
        if num_layers not in RESNET_SPECS:
            known = ", ".join(str(n) for n in RESNET_SPECS)
            raise ValueError(f"ResNet-{num_layers} is not available (known depths: {known})")
        spec = RESNET_SPECS[num_layers]
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        channels_in = 64
        stages: list[nn.Sequential] = []
        for stage, (channels, count) in enumerate(
            zip((64, 128, 256, 512), spec.blocks, strict=True)
        ):
            stride = 1 if stage == 0 else 2
            blocks: list[nn.Module] = []
            for index in range(count):
                blocks.append(spec.block(channels_in, channels, stride if index == 0 else 1))
                channels_in = channels * spec.block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        widen = spec.block.expansion
        self.stage_channels = (64, 64 * widen, 128 * widen, 256 * widen, 512 * widen)


class ResNetEncoder(nn.Module):
    """Monodepth2's multi-scale ResNet encoder (Godard et al., ICCV 2019): five feature maps."""

    def __init__(self, num_layers: int = 18, num_input_images: int = 1) -> None:
        super().__init__()
        self.encoder = ResNet(num_layers, in_channels=3 * num_input_images)
        self.num_ch_enc: tuple[int, ...] = self.encoder.stage_channels

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Features at strides 2, 4, 8, 16 and 32 of RGB ``images`` in [0, 1] (frames stacked)."""
        trunk = self.encoder
        x = (images - MONODEPTH_MEAN) / MONODEPTH_STD
        features = [trunk.relu(trunk.bn1(trunk.conv1(x)))]
        features.append(trunk.layer1(trunk.maxpool(features[-1])))
        features.append(trunk.layer2(features[-1]))
        features.append(trunk.layer3(features[-1]))
        features.append(trunk.layer4(features[-1]))
        return features
