"""Read network checkpoints and load them into the pure-PyTorch cue networks with one-line errors.

Shared by the DINO ViT (:mod:`vpsbench.cues.dino`) and Dynamo-Depth
(:mod:`vpsbench.cues.dynamo_depth`) providers; imports torch, so only those modules use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vpsbench.cues.base import Image
from vpsbench.errors import InputError, VpsbenchError

StateDict = dict[str, torch.Tensor]
# BatchNorm's step counter is absent from old checkpoints and never used at inference.
_OPTIONAL_SUFFIXES = ("num_batches_tracked",)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """Entries of a ``.pth``/``.pt``/``.ckpt`` (torch.load, weights only) or ``.safetensors``."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return dict(load_file(str(path), device="cpu"))
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except ModuleNotFoundError as error:
        raise InputError(path, f"reading it needs the {error.name!r} package") from None
    except Exception as error:  # torch and safetensors raise many types for a broken file
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise InputError(
            path, f"cannot read checkpoint ({type(error).__name__}: {first_line})"
        ) from None
    if not isinstance(loaded, dict):
        raise InputError(path, f"checkpoint holds a {type(loaded).__name__}, not a state dict")
    return dict(loaded)


def tensors_only(entries: Mapping[str, Any]) -> StateDict:
    """The tensor entries of a checkpoint (drops metadata such as Monodepth2's height/width)."""
    return {key: value for key, value in entries.items() if isinstance(value, torch.Tensor)}


def _shape(tensor: torch.Tensor) -> str:
    return "(" + ", ".join(str(size) for size in tensor.shape) + ")"


def _listing(keys: list[str]) -> str:
    more = f" and {len(keys) - 1} more" if len(keys) > 1 else ""
    return f"{keys[0]!r}{more}"


def load_state_checked(module: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Load ``state`` into ``module``; a missing, unexpected or misshaped key is one clear error."""
    expected = module.state_dict()
    missing = [key for key in expected if key not in state and not key.endswith(_OPTIONAL_SUFFIXES)]
    if missing:
        raise InputError(source, f"checkpoint lacks key {_listing(missing)}")
    unexpected = [key for key in state if key not in expected]
    if unexpected:
        raise InputError(source, f"checkpoint has unexpected key {_listing(unexpected)}")
    for key, value in state.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise InputError(
                source,
                f"key {key!r} has shape {_shape(value)} but the network expects "
                f"{_shape(expected[key])}",
            )
    module.load_state_dict(dict(state), strict=False)


def resolve_device(name: str) -> torch.device:
    """``auto`` → the first CUDA GPU if there is one, else the CPU; else a torch device name."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise VpsbenchError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise VpsbenchError(f"device {name!r} requested but no CUDA GPU is available")
    return device


def parse_size(value: object, option: str) -> tuple[int, int] | None:
    """An image size option: ``None``, ``"HxW"``, ``(H, W)`` or one int (square) → ``(H, W)``."""
    if value is None or value == "":
        return None
    parts: list[object]
    if isinstance(value, str):
        parts = list(value.lower().replace(",", "x").split("x"))
    elif isinstance(value, int):
        parts = [value, value]
    elif isinstance(value, (tuple, list)):
        parts = list(value)
    else:
        parts = []
    try:
        sizes = [int(str(part).strip()) for part in parts]
    except ValueError:
        sizes = []
    if len(sizes) == 1:
        sizes = sizes * 2
    if len(sizes) != 2 or min(sizes) <= 0:
        raise VpsbenchError(f"option {option}={value!r} must be HxW (e.g. 192x640) or one integer")
    return sizes[0], sizes[1]


def image_to_tensor(image: Image, device: torch.device) -> torch.Tensor:
    """An RGB uint8 frame (H, W, 3) as a (1, 3, H, W) float tensor in [0, 1] on ``device``."""
    array = np.ascontiguousarray(image[..., :3].transpose(2, 0, 1), dtype=np.float32) / 255.0
    return torch.from_numpy(array)[None].to(device)
