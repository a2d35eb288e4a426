"""Dynamo-Depth (Sun & Hariharan, NeurIPS 2023): monocular depth and independent-motion probability.

VideoCUPS (paper Sec. 3.1) takes depth ``d`` and the motion probability ``m`` of every frame from
Dynamo-Depth, retrained with a DINO ResNet-18 (Sec. 4). This module rebuilds, in pure PyTorch, the
parts of Dynamo-Depth's ``monodepthv2`` variant that inference needs, written from the published
architecture and with the module names of the published checkpoints:

* ``depth_enc`` / ``depth_dec`` — depth network D: Monodepth2's ResNet encoder (inputs normalised
  as ``(x - 0.45) / 0.225``) and U-Net decoder (ConvBlock = reflection-padded 3×3 conv + ELU,
  nearest ×2 upsampling, skips, sigmoid disparity heads ``dispconv_{0..3}``); disparity becomes
  depth as in Monodepth2, ``1 / (1/max_depth + (1/min_depth - 1/max_depth) · disp)``;
* ``pose_enc`` / ``pose_dec`` — ego-motion network P on the pair (source, target), target last;
* ``motion_enc`` / ``motion_mask`` — motion-mask network M on the triple (t-1, t, t+1): a ResNet on
  the 9 stacked channels and a coarse-to-fine decoder seeded with the averaged ego-motion of P;
  ``m = sigmoid(0.01 · field)`` at the input resolution.

The complete-3D-flow decoder ``motion_dec`` is only needed for training and is not built (its
keys are ignored). The LiteMono depth variant is not implemented (its checkpoints are refused with
a clear error).

**Checkpoint layout.** Dynamo-Depth saves one file per module in a folder (``depth_enc.pth``,
``depth_dec.pth``, ``pose_enc.pth``, ``pose_dec.pth``, ``motion_enc.pth``, ``motion_dec.pth``,
``motion_mask.pth``); encoder files also hold the training ``height``/``width``, used as the
default input size. Key mapping (see :func:`canonical_state`):

* encoders: ``encoder.conv1.weight``, ``encoder.layer1.0.conv1.weight``, … load by name;
  ``encoder.fc.*`` (torchvision's unused classifier) is dropped;
* depth decoder: Dynamo-Depth's ``upconv_{i}_{j}.conv.conv.*`` / ``dispconv_{s}.conv.*`` load by
  name; Monodepth2's ``decoder.{n}.*`` (its ModuleList over ``upconv 4..0 × {0,1}`` then
  ``dispconv 0..3``) is renamed to them, so Monodepth2's ``encoder.pth`` + ``depth.pth`` also work
  (depth only: ``motion=false``);
* pose decoder: ``squeeze``/``pose0``/``pose1``/``pose2``; the duplicate ``net.{0..3}`` entries of
  the same convolutions are dropped (or renamed when they are the only copy, as in Monodepth2);
* motion mask: ``_residual_translation.*``, ``refine_motion_conv{k}.{0,1}.*``,
  ``refine_motion_redu{k}.*`` for k = 0 (stride 32) … 5 (the input frames) load by name;
* one combined file: keys prefixed with the module names (``depth_enc.encoder.conv1.weight``, the
  state dict of Dynamo-Depth's whole ``Model``), or ``encoder.`` / ``decoder.`` for the depth
  network alone (``encoder.encoder.conv1.weight``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F  # noqa: N812 - the PyTorch convention
from torch import nn

from vpsbench.cues.base import (
    DepthMotion,
    DepthProvider,
    Image,
    MissingWeightsError,
    VideoClip,
    register_cue,
)
from vpsbench.cues.checkpoints import (
    StateDict,
    image_to_tensor,
    load_state_checked,
    parse_size,
    read_checkpoint,
    resolve_device,
    tensors_only,
)
from vpsbench.cues.resnet import ResNetEncoder
from vpsbench.errors import InputError, VpsbenchError

PUBLISHED = (
    "https://github.com/YihongSun/Dynamo-Depth (README 'Evaluation' table: K_Dynamo-Depth_MD2 "
    "or N_Dynamo-Depth_MD2, a folder with depth_enc.pth, depth_dec.pth, pose_enc.pth, "
    "pose_dec.pth, motion_enc.pth, motion_mask.pth)"
)
DEPTH_MODULES = ("depth_enc", "depth_dec")
MOTION_MODULES = ("pose_enc", "pose_dec", "motion_enc", "motion_mask")
# Monodepth2 names the depth network's files encoder.pth and depth.pth.
MONODEPTH2_FILES = {"depth_enc": "encoder.pth", "depth_dec": "depth.pth"}
DECODER_CHANNELS = (16, 32, 64, 128, 256)
DISPARITY_SCALES = (0, 1, 2, 3)
DEFAULT_INPUT_SIZE = (192, 640)  # Dynamo-Depth's KITTI training size, when a checkpoint has none
# Top-level modules of Lite-Mono's encoder (the depth network of Dynamo-Depth's non-MD2 models).
LITE_MONO_KEYS = ("downsample_layers.", "stem2.", "stages.")


def _apply(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out: torch.Tensor = module(x)
    return out


class Conv3x3(nn.Module):
    """Reflection-padded 3×3 convolution (Monodepth2's ``Conv3x3``)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.pad = nn.ReflectionPad2d(1)
        self.conv = nn.Conv2d(in_channels, out_channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _apply(self.conv, self.pad(x))


class ConvBlock(nn.Module):
    """Conv3x3 followed by ELU (Monodepth2's ``ConvBlock``)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = Conv3x3(in_channels, out_channels)
        self.nonlin = nn.ELU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _apply(self.nonlin, self.conv(x))


class DepthDecoder(nn.Module):
    """Monodepth2's U-Net depth decoder; returns the full-resolution sigmoid disparity (scale 0)."""

    def __init__(self, encoder_channels: tuple[int, ...]) -> None:
        super().__init__()
        for level in range(4, -1, -1):
            channels_in = encoder_channels[-1] if level == 4 else DECODER_CHANNELS[level + 1]
            self.add_module(f"upconv_{level}_0", ConvBlock(channels_in, DECODER_CHANNELS[level]))
            channels_in = DECODER_CHANNELS[level] + (
                encoder_channels[level - 1] if level > 0 else 0
            )
            self.add_module(f"upconv_{level}_1", ConvBlock(channels_in, DECODER_CHANNELS[level]))
        for scale in DISPARITY_SCALES:  # all four heads exist in checkpoints; inference uses 0
            self.add_module(f"dispconv_{scale}", Conv3x3(DECODER_CHANNELS[scale], 1))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = features[-1]
        for level in range(4, -1, -1):
            x = _apply(self.get_submodule(f"upconv_{level}_0"), x)
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            if level > 0:
                x = torch.cat([x, features[level - 1]], dim=1)
            x = _apply(self.get_submodule(f"upconv_{level}_1"), x)
        return torch.sigmoid(_apply(self.get_submodule("dispconv_0"), x))


class PoseDecoder(nn.Module):
    """Monodepth2's pose decoder: axis-angle and translation (×0.01) per predicted frame."""

    def __init__(self, encoder_channels: tuple[int, ...], frames: int = 2) -> None:
        super().__init__()
        self.frames = frames
        self.squeeze = nn.Conv2d(encoder_channels[-1], 256, 1)
        self.pose0 = nn.Conv2d(256, 256, 3, padding=1)
        self.pose1 = nn.Conv2d(256, 256, 3, padding=1)
        self.pose2 = nn.Conv2d(256, 6 * frames, 1)

    def forward(self, deepest: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(axis-angle, translation), each (B, frames, 1, 3), from the stride-32 features."""
        out = torch.relu(self.squeeze(deepest))
        out = torch.relu(self.pose0(out))
        out = torch.relu(self.pose1(out))
        out = self.pose2(out).mean(dim=(2, 3))
        out = 0.01 * out.view(-1, self.frames, 1, 6)
        return out[..., :3], out[..., 3:]


class MotionMaskDecoder(nn.Module):
    """Dynamo-Depth's coarse-to-fine motion decoder (``out_dim=1``): motion-mask logits."""

    def __init__(self, encoder_channels: tuple[int, ...], input_channels: int = 9) -> None:
        super().__init__()
        self.level_channels = (*reversed(encoder_channels), input_channels)
        self._residual_translation = nn.Conv2d(6, 1, 1)
        for level, channels in enumerate(self.level_channels):
            refine = nn.Sequential(
                nn.Conv2d(channels + 1, channels, 3, padding=1),
                nn.Conv2d(channels, channels, 3, padding=1),
            )
            self.add_module(f"refine_motion_conv{level}", refine)
            self.add_module(f"refine_motion_redu{level}", nn.Conv2d(2 * channels, 1, 1))

    def forward(self, pyramid: list[torch.Tensor], ego_motion: torch.Tensor) -> torch.Tensor:
        """Logits (B, 1, H, W) from ``[frames, stride-2 … stride-32 features]`` and ego-motion."""
        field = _apply(self._residual_translation, 100.0 * ego_motion)
        for level, feature in enumerate(reversed(pyramid)):
            upsampled = F.interpolate(
                field, size=feature.shape[-2:], mode="bilinear", align_corners=False
            )
            first = _apply(
                self.get_submodule(f"refine_motion_conv{level}.0"),
                torch.cat([upsampled, feature], dim=1),
            )
            second = _apply(self.get_submodule(f"refine_motion_conv{level}.1"), first)
            reduced = _apply(
                self.get_submodule(f"refine_motion_redu{level}"), torch.cat([first, second], 1)
            )
            field = reduced + upsampled
        return 0.01 * field


class DynamoDepthNet(nn.Module):
    """The inference networks of Dynamo-Depth (monodepthv2 variant), named as its checkpoints."""

    def __init__(self, num_layers: int = 18, with_motion: bool = True) -> None:
        super().__init__()
        self.with_motion = with_motion
        self.depth_enc = ResNetEncoder(num_layers, num_input_images=1)
        self.depth_dec = DepthDecoder(self.depth_enc.num_ch_enc)
        if with_motion:
            self.pose_enc = ResNetEncoder(num_layers, num_input_images=2)
            self.pose_dec = PoseDecoder(self.pose_enc.num_ch_enc, frames=2)
            self.motion_enc = ResNetEncoder(num_layers, num_input_images=3)
            self.motion_mask = MotionMaskDecoder(self.motion_enc.num_ch_enc, input_channels=9)

    def module_names(self) -> tuple[str, ...]:
        """Names of the sub-networks this instance holds (and needs weights for)."""
        return DEPTH_MODULES + (MOTION_MODULES if self.with_motion else ())

    def disparity(self, image: torch.Tensor) -> torch.Tensor:
        """Sigmoid disparity (B, 1, H, W) of RGB ``image`` in [0, 1]."""
        disparity: torch.Tensor = self.depth_dec(self.depth_enc(image))
        return disparity

    def ego_motion(
        self, previous: torch.Tensor, current: torch.Tensor, following: torch.Tensor
    ) -> torch.Tensor:
        """Mean ego-motion (B, 6, 1, 1) = (translation, axis-angle) of (t-1 → t) and (t+1 → t)."""
        batch = current.shape[0]
        pairs = torch.cat(
            [torch.cat([previous, current], 1), torch.cat([following, current], 1)], dim=0
        )
        axis_angle, translation = self.pose_dec(self.pose_enc(pairs)[-1])
        axis_angle, translation = axis_angle[:, 0], translation[:, 0]  # (2B, 1, 3)
        mean_translation = (translation[:batch] - translation[batch:]) / 2
        mean_rotation = (axis_angle[:batch] - axis_angle[batch:]) / 2
        ego = torch.cat([mean_translation, mean_rotation], dim=-1)  # (B, 1, 6)
        return ego.permute(0, 2, 1).unsqueeze(3)

    def motion_probability(
        self, previous: torch.Tensor, current: torch.Tensor, following: torch.Tensor
    ) -> torch.Tensor:
        """Probability (B, 1, H, W) that a pixel of ``current`` moves independently."""
        if not self.with_motion:
            raise VpsbenchError("this Dynamo-Depth network was built without its motion networks")
        frames = torch.cat([previous, current, following], dim=1)
        pyramid = [frames, *self.motion_enc(frames)]
        logits: torch.Tensor = self.motion_mask(
            pyramid, self.ego_motion(previous, current, following)
        )
        return torch.sigmoid(logits)


def disparity_to_depth(
    disparity: torch.Tensor, min_depth: float = 0.1, max_depth: float = 100.0
) -> torch.Tensor:
    """Monodepth2's mapping of a sigmoid disparity in [0, 1] to depth in [min_depth, max_depth]."""
    min_disparity, max_disparity = 1.0 / max_depth, 1.0 / min_depth
    return 1.0 / (min_disparity + (max_disparity - min_disparity) * disparity)


def _monodepth2_decoder_names() -> dict[str, str]:
    # Monodepth2 registers its decoder convs in this order in one ModuleList called ``decoder``.
    order = [f"upconv_{level}_{j}" for level in range(4, -1, -1) for j in (0, 1)]
    order += [f"dispconv_{scale}" for scale in DISPARITY_SCALES]
    return {f"decoder.{index}.": f"{name}." for index, name in enumerate(order)}


def _renamed(state: StateDict, prefixes: Mapping[str, str]) -> StateDict:
    renamed: StateDict = {}
    for key, value in state.items():
        for old, new in prefixes.items():
            if key.startswith(old):
                key = new + key[len(old) :]
                break
        renamed[key] = value
    return renamed


def canonical_state(module: str, entries: Mapping[str, Any]) -> StateDict:
    """One sub-network's checkpoint entries renamed to this implementation's keys (see above)."""
    state = tensors_only(entries)
    if module.endswith("_enc"):
        return {key: value for key, value in state.items() if not key.startswith("encoder.fc.")}
    if module == "depth_dec":
        return _renamed(state, _monodepth2_decoder_names())
    if module == "pose_dec":
        duplicates = {
            "net.0.": "squeeze.",
            "net.1.": "pose0.",
            "net.2.": "pose1.",
            "net.3.": "pose2.",
        }
        if any(key.startswith("squeeze.") for key in state):
            return {key: value for key, value in state.items() if not key.startswith("net.")}
        return _renamed(state, duplicates)
    return state


def split_combined(entries: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """One file's entries split by sub-network (prefix = module name, or encoder./decoder.)."""
    modules = DEPTH_MODULES + MOTION_MODULES + ("motion_dec",)
    aliases = {"encoder": "depth_enc", "decoder": "depth_dec", "depth": "depth_dec"}
    prefixed = any(key.split(".", 1)[0] in modules for key in entries)
    if not prefixed and not any(key.startswith("encoder.encoder.") for key in entries):
        return {"depth_enc": dict(entries)}  # a lone encoder file; the caller reports the rest
    split: dict[str, dict[str, Any]] = {}
    for key, value in entries.items():
        head, _, rest = key.partition(".")
        split.setdefault(aliases.get(head, head), {})[rest] = value
    return split


def _input_size_from(entries: Mapping[str, Any]) -> tuple[int, int] | None:
    height, width = entries.get("height"), entries.get("width")
    if isinstance(height, int) and isinstance(width, int):
        return height, width
    return None


def load_dynamo_depth(
    weights: str | Path | None, num_layers: int = 18, with_motion: bool = True
) -> tuple[DynamoDepthNet, tuple[int, int] | None]:
    """The network with its weights loaded, and the training input size the checkpoint records."""
    if weights is None or str(weights) == "":
        raise MissingWeightsError("dynamo-depth", None, PUBLISHED)
    path = Path(weights).expanduser()
    if not path.exists():
        raise MissingWeightsError("dynamo-depth", path, PUBLISHED)
    net = DynamoDepthNet(num_layers, with_motion=with_motion)
    by_module: dict[str, dict[str, Any]] = {}
    sources: dict[str, Path] = {}
    if path.is_dir():
        for module in net.module_names():
            candidates = [path / f"{module}.pth", path / MONODEPTH2_FILES.get(module, "")]
            found = next((c for c in candidates if c.is_file()), None)
            if found is None:
                raise MissingWeightsError("dynamo-depth", path / f"{module}.pth", PUBLISHED)
            by_module[module], sources[module] = read_checkpoint(found), found
    else:
        by_module = split_combined(read_checkpoint(path))
        sources = dict.fromkeys(by_module, path)
        for module in net.module_names():
            if module not in by_module:
                raise InputError(path, f"checkpoint has no {module!r} weights (keys {module}.*)")
    for module in net.module_names():
        state = canonical_state(module, by_module[module])
        if module == "depth_enc" and any(key.startswith(LITE_MONO_KEYS) for key in state):
            raise InputError(
                f"{sources[module]} [{module}]",
                "holds a Lite-Mono depth encoder (Dynamo-Depth's K_/N_Dynamo-Depth checkpoints), "
                "which vpsbench does not implement; use the *_Dynamo-Depth_MD2 checkpoints",
            )
        load_state_checked(net.get_submodule(module), state, f"{sources[module]} [{module}]")
    net.eval()
    return net, _input_size_from(by_module["depth_enc"])


def _check_input_size(size: tuple[int, int]) -> tuple[int, int]:
    # Five stride-2 stages and reflection padding need at least 2 cells at stride 32.
    if size[0] % 32 or size[1] % 32 or min(size) < 64:
        raise VpsbenchError(f"input size {size[0]}x{size[1]} must be multiples of 32, at least 64")
    return size


def _frame_array(values: torch.Tensor) -> npt.NDArray[np.float32]:
    return np.ascontiguousarray(values[0, 0].float().cpu().numpy(), dtype=np.float32)


def _as_bool(value: object, option: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise VpsbenchError(f"option {option}={value!r} must be true or false")


def _as_float(value: object, option: str) -> float:
    try:
        number = float(str(value))
    except ValueError:
        raise VpsbenchError(f"option {option}={value!r} must be a number") from None
    if not number > 0:
        raise VpsbenchError(f"option {option}={value!r} must be positive")
    return number


@register_cue
class DynamoDepthProvider(DepthProvider):
    """Depth and independent-motion probability from Dynamo-Depth (Sun & Hariharan, 2023).

    Frames are resized (bilinear, antialiased) to the network input size (option ``size``, else
    the checkpoint's training size, else 192×640); disparity and motion probability are resized
    back to the frame bilinearly. Depth is Monodepth2's scale-ambiguous depth in
    [min_depth, max_depth]. The motion network sees frames t-1, t, t+1; at the ends of a clip
    the missing neighbour is frame t itself.
    """

    name: ClassVar[str] = "dynamo-depth"
    description: ClassVar[str] = (
        "Dynamo-Depth (NeurIPS 2023) monodepthv2 networks: depth + motion probability from the "
        "frames t-1, t, t+1; options weights, device, size, layers, min_depth, max_depth, motion"
    )
    needs_weights: ClassVar[bool] = True

    def __init__(
        self,
        weights: str | Path | None = None,
        device: str = "auto",
        size: object = None,
        layers: int | str = 18,
        min_depth: float | str = 0.1,
        max_depth: float | str = 100.0,
        motion: bool | str = True,
    ) -> None:
        self.device = resolve_device(str(device))
        self.min_depth = _as_float(min_depth, "min_depth")
        self.max_depth = _as_float(max_depth, "max_depth")
        if self.min_depth >= self.max_depth:
            raise VpsbenchError(f"min_depth={min_depth} must be below max_depth={max_depth}")
        self.with_motion = _as_bool(motion, "motion")
        try:
            num_layers = int(str(layers))
        except ValueError:
            raise VpsbenchError(f"option layers={layers!r} must be 18, 34 or 50") from None
        requested = parse_size(size, "size")
        if requested is not None:
            _check_input_size(requested)
        net, trained_size = load_dynamo_depth(weights, num_layers, self.with_motion)
        self.net = net.to(self.device)
        self.input_size = _check_input_size(requested or trained_size or DEFAULT_INPUT_SIZE)

    def _prepare(self, image: Image) -> torch.Tensor:
        tensor = image_to_tensor(image, self.device)
        if tuple(tensor.shape[-2:]) == self.input_size:
            return tensor
        return F.interpolate(
            tensor, size=self.input_size, mode="bilinear", align_corners=False, antialias=True
        )

    def _to_frame(self, values: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
        return F.interpolate(values, size=shape, mode="bilinear", align_corners=False)

    def depth_motion(self, clip: VideoClip, t: int) -> DepthMotion:
        """Relative depth in [min_depth, max_depth] and motion probability of frame ``t``."""
        image = clip.image(t)
        shape = (int(image.shape[0]), int(image.shape[1]))
        with torch.inference_mode():
            current = self._prepare(image)
            # Monodepth2 evaluation resizes the disparity (not the depth) to the output size.
            disparity = self._to_frame(self.net.disparity(current), shape)
            depth = disparity_to_depth(disparity, self.min_depth, self.max_depth)
            if self.with_motion:
                previous = self._prepare(clip.image(max(t - 1, 0)))
                following = self._prepare(clip.image(min(t + 1, len(clip) - 1)))
                probability = self.net.motion_probability(previous, current, following)
                motion = self._to_frame(probability, shape).clamp(0.0, 1.0)
            else:
                motion = torch.zeros_like(depth)
        return DepthMotion(depth=_frame_array(depth), motion=_frame_array(motion))
