"""DepthG's inference head (Sick et al., CVPR 2024): STEGO's segmentation head on DINO features.

DepthG ("Unsupervised Semantic Segmentation Through Depth-Guided Feature Distillation and
Sampling") changes how STEGO (Hamilton et al., ICLR 2022) is *trained* — depth-guided feature
correlation and farthest-point sampling — not the network used at test time, which stays STEGO's:

* a frozen DINO ViT (here: any :class:`~vpsbench.cues.base.FeatureProvider` giving the last
  block's normalised patch tokens as a ``FeatureMap`` (C, h, w), C = 768 for ViT-B/8);
* a projection to the code space: a linear 1×1 conv (``net.cluster1.0``) plus, for the
  ``nonlinear`` projection, a 1×1 conv → ReLU → 1×1 conv branch (``net.cluster2.0/2``), summed;
* the code is upsampled (bilinear) to the output size (a grid of the ``dino`` cue's padded
  frame to that frame, then cropped: :meth:`DepthGHead.pixel_code`) and read by two probes: the
  cluster probe (``cluster_probe.clusters``, one centroid per pseudo-class; a pixel takes the
  centroid of largest cosine similarity) and the linear probe (``linear_probe``, a 1×1 conv;
  used only for the supervised linear evaluation).

Key names, the inference order (code → bilinear upsampling → probe → argmax, with optional
averaging over a horizontally flipped copy) and the Cityscapes ViT-B/8 settings (code dim 100,
27 classes) follow the published DepthG code (``src/modules.py``, ``src/train_segmentation.py``,
``src/eval_segmentation.py``, ``paper_reproduction.sh``). The dense CRF of the published
evaluation is not part of this head.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from vpsbench.cues.base import FeatureMap, MissingWeightsError
from vpsbench.models.checkpoints import (
    CheckpointMismatchError,
    load_state_dict_checked,
    read_checkpoint_safely,
    tensor_state_dict,
)

LabelMap = npt.NDArray[np.int32]
Probe = Literal["cluster", "linear"]

DEPTHG_WEIGHTS = (
    "https://drive.google.com/drive/folders/1vaSsTbpObcWygw1NJ8INltiM2PuKyPYj "
    "(DepthG's pretrained models, linked from https://github.com/leonsick/depthg)"
)
"""Where DepthG publishes its Lightning checkpoints."""

# Published checkpoint prefix -> this head's module name.
_CHECKPOINT_PREFIXES = {
    "net.cluster1.": "cluster1.",
    "net.cluster2.": "cluster2.",
    "cluster_probe.": "cluster_probe.",
    "linear_probe.": "linear_probe.",
}
# Modules of DepthG's depth-input featurizer (arch ``dino_depth``), which changes the features.
_UNSUPPORTED_PREFIXES = ("net.depth_downscaling.", "net.cross_attn.", "net.no_depth_embed.")


@dataclass(frozen=True)
class DepthGConfig:
    """Head sizes; defaults are DepthG's Cityscapes ViT-B/8 model (dim 100, 27 classes)."""

    feature_dim: int = 768
    code_dim: int = 100
    num_classes: int = 27
    extra_clusters: int = 0
    nonlinear_projection: bool = True

    @classmethod
    def tiny(cls) -> DepthGConfig:
        """Small sizes for tests."""
        return cls(feature_dim=12, code_dim=5, num_classes=4)

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Tensor]) -> DepthGConfig:
        """Sizes read off a published (``net.``-prefixed) state dict."""
        try:
            linear = state["net.cluster1.0.weight"]
            clusters = state["cluster_probe.clusters"]
            probe = state["linear_probe.weight"]
        except KeyError as error:
            raise KeyError(f"not a DepthG/STEGO state dict: no {error}") from None
        num_classes = int(probe.shape[0])
        return cls(
            feature_dim=int(linear.shape[1]),
            code_dim=int(linear.shape[0]),
            num_classes=num_classes,
            extra_clusters=int(clusters.shape[0]) - num_classes,
            nonlinear_projection="net.cluster2.0.weight" in state,
        )


class ClusterLookup(nn.Module):
    """STEGO's cluster probe: cosine similarity of each code vector to learned centroids."""

    def __init__(self, code_dim: int, num_clusters: int) -> None:
        super().__init__()
        self.clusters = nn.Parameter(torch.randn(num_clusters, code_dim))

    def forward(self, code: Tensor) -> Tensor:
        """Cosine similarities (N, clusters, H, W) of a code map (N, D, H, W)."""
        centroids = F.normalize(self.clusters, dim=1)
        return torch.einsum("ndhw,kd->nkhw", F.normalize(code, dim=1), centroids)


class DepthGHead(nn.Module):
    """Projection of DINO features to DepthG's code space and its cluster and linear probes."""

    def __init__(self, config: DepthGConfig | None = None) -> None:
        super().__init__()
        self.config = config or DepthGConfig()
        features, code = self.config.feature_dim, self.config.code_dim
        self.cluster1 = nn.Sequential(nn.Conv2d(features, code, kernel_size=1))
        self.cluster2: nn.Sequential | None = None
        if self.config.nonlinear_projection:
            self.cluster2 = nn.Sequential(
                nn.Conv2d(features, features, kernel_size=1),
                nn.ReLU(),
                nn.Conv2d(features, code, kernel_size=1),
            )
        self.cluster_probe = ClusterLookup(
            code, self.config.num_classes + self.config.extra_clusters
        )
        self.linear_probe = nn.Conv2d(code, self.config.num_classes, kernel_size=1)
        self.eval()

    def code(self, features: Tensor) -> Tensor:
        """Code map (N, code_dim, h, w) of DINO features (N, C, h, w): linear + nonlinear branch."""
        code: Tensor = self.cluster1(features)
        if self.cluster2 is not None:
            code = code + self.cluster2(features)
        return code

    def logits(self, code: Tensor, probe: Probe = "cluster") -> Tensor:
        """Per-pixel scores of a code map: cosine similarities (cluster) or linear-probe logits."""
        if probe == "cluster":
            similarities: Tensor = self.cluster_probe(code)
            return similarities
        if probe == "linear":
            linear: Tensor = self.linear_probe(code)
            return linear
        raise ValueError(f"unknown probe {probe!r}; use 'cluster' or 'linear'")

    def _feature_tensor(self, features: FeatureMap) -> Tensor:
        """A FeatureMap's array as a (1, C, h, w) tensor on the head's device, checked."""
        array = features.features
        if array.ndim != 3 or array.shape[0] != self.config.feature_dim:
            raise ValueError(
                f"features must be ({self.config.feature_dim}, h, w), got {array.shape}"
            )
        device = self.linear_probe.weight.device
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None].to(device)

    @staticmethod
    def padded_size(
        grid: tuple[int, int], stride: int, output_size: tuple[int, int]
    ) -> tuple[int, int] | None:
        """The padded frame a grid of ``stride``-px cells covers, or None if it spans the frame.

        A grid of ceil(H / stride) × ceil(W / stride) cells covers the frame padded at the bottom
        and right (the ``dino`` cue's layout); any other grid is taken to span the frame exactly
        (DepthG's own input, resized to a multiple of the patch size).
        """
        rows, cols = grid
        height, width = output_size
        if stride > 0 and (rows, cols) == (math.ceil(height / stride), math.ceil(width / stride)):
            return rows * stride, cols * stride
        return None

    @classmethod
    def pixel_code(cls, code: Tensor, stride: int, output_size: tuple[int, int]) -> Tensor:
        """Code (N, D, h, w) upsampled (bilinear) to the frame's pixels (N, D, H, W).

        A padded frame's grid is upsampled to that padded frame and cropped, so every cell stays
        on the pixels its features came from; a grid spanning the frame is upsampled to it, as
        DepthG does.
        """
        height, width = output_size
        padded = cls.padded_size((int(code.shape[-2]), int(code.shape[-1])), stride, output_size)
        if padded is None:
            return F.interpolate(code, size=output_size, mode="bilinear", align_corners=False)
        full = F.interpolate(code, size=padded, mode="bilinear", align_corners=False)
        return full[..., :height, :width]

    @torch.no_grad()
    def predict(
        self,
        features: FeatureMap,
        output_size: tuple[int, int],
        probe: Probe = "cluster",
        flipped_features: FeatureMap | None = None,
    ) -> LabelMap:
        """Pseudo-class map (H, W) int32: argmax of the probe on the code upsampled to the output.

        With ``flipped_features`` (features of the horizontally flipped frame), the code is the
        average of both codes, the flipped one flipped back, as in DepthG/STEGO's evaluation. A
        frame padded on the right puts the flipped frame's cells off the original grid: the
        codes are then averaged at the pixels, after upsampling.
        """
        code = self.code(self._feature_tensor(features))
        stride = features.stride
        if flipped_features is None:
            pixels = self.pixel_code(code, stride, output_size)
        else:
            flipped = self.code(self._feature_tensor(flipped_features))
            if flipped.shape != code.shape or flipped_features.stride != stride:
                raise ValueError(
                    f"flipped features {tuple(flipped.shape)} at stride {flipped_features.stride} "
                    f"differ from {tuple(code.shape)} at stride {stride}"
                )
            padded = self.padded_size(
                (int(code.shape[-2]), int(code.shape[-1])), stride, output_size
            )
            if padded is None or padded[1] == output_size[1]:  # cells align: DepthG's order
                pixels = self.pixel_code((code + flipped.flip(dims=[3])) / 2, stride, output_size)
            else:
                mirrored = self.pixel_code(flipped, stride, output_size).flip(dims=[3])
                pixels = (self.pixel_code(code, stride, output_size) + mirrored) / 2
        labels = self.logits(pixels, probe).argmax(dim=1)[0]
        return labels.cpu().numpy().astype(np.int32)

    def published_state_dict(self) -> dict[str, Tensor]:
        """This head's parameters under the published names (``net.cluster1.0.weight``, …)."""
        renamed = {value: key for key, value in _CHECKPOINT_PREFIXES.items()}
        published = {}
        for key, tensor in self.state_dict().items():
            prefix = next(own for own in renamed if key.startswith(own))
            published[renamed[prefix] + key[len(prefix) :]] = tensor
        return published


def read_depthg_state_dict(path: str | Path) -> dict[str, Tensor]:
    """The head's entries of a DepthG/STEGO Lightning ``.ckpt``, under their published names.

    The DINO backbone (``net.model.*``) and training-only modules (``train_cluster_probe``,
    ``decoder``, ``lhp_module``, losses) are dropped; a checkpoint of DepthG's depth-input
    featurizer (arch ``dino_depth``, whose features differ) is refused.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError("DepthG", path, DEPTHG_WEIGHTS)
    raw = read_checkpoint_safely(path)
    state = raw.get("state_dict", raw) if isinstance(raw, Mapping) else raw
    if not isinstance(state, Mapping):
        raise CheckpointMismatchError(path, f"no state dict inside (a {type(state).__name__})")
    unsupported = sorted(str(key) for key in state if str(key).startswith(_UNSUPPORTED_PREFIXES))
    if unsupported:
        raise CheckpointMismatchError(
            path,
            f"depth-input featurizer (arch 'dino_depth', e.g. {unsupported[0]}) is not "
            "supported; use a checkpoint of the 'dino' featurizer",
        )
    wanted = tuple(_CHECKPOINT_PREFIXES)
    return tensor_state_dict(state, path, lambda key: not key.startswith(wanted))


def depthg_backbone_arch(path: str | Path) -> str | None:
    """The DINO ViT the checkpoint's featurizer was trained on (``vitb8`` …), if it holds one.

    DepthG keeps its frozen backbone under ``net.model.*``; its patch embedding's width and patch
    size name the architecture, so the ``dino`` cue can be built to match the head.
    """
    from vpsbench.cues.vit import infer_arch

    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError("DepthG", path, DEPTHG_WEIGHTS)
    raw = read_checkpoint_safely(path)
    state = raw.get("state_dict", raw) if isinstance(raw, Mapping) else raw
    if not isinstance(state, Mapping):
        return None
    weight = state.get("net.model.patch_embed.proj.weight")
    return infer_arch({"patch_embed.proj.weight": weight}) if isinstance(weight, Tensor) else None


def _own_names(published: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Published names (``net.cluster1.0.weight``) to this head's (``cluster1.0.weight``)."""
    own = {}
    for key, tensor in published.items():
        prefix = next(p for p in _CHECKPOINT_PREFIXES if key.startswith(p))
        own[_CHECKPOINT_PREFIXES[prefix] + key[len(prefix) :]] = tensor
    return own


def load_depthg_checkpoint(head: DepthGHead, path: str | Path) -> None:
    """Load a DepthG/STEGO Lightning ``.ckpt`` (its ``state_dict``) into ``head``.

    Reads what :func:`read_depthg_state_dict` keeps; missing, unexpected (under the read
    prefixes) or misshaped keys are one ``CheckpointMismatchError``, an absent file a
    ``MissingWeightsError`` naming where DepthG publishes its weights.
    """
    published = read_depthg_state_dict(path)
    load_state_dict_checked(head, _own_names(published), path=Path(path), strict=True)


def depthg_head_from_checkpoint(path: str | Path) -> DepthGHead:
    """A head sized after the checkpoint (code dim, classes, projection), weights loaded."""
    published = read_depthg_state_dict(path)
    try:
        config = DepthGConfig.from_state_dict(published)
    except KeyError as error:
        raise CheckpointMismatchError(path, str(error.args[0])) from None
    head = DepthGHead(config)
    load_state_dict_checked(head, _own_names(published), path=Path(path), strict=True)
    return head
