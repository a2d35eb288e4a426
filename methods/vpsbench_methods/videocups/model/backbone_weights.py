"""Load DINO's self-supervised ResNet-50 (Caron et al., 2021) into the detectron2-named backbone.

VideoCUPS initialises its Panoptic Cascade MaskTrack R-CNN from a DINO ResNet-50 (paper Sec. 3.2),
as U2Seg and CUPS do. DINO publishes it as a torchvision-layout state dict
(``dino_resnet50_pretrain.pth``): ``conv1``/``bn1``, ``layer{1..4}.{i}.conv{1,2,3}`` and
``.bn{1,2,3}``, ``layer{1..4}.0.downsample.{0,1}`` and possibly a classifier ``fc.*``; DINO's full
training checkpoints wrap it in ``{"teacher": …}``/``{"student": …}`` with ``module.`` and
``backbone.`` prefixes (and a projection ``head.*``). This module renames those keys onto
:class:`vpsbench.models.backbone.ResNet`'s detectron2 names (``stem.conv1``, ``res{2..5}.{i}.conv*``
with ``.norm``, ``.shortcut``). Files already in detectron2 names (e.g. the converted
``dino_RN50_pretrain_d2_format.pkl``) load as they are.

torchvision ResNets stride the 3×3 ``conv2``, so the target backbone must be built with
``ResNet(stride_in_1x1=False)``; a backbone striding its 1×1 convs is refused, since the weights
would load but compute different features.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor

from vpsbench.cues.base import MissingWeightsError
from vpsbench.models.backbone import ResNet
from vpsbench.models.checkpoints import (
    CheckpointMismatchError,
    LoadReport,
    load_state_dict_checked,
    read_checkpoint_safely,
    tensor_state_dict,
)

DINO_RESNET50_URL = (
    "https://dl.fbaipublicfiles.com/dino/dino_resnet50_pretrain/dino_resnet50_pretrain.pth"
)
PROVIDER = "dino-resnet50"
WRAPPERS = ("teacher", "state_dict", "model", "student")
"""Dict keys a state dict may be wrapped in, tried in this order (DINO evaluates the teacher)."""
PREFIXES = ("module.", "backbone.", "encoder.")
"""Leading key prefixes of wrapped checkpoints, stripped repeatedly."""
IGNORED_PREFIXES = ("fc.", "head.")
"""Classifier and DINO projection-head weights: not part of the backbone."""
LIST_LIMIT = 5
"""Mismatches of each kind named in an error message."""

_BLOCK = re.compile(r"^layer([1-4])\.(\d+)\.(.+)$")
_BN = re.compile(r"^bn([123])\.(.+)$")
_CONV = re.compile(r"^conv([123])\.weight$")
_DOWNSAMPLE = re.compile(r"^downsample\.([01])\.(.+)$")
_DETECTRON2 = re.compile(r"^(stem|res[2-5])\.")


def torchvision_to_detectron2(key: str) -> str | None:
    """The detectron2 backbone name of a torchvision ResNet key, or None if it has no mapping."""
    if _DETECTRON2.match(key):
        return key
    if key == "conv1.weight":
        return "stem.conv1.weight"
    if key.startswith("bn1."):
        return "stem.conv1.norm." + key.removeprefix("bn1.")
    block = _BLOCK.match(key)
    if block is None:
        return None
    layer, index, rest = block.groups()
    prefix = f"res{int(layer) + 1}.{index}."
    if conv := _CONV.match(rest):
        return f"{prefix}conv{conv.group(1)}.weight"
    if bn := _BN.match(rest):
        return f"{prefix}conv{bn.group(1)}.norm.{bn.group(2)}"
    if down := _DOWNSAMPLE.match(rest):
        part, leaf = down.groups()
        return f"{prefix}shortcut.{leaf}" if part == "0" else f"{prefix}shortcut.norm.{leaf}"
    return None


def load_dino_resnet50(model_backbone_bottom_up: ResNet, path: str | Path) -> LoadReport:
    """Copy a DINO ResNet-50 checkpoint into ``model_backbone_bottom_up`` (names: module doc).

    Every backbone tensor must come from the file (BatchNorm's ``num_batches_tracked`` may be
    absent and is then left as it is); ``fc.*``/``head.*`` and BN counters in the file are
    ignored. Raises :class:`MissingWeightsError` for a missing file and
    :class:`CheckpointMismatchError` (one line, first mismatches of each kind) for wrong keys or
    shapes.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError(PROVIDER, path, DINO_RESNET50_URL)
    _check_torchvision_striding(model_backbone_bottom_up)
    raw = _unwrap(read_checkpoint_safely(path), path)
    ignored: list[str] = []
    unexpected: list[str] = []
    state: dict[str, Tensor] = {}
    for key, value in tensor_state_dict(raw, path, lambda _: False).items():
        name = _strip_prefixes(key)
        if name.startswith(IGNORED_PREFIXES) or name.endswith("num_batches_tracked"):
            ignored.append(key)
            continue
        mapped = torchvision_to_detectron2(name)
        if mapped is None:
            unexpected.append(key)
        else:
            state[mapped] = value
    expected = model_backbone_bottom_up.state_dict()
    unexpected += [key for key in state if key not in expected]
    missing = [
        key for key in expected if key not in state and not key.endswith("num_batches_tracked")
    ]
    misshaped = [
        f"{key} checkpoint {tuple(value.shape)} vs model {tuple(expected[key].shape)}"
        for key, value in state.items()
        if key in expected and tuple(value.shape) != tuple(expected[key].shape)
    ]
    if missing or unexpected or misshaped:
        raise CheckpointMismatchError(path, _message(missing, unexpected, misshaped))
    report = load_state_dict_checked(
        model_backbone_bottom_up, state, path=path, strict=False, ignored=tuple(ignored)
    )
    return report


def _check_torchvision_striding(model: ResNet) -> None:
    """Refuse a backbone that strides the 1×1 convs (DINO's weights expect the 3×3)."""
    for name in model.stage_names[1:]:
        first = getattr(model, name)[0]
        if tuple(first.conv1.stride) != (1, 1):
            raise ValueError(
                f"DINO ResNet-50 weights are torchvision-style (stride on the 3×3 conv2); build "
                f"the backbone with ResNet(stride_in_1x1=False) ({name}.0.conv1 has stride "
                f"{tuple(first.conv1.stride)})"
            )


def _unwrap(raw: object, path: Path) -> Mapping[Any, object]:
    """The state dict in a checkpoint: the first known wrapper holding a dict, or the file."""
    if not isinstance(raw, Mapping):
        raise CheckpointMismatchError(path, f"checkpoint is a {type(raw).__name__}, not a dict")
    for wrapper in WRAPPERS:
        inner = raw.get(wrapper)
        if isinstance(inner, Mapping):
            return _unwrap(inner, path)
    return raw


def _strip_prefixes(key: str) -> str:
    """``key`` without leading ``module.``/``backbone.``/``encoder.`` wrappers."""
    stripped = True
    while stripped:
        stripped = False
        for prefix in PREFIXES:
            if key.startswith(prefix):
                key = key.removeprefix(prefix)
                stripped = True
    return key


def _message(missing: list[str], unexpected: list[str], misshaped: list[str]) -> str:
    """One line naming the first mismatches of each kind."""
    parts = ["checkpoint does not fit the DINO ResNet-50 backbone"]
    for kind, keys in (("missing", missing), ("unexpected", unexpected), ("misshaped", misshaped)):
        if keys:
            listed = ", ".join(keys[:LIST_LIMIT])
            more = f" … and {len(keys) - LIST_LIMIT} more" if len(keys) > LIST_LIMIT else ""
            parts.append(f"{kind} keys ({len(keys)}): {listed}{more}")
    return "; ".join(parts)
