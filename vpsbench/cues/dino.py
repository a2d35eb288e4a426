"""DINO features (Caron et al., ICCV 2021): the dense cue VideoCUPS clusters into pseudo-classes.

VideoCUPS (paper Sec. 3.1) distils DINO ViT features (via DepthG) and clusters them with k-means
into 27 semantic pseudo-classes. The ``dino`` provider returns the last-layer patch tokens (or
keys) of a DINO ViT-S/8, S/16, B/8 or B/16 as a :class:`FeatureMap`. Weights come from a file
(the official DINO release or timm's ``model.safetensors``) or, when ``weights`` is not given,
from the Hugging Face Hub (timm's DINO repositories) via ``huggingface_hub``.

**Grid.** A feature cell covers ``stride × stride`` frame pixels: ``stride`` is the patch size at
the native resolution; with ``resolution=R`` (default 320) it is ``round(short_side · p / R)``, so
the network sees about R pixels on the frame's short side. The frame is padded (edge pixels) to
``ceil(H / stride) · stride`` × ``ceil(W / stride) · stride`` and resized by ``p / stride``, so
cell (i, j) is exactly frame pixels ``[i·stride, (i+1)·stride) × [j·stride, (j+1)·stride)``.
``image_features(image)`` runs the network on the given pixels at the patch size (stride = p,
no resizing): what VideoCUPS' sliding windows and half-resolution pass feed it, as in CUPS.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import ClassVar, cast

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the PyTorch convention

from vpsbench.cues.base import (
    FeatureMap,
    FeatureProvider,
    FloatImage,
    Image,
    MissingWeightsError,
    VideoClip,
    positive_int_option,
    register_cue,
)
from vpsbench.cues.checkpoints import (
    image_to_tensor,
    load_state_checked,
    read_checkpoint,
    resolve_device,
)
from vpsbench.cues.vit import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    VIT_CONFIGS,
    Facet,
    VisionTransformer,
    canonical_arch,
    canonical_vit_state,
    infer_arch,
)
from vpsbench.errors import InputError, VpsbenchError

DEFAULT_ARCH = "vits8"
HUB_REPOS = {
    "vits8": "timm/vit_small_patch8_224.dino",
    "vits16": "timm/vit_small_patch16_224.dino",
    "vitb8": "timm/vit_base_patch8_224.dino",
    "vitb16": "timm/vit_base_patch16_224.dino",
}
HUB_FILENAME = "model.safetensors"
_OFFICIAL_NAMES = {
    "vits8": "dino_deitsmall8_pretrain",
    "vits16": "dino_deitsmall16_pretrain",
    "vitb8": "dino_vitbase8_pretrain",
    "vitb16": "dino_vitbase16_pretrain",
}


def official_url(arch: str) -> str:
    """Where the DINO authors publish the backbone weights of ``arch``."""
    name = _OFFICIAL_NAMES[arch]
    return f"https://dl.fbaipublicfiles.com/dino/{name}/{name}.pth"


def published(arch: str) -> str:
    """Both places ``arch``'s weights are published, for error messages."""
    return f"{official_url(arch)} or https://huggingface.co/{HUB_REPOS[arch]}"


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def download_from_hub(arch: str, cache_dir: str | Path | None = None) -> Path:
    """Local path of ``arch``'s timm DINO weights from the Hub (cache first); one-line errors."""
    repo = HUB_REPOS[arch]
    try:
        from huggingface_hub import hf_hub_download
    except ModuleNotFoundError:
        raise MissingWeightsError("dino", None, published(arch)) from None
    offline = _hub_offline()
    try:
        local = hf_hub_download(
            repo_id=repo,
            filename=HUB_FILENAME,
            cache_dir=None if cache_dir is None else str(cache_dir),
            local_files_only=offline,
        )
    except Exception as error:  # huggingface_hub raises many types (offline, HTTP, cache)
        if offline:
            reason = "HF_HUB_OFFLINE is set and the file is not in the local cache"
        else:
            text = str(error).strip()
            first_line = text.splitlines()[0] if text else ""
            reason = f"{type(error).__name__}: {first_line}".rstrip(": ")
        raise VpsbenchError(
            f"dino: cannot get {repo}/{HUB_FILENAME} from the Hugging Face Hub ({reason}); "
            f"download {official_url(arch)} and pass weights=PATH"
        ) from None
    return Path(local)


def load_dino(
    arch: str | None = None,
    weights: str | Path | None = None,
    cache_dir: str | Path | None = None,
) -> VisionTransformer:
    """A DINO ViT loaded from ``weights`` (arch read off the file if not given) or the Hub."""
    chosen = canonical_arch(arch) if arch else None
    if weights is None or str(weights) == "":
        chosen = chosen or DEFAULT_ARCH
        path = download_from_hub(chosen, cache_dir)
    else:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise MissingWeightsError("dino", path, published(chosen or DEFAULT_ARCH))
    # DINO's training checkpoints (checkpoint.pth, *_full_checkpoint.pth) pickle main_dino.py's
    # argparse.Namespace as "args": allow that plain attribute holder, and still nothing that runs.
    with torch.serialization.safe_globals([argparse.Namespace]):
        entries = read_checkpoint(path)
    state = canonical_vit_state(entries)
    inferred = infer_arch(state)
    if chosen and inferred and chosen != inferred:
        raise InputError(path, f"holds DINO {inferred} weights, not {chosen} (set arch={inferred})")
    chosen = chosen or inferred or DEFAULT_ARCH
    model = VisionTransformer(VIT_CONFIGS[chosen])
    load_state_checked(model, state, str(path))
    return model.eval()


@register_cue
class DinoProvider(FeatureProvider):
    """Dense last-layer DINO ViT features (tokens or keys) of a frame, one vector per patch."""

    name: ClassVar[str] = "dino"
    description: ClassVar[str] = (
        "DINO ViT (ICCV 2021) last-layer patch tokens or keys; options arch (vits8, vits16, "
        "vitb8, vitb16), weights (file; default: Hugging Face Hub), device, resolution, facet"
    )
    needs_weights: ClassVar[bool] = True

    def __init__(
        self,
        arch: str | None = None,
        weights: str | Path | None = None,
        device: str = "auto",
        resolution: int | str | None = 320,
        facet: str = "tokens",
        cache_dir: str | Path | None = None,
    ) -> None:
        if facet not in ("tokens", "keys"):
            raise VpsbenchError(f"option facet={facet!r} must be tokens or keys")
        self.facet: Facet = "tokens" if facet == "tokens" else "keys"
        native = resolution is None or str(resolution).lower() in {"", "native", "none"}
        self.resolution = None if native else positive_int_option(resolution, "resolution")
        self.device = resolve_device(str(device))
        self.model = load_dino(arch, weights, cache_dir).to(self.device)
        self.patch_size = self.model.patch_size

    def stride_for(self, height: int, width: int) -> int:
        """Frame pixels per feature cell for a ``height × width`` frame."""
        if self.resolution is None:
            return self.patch_size
        return max(1, round(min(height, width) * self.patch_size / self.resolution))

    def _network_input(self, image: Image | FloatImage, stride: int) -> torch.Tensor:
        height, width = int(image.shape[0]), int(image.shape[1])
        rows, cols = math.ceil(height / stride), math.ceil(width / stride)
        tensor = image_to_tensor(cast(Image, image), self.device)  # float images: same / 255
        tensor = F.pad(
            tensor, (0, cols * stride - width, 0, rows * stride - height), mode="replicate"
        )
        size = (rows * self.patch_size, cols * self.patch_size)
        if size != (rows * stride, cols * stride):
            shrinking = stride > self.patch_size
            tensor = F.interpolate(
                tensor, size=size, mode="bilinear", align_corners=False, antialias=shrinking
            )
        mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)
        return (tensor - mean) / std

    def features(self, clip: VideoClip, t: int) -> FeatureMap:
        """Features (D, ceil(H/stride), ceil(W/stride)) of frame ``t`` (``resolution`` applies)."""
        image = clip.image(t)
        return self._encode(image, self.stride_for(int(image.shape[0]), int(image.shape[1])))

    def image_features(self, image: Image | FloatImage) -> FeatureMap:
        """Features of ``image`` at the patch size on its own pixels (``resolution`` is ignored)."""
        return self._encode(image, self.patch_size)

    def _encode(self, image: Image | FloatImage, stride: int) -> FeatureMap:
        """The network's (D, ceil(H/stride), ceil(W/stride)) map of ``image`` at ``stride`` px."""
        with torch.inference_mode():
            dense = self.model(self._network_input(image, stride), facet=self.facet)
        array = np.ascontiguousarray(dense[0].float().cpu().numpy(), dtype=np.float32)
        return FeatureMap(features=array, stride=stride)
