"""RAFT (Teed & Deng, ECCV 2020) in plain PyTorch, loadable from RAFT's and SMURF's weights.

The network, as the paper (Sec. 3, App. A/B) and its reference code describe it:

* feature encoder ``fnet`` and context encoder ``cnet``: a 7×7 stride-2 convolution, three stages
  of two residual blocks (64, 96, 128 channels; strides 1, 2, 2) and a 1×1 output convolution, all
  at 1/8 resolution; ``fnet`` (256 channels) uses instance norm, ``cnet`` (128 hidden + 128
  context channels) batch norm in RAFT and instance norm in SMURF (Stone et al., CVPR 2021);
* all-pairs correlation of the feature maps divided by √256, average-pooled into a 4-level
  pyramid and looked up at radius 4 around the current correspondence (4·81 = 324 channels);
* update block: motion encoder, separable ConvGRU (1×5 then 5×1), flow head and a mask head whose
  8·8·9 weights upsample the 1/8-resolution flow as a convex combination of 3×3 neighbours.

The all-pairs volume takes (H·W/64)² floats: 32 MB at 512×256, 4.3 GB at 2048×1024.

Weights are a state dict in the official RAFT naming (``fnet.conv1.weight``,
``update_block.gru.convz1.weight``, …; a ``module.`` prefix from ``DataParallel`` is dropped).
SMURF's TF2 checkpoint maps onto it as follows (each name ends in ``/kernel`` or ``/bias`` plus
``/.ATTRIBUTES/VARIABLE_VALUE``; E is ``fnet`` or ``cnet``, s a stage, b a block)::

    feature_model/E/conv1, conv2                                   E.conv1, E.conv2
    feature_model/E/layer{s}/layer_with_weights-{b}/conv1, conv2    E.layer{s}.{b}.conv1, conv2
    feature_model/E/layer{2,3}/layer_with_weights-0/downsample/layer_with_weights-0
                                                                   E.layer{s}.0.downsample.0
    flow_model/update_block/encoder/convc1 … conv                  update_block.encoder.convc1 …
    flow_model/update_block/gru/conv{z,r,q}{1,2}                   update_block.gru.conv{z,r,q}{1,2}
    flow_model/update_block/flow_head/conv1, conv2                 update_block.flow_head.conv1, 2
    flow_model/update_block/mask/layer_with_weights-0, -1          update_block.mask.0, .2

Kernels go from (kh, kw, in, out) to (out, in, kh, kw); ``convc1``'s 324 input channels are
transposed within each 9×9 window (SMURF orders a window dy-major, RAFT dx-major); SMURF's norms
have no parameters. See :func:`convert_smurf_checkpoint`.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F  # noqa: N812 — the conventional name
from torch import Tensor, nn

from vpsbench.errors import VpsbenchError

NormKind = Literal["batch", "instance", "none"]
#: Feature maps are at 1/8 of the input resolution.
DOWNSAMPLING = 8


@dataclass(frozen=True)
class RaftConfig:
    """Sizes of the large RAFT; ``context_norm``: ``batch`` (RAFT) or ``instance`` (SMURF)."""

    context_norm: NormKind = "batch"
    hidden_dim: int = 128
    context_dim: int = 128
    feature_dim: int = 256
    corr_levels: int = 4
    corr_radius: int = 4

    @property
    def corr_channels(self) -> int:
        """Channels of one correlation lookup: a (2r+1)² window per pyramid level."""
        return self.corr_levels * (2 * self.corr_radius + 1) ** 2

    @property
    def min_input_size(self) -> int:
        """Smallest input side: the coarsest correlation level must keep two cells per axis."""
        return DOWNSAMPLING << self.corr_levels  # 8 · 2^(levels-1) · 2


def _norm(kind: NormKind, channels: int) -> nn.Module:
    """The normalisation layer of an encoder (instance norm without affine parameters)."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels)
    return nn.Identity()


class ResidualBlock(nn.Module):
    """Two 3×3 conv–norm–ReLU layers plus the (projected when strided) input, then ReLU."""

    def __init__(self, in_channels: int, channels: int, norm: NormKind, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, kernel_size=3, padding=1, stride=stride)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.norm1 = _norm(norm, channels)
        self.norm2 = _norm(norm, channels)
        self.downsample: nn.Sequential | None = None
        if stride != 1:
            # RAFT registers the projection's norm twice (``norm3`` and ``downsample.1``), so its
            # state dicts hold both keys; keeping the layout keeps them loadable as they are.
            self.norm3 = _norm(norm, channels)
            projection = nn.Conv2d(in_channels, channels, kernel_size=1, stride=stride)
            self.downsample = nn.Sequential(projection, self.norm3)

    def forward(self, x: Tensor) -> Tensor:
        """Residual block output."""
        y = F.relu(self.norm1(self.conv1(x)))
        y = F.relu(self.norm2(self.conv2(y)))
        if self.downsample is not None:
            x = self.downsample(x)
        return F.relu(x + y)


class BasicEncoder(nn.Module):
    """RAFT's feature/context encoder: 1/8 resolution, ``output_dim`` channels."""

    def __init__(self, output_dim: int, norm: NormKind) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3)
        self.norm1 = _norm(norm, 64)
        self.layer1 = nn.Sequential(ResidualBlock(64, 64, norm, 1), ResidualBlock(64, 64, norm, 1))
        self.layer2 = nn.Sequential(ResidualBlock(64, 96, norm, 2), ResidualBlock(96, 96, norm, 1))
        self.layer3 = nn.Sequential(
            ResidualBlock(96, 128, norm, 2), ResidualBlock(128, 128, norm, 1)
        )
        self.conv2 = nn.Conv2d(128, output_dim, kernel_size=1)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, image: Tensor) -> Tensor:
        """Features (B, output_dim, H/8, W/8) of images normalised to [-1, 1]."""
        x = F.relu(self.norm1(self.conv1(image)))
        features: Tensor = self.conv2(self.layer3(self.layer2(self.layer1(x))))
        return features


class MotionEncoder(nn.Module):
    """Encodes correlation features and the current flow into 126 channels, plus the flow."""

    def __init__(self, config: RaftConfig) -> None:
        super().__init__()
        self.convc1 = nn.Conv2d(config.corr_channels, 256, kernel_size=1)
        self.convc2 = nn.Conv2d(256, 192, kernel_size=3, padding=1)
        self.convf1 = nn.Conv2d(2, 128, kernel_size=7, padding=3)
        self.convf2 = nn.Conv2d(128, 64, kernel_size=3, padding=1)
        self.conv = nn.Conv2d(64 + 192, 128 - 2, kernel_size=3, padding=1)

    def forward(self, flow: Tensor, correlation: Tensor) -> Tensor:
        """Motion features (B, 128, h, w)."""
        corr = F.relu(self.convc2(F.relu(self.convc1(correlation))))
        flo = F.relu(self.convf2(F.relu(self.convf1(flow))))
        return torch.cat([F.relu(self.conv(torch.cat([corr, flo], dim=1))), flow], dim=1)


def _gate_conv(in_channels: int, out_channels: int, *, horizontal: bool) -> nn.Conv2d:
    """A GRU gate convolution of the separable ConvGRU: 1×5 (horizontal) or 5×1 (vertical)."""
    if horizontal:
        return nn.Conv2d(in_channels, out_channels, kernel_size=(1, 5), padding=(0, 2))
    return nn.Conv2d(in_channels, out_channels, kernel_size=(5, 1), padding=(2, 0))


class SepConvGRU(nn.Module):
    """ConvGRU applied twice: with 1×5 kernels (horizontal), then 5×1 (vertical)."""

    def __init__(self, hidden_dim: int, input_dim: int) -> None:
        super().__init__()
        channels = hidden_dim + input_dim
        self.convz1 = _gate_conv(channels, hidden_dim, horizontal=True)
        self.convr1 = _gate_conv(channels, hidden_dim, horizontal=True)
        self.convq1 = _gate_conv(channels, hidden_dim, horizontal=True)
        self.convz2 = _gate_conv(channels, hidden_dim, horizontal=False)
        self.convr2 = _gate_conv(channels, hidden_dim, horizontal=False)
        self.convq2 = _gate_conv(channels, hidden_dim, horizontal=False)

    @staticmethod
    def _step(h: Tensor, x: Tensor, convz: nn.Module, convr: nn.Module, convq: nn.Module) -> Tensor:
        """One GRU update: gates z, r and candidate q from [h, x]."""
        hx = torch.cat([h, x], dim=1)
        z = torch.sigmoid(convz(hx))
        r = torch.sigmoid(convr(hx))
        q = torch.tanh(convq(torch.cat([r * h, x], dim=1)))
        return (1 - z) * h + z * q

    def forward(self, h: Tensor, x: Tensor) -> Tensor:
        """Updated hidden state."""
        h = self._step(h, x, self.convz1, self.convr1, self.convq1)
        return self._step(h, x, self.convz2, self.convr2, self.convq2)


class FlowHead(nn.Module):
    """Two 3×3 convolutions from the hidden state to a flow update."""

    def __init__(self, input_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(input_dim, hidden_dim, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(hidden_dim, 2, kernel_size=3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        """Flow update (B, 2, h, w)."""
        update: Tensor = self.conv2(F.relu(self.conv1(x)))
        return update


class UpdateBlock(nn.Module):
    """Motion encoder, GRU, flow head and upsampling-mask head of one refinement step."""

    def __init__(self, config: RaftConfig) -> None:
        super().__init__()
        self.encoder = MotionEncoder(config)
        self.gru = SepConvGRU(config.hidden_dim, 128 + config.context_dim)
        self.flow_head = FlowHead(config.hidden_dim, 256)
        self.mask = nn.Sequential(
            nn.Conv2d(config.hidden_dim, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, DOWNSAMPLING * DOWNSAMPLING * 9, kernel_size=1),
        )

    def forward(
        self, hidden: Tensor, context: Tensor, correlation: Tensor, flow: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """New hidden state, upsampling mask logits (scaled by 0.25 as in RAFT), flow update."""
        motion = self.encoder(flow, correlation)
        hidden = self.gru(hidden, torch.cat([context, motion], dim=1))
        return hidden, 0.25 * self.mask(hidden), self.flow_head(hidden)


class CorrelationPyramid:
    """All-pairs correlation of two feature maps, pooled into levels, looked up around points."""

    def __init__(self, features1: Tensor, features2: Tensor, levels: int, radius: int) -> None:
        batch, channels, height, width = features1.shape
        volume = (
            torch.matmul(
                features1.reshape(batch, channels, height * width).transpose(1, 2),
                features2.reshape(batch, channels, height * width),
            )
            / float(channels) ** 0.5
        )
        volume = volume.reshape(batch * height * width, 1, height, width)
        self.levels = [volume]
        for _ in range(levels - 1):
            volume = F.avg_pool2d(volume, kernel_size=2, stride=2)
            self.levels.append(volume)
        self.radius = radius

    def window_offsets(self, device: torch.device) -> Tensor:
        """(2r+1, 2r+1, 2) pixel offsets (dx, dy): RAFT's order, dx on the first (slow) axis."""
        steps = torch.arange(-self.radius, self.radius + 1, dtype=torch.float32, device=device)
        side = steps.numel()
        return torch.stack(
            [steps[:, None].expand(side, side), steps[None, :].expand(side, side)], -1
        )

    def lookup(self, coords: Tensor) -> Tensor:
        """Correlation windows (B, levels·(2r+1)², h, w) around ``coords`` (B, 2, h, w), (x, y)."""
        batch, _, height, width = coords.shape
        centres = coords.permute(0, 2, 3, 1).reshape(batch * height * width, 1, 1, 2)
        offsets = self.window_offsets(coords.device)[None]
        windows = []
        for level, volume in enumerate(self.levels):
            points = centres / 2**level + offsets
            size = torch.tensor(
                [volume.shape[-1] - 1, volume.shape[-2] - 1],
                dtype=points.dtype,
                device=points.device,
            )
            grid = 2 * points / size - 1
            sampled = F.grid_sample(volume, grid, mode="bilinear", align_corners=True)
            windows.append(sampled.reshape(batch, height, width, -1))
        return torch.cat(windows, dim=-1).permute(0, 3, 1, 2).contiguous()


def coordinate_grid(batch: int, height: int, width: int, device: torch.device) -> Tensor:
    """(B, 2, H, W) pixel coordinates, channel 0 = x (column), 1 = y (row)."""
    rows, cols = torch.meshgrid(
        torch.arange(height, dtype=torch.float32, device=device),
        torch.arange(width, dtype=torch.float32, device=device),
        indexing="ij",
    )
    return torch.stack([cols, rows])[None].expand(batch, 2, height, width).clone()


def upsample_flow_convex(flow: Tensor, mask: Tensor) -> Tensor:
    """Full-resolution flow: each 8×8 cell a softmax-weighted mix of the 3×3 coarse neighbours."""
    batch, _, height, width = flow.shape
    weights = mask.reshape(batch, 1, 9, DOWNSAMPLING, DOWNSAMPLING, height, width).softmax(dim=2)
    neighbours = F.unfold(DOWNSAMPLING * flow, kernel_size=3, padding=1)
    neighbours = neighbours.reshape(batch, 2, 9, 1, 1, height, width)
    fine = (weights * neighbours).sum(dim=2)  # (B, 2, 8, 8, h, w)
    return fine.permute(0, 1, 4, 2, 5, 3).reshape(
        batch, 2, DOWNSAMPLING * height, DOWNSAMPLING * width
    )


class Raft(nn.Module):
    """RAFT: encoders, correlation pyramid and the recurrent update block (inference only)."""

    def __init__(self, config: RaftConfig | None = None) -> None:
        super().__init__()
        self.config = config or RaftConfig()
        self.fnet = BasicEncoder(self.config.feature_dim, "instance")
        self.cnet = BasicEncoder(
            self.config.hidden_dim + self.config.context_dim, self.config.context_norm
        )
        self.update_block = UpdateBlock(self.config)

    def forward(self, image1: Tensor, image2: Tensor, iterations: int = 12) -> Tensor:
        """Flow (B, 2, H, W) from ``image1`` to ``image2`` (RGB in [0, 1], H and W % 8 = 0)."""
        if iterations < 1:
            raise VpsbenchError(f"RAFT needs at least one iteration, got {iterations}")
        height, width = image1.shape[-2:]
        if height % DOWNSAMPLING or width % DOWNSAMPLING:
            raise VpsbenchError(f"RAFT input {height}x{width} is not a multiple of {DOWNSAMPLING}")
        image1, image2 = 2 * image1 - 1, 2 * image2 - 1  # RAFT's and SMURF's [-1, 1] input
        features1, features2 = self.fnet(torch.cat([image1, image2])).float().chunk(2)
        pyramid = CorrelationPyramid(
            features1, features2, self.config.corr_levels, self.config.corr_radius
        )
        hidden, context = torch.split(
            self.cnet(image1), [self.config.hidden_dim, self.config.context_dim], dim=1
        )
        hidden, context = torch.tanh(hidden), F.relu(context)
        batch, _, coarse_height, coarse_width = features1.shape
        coords0 = coordinate_grid(batch, coarse_height, coarse_width, image1.device)
        coords1 = coords0.clone()
        mask = torch.zeros(0)
        for _ in range(iterations):
            correlation = pyramid.lookup(coords1)
            hidden, mask, delta = self.update_block(hidden, context, correlation, coords1 - coords0)
            coords1 = coords1 + delta
        return upsample_flow_convex(coords1 - coords0, mask)


def pad_to_raft_size(image: Tensor, min_size: int) -> tuple[Tensor, tuple[int, int, int, int]]:
    """Replicate-pad evenly to a multiple of 8 ≥ ``min_size``; also (top, bottom, left, right)."""
    height, width = image.shape[-2:]

    def padded(side: int) -> int:
        return max(-(-side // DOWNSAMPLING) * DOWNSAMPLING, min_size)

    extra_rows, extra_cols = padded(height) - height, padded(width) - width
    top, left = extra_rows // 2, extra_cols // 2
    pads = (top, extra_rows - top, left, extra_cols - left)
    if not any(pads):
        return image, pads
    return F.pad(image, (pads[2], pads[3], pads[0], pads[1]), mode="replicate"), pads


# --- weights -----------------------------------------------------------------------------------


def raft_state_dict(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Weights in RAFT naming, without the ``module.`` prefix of ``DataParallel`` checkpoints."""
    return {key.removeprefix("module."): value for key, value in state.items()}


def config_for_state_dict(state: Mapping[str, Tensor]) -> RaftConfig:
    """RAFT's batch-norm context encoder when the weights hold its norm, else SMURF's variant."""
    return RaftConfig(context_norm="batch" if "cnet.norm1.weight" in state else "instance")


# --- SMURF (TensorFlow) ------------------------------------------------------------------------

#: Suffix of every variable in a TF2 object-based checkpoint.
TF_VARIABLE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"


def _smurf_layers() -> dict[str, str]:
    """SMURF's Keras layer paths → RAFT module names, for every layer with kernel and bias."""
    # tf.train.Checkpoint(feature_model=…, flow_model=…) names variables by attribute path, and a
    # tf.keras.Sequential numbers its weighted layers layer_with_weights-N; the instance norms
    # carry no variables. The names are those TF's checkpoint reader lists for the released
    # checkpoints (github.com/ChristophReich1996/SMURF convert_weights_to_pt.py, also posted in
    # google-research/google-research issue 1883).
    layers: dict[str, str] = {}
    for encoder in ("fnet", "cnet"):
        tf_encoder = f"feature_model/{encoder}"
        layers[f"{tf_encoder}/conv1"] = f"{encoder}.conv1"
        layers[f"{tf_encoder}/conv2"] = f"{encoder}.conv2"
        for stage in (1, 2, 3):
            for block in (0, 1):
                tf_block = f"{tf_encoder}/layer{stage}/layer_with_weights-{block}"
                block_name = f"{encoder}.layer{stage}.{block}"
                layers[f"{tf_block}/conv1"] = f"{block_name}.conv1"
                layers[f"{tf_block}/conv2"] = f"{block_name}.conv2"
                if stage > 1 and block == 0:
                    layers[f"{tf_block}/downsample/layer_with_weights-0"] = (
                        f"{block_name}.downsample.0"
                    )
    update = "flow_model/update_block"
    for name in ("convc1", "convc2", "convf1", "convf2", "conv"):
        layers[f"{update}/encoder/{name}"] = f"update_block.encoder.{name}"
    for gate in ("z", "r", "q"):
        for direction in (1, 2):
            layers[f"{update}/gru/conv{gate}{direction}"] = (
                f"update_block.gru.conv{gate}{direction}"
            )
    for name in ("conv1", "conv2"):
        layers[f"{update}/flow_head/{name}"] = f"update_block.flow_head.{name}"
    layers[f"{update}/mask/layer_with_weights-0"] = "update_block.mask.0"
    layers[f"{update}/mask/layer_with_weights-1"] = "update_block.mask.2"
    return layers


def smurf_variable_names() -> dict[str, str]:
    """Every SMURF TF variable name → its key in the RAFT state dict (kernel → weight)."""
    names = {}
    for tf_layer, module in _smurf_layers().items():
        names[f"{tf_layer}/kernel{TF_VARIABLE_SUFFIX}"] = f"{module}.weight"
        names[f"{tf_layer}/bias{TF_VARIABLE_SUFFIX}"] = f"{module}.bias"
    return names


def swap_window_axes(convc1_weight: Tensor, config: RaftConfig) -> Tensor:
    """Swap ``convc1``'s correlation channels between SMURF's and RAFT's window order."""
    # In each level's (2r+1)² window SMURF (tf.meshgrid, 'xy' indexing) puts dy on the slow axis,
    # RAFT (torch.meshgrid, 'ij') dx: the reorder is a transpose, its own inverse.
    side = 2 * config.corr_radius + 1
    out_channels = convc1_weight.shape[0]
    windows = convc1_weight.reshape(out_channels, config.corr_levels, side, side, -1)
    return windows.transpose(2, 3).reshape(convc1_weight.shape).contiguous()


def convert_smurf_checkpoint(variables: Mapping[str, npt.ArrayLike]) -> dict[str, Tensor]:
    """SMURF's TF variables (name → array) as RAFT weights for the instance-norm context encoder."""
    # Kernels (kh, kw, in, out) → (out, in, kh, kw); optimizer slots and counters are ignored.
    names = smurf_variable_names()
    missing = [name for name in names if name not in variables]
    if missing:
        raise VpsbenchError(
            f"not a SMURF RAFT checkpoint: {len(missing)} of {len(names)} variables missing "
            f"(first: {missing[0]})"
        )
    state: dict[str, Tensor] = {}
    for tf_name, key in names.items():
        value = torch.from_numpy(np.array(variables[tf_name], dtype=np.float32))
        state[key] = value.permute(3, 2, 0, 1).contiguous() if key.endswith(".weight") else value
    convc1 = "update_block.encoder.convc1.weight"
    state[convc1] = swap_window_axes(state[convc1], RaftConfig(context_norm="instance"))
    return state


def is_tensorflow_checkpoint(path: Path) -> bool:
    """A TF checkpoint directory, prefix (``ckpt-N`` next to ``ckpt-N.index``) or its file."""
    if path.is_dir():
        return (path / "checkpoint").is_file()
    return path.name.endswith(".index") or ".data-" in path.name or Path(f"{path}.index").is_file()


def read_smurf_checkpoint(path: Path) -> dict[str, Tensor]:
    """Read SMURF's TF checkpoint (needs ``tensorflow``) and convert it to a RAFT state dict."""
    try:
        tensorflow = importlib.import_module("tensorflow")
    except ModuleNotFoundError:
        raise VpsbenchError(
            f"{path} is a TensorFlow checkpoint (SMURF); reading it needs tensorflow: run "
            f"`python -m vpsbench.cues.raft_model {path} smurf.pt` where tensorflow is installed, "
            "then pass smurf.pt as the weights"
        ) from None
    prefix = str(path).removesuffix(".index").split(".data-")[0]
    reader = tensorflow.train.load_checkpoint(prefix)
    wanted = smurf_variable_names()
    available = reader.get_variable_to_shape_map()
    return convert_smurf_checkpoint(
        {name: np.asarray(reader.get_tensor(name)) for name in wanted if name in available}
    )


def main(argv: list[str] | None = None) -> None:
    """Convert a SMURF TF checkpoint into a RAFT-named PyTorch state dict (needs tensorflow)."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("checkpoint", type=Path, help="SMURF checkpoint directory or prefix")
    parser.add_argument("output", type=Path, help="where to write the .pt state dict")
    args = parser.parse_args(argv)
    try:
        torch.save(read_smurf_checkpoint(args.checkpoint), args.output)
    except VpsbenchError as error:
        raise SystemExit(f"error: {error}") from None
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
