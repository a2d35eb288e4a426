"""Flow providers ``raft`` and ``smurf``: the RAFT network with RAFT's or SMURF's weights.

VideoCUPS (paper Sec. 3.1) takes its optical flow from SMURF (Stone et al., CVPR 2021), an
unsupervised training of RAFT (Teed & Deng, ECCV 2020); the network is
:mod:`vpsbench.cues.raft_model`. ``weights`` is a PyTorch state dict in the official RAFT naming
(RAFT's released ``.pth`` files load as they are); a SMURF TensorFlow checkpoint is converted
on the fly when ``tensorflow`` is installed, else once with ``python -m
vpsbench.cues.raft_model CKPT smurf.pt``. The context encoder's norm (batch for RAFT, instance for
SMURF) is read off the weights. Frames are replicate-padded evenly to a multiple of 8 (at least
128 per side, so the coarsest correlation level keeps two cells) and the flow cropped back.
Options: ``weights`` (path), ``iterations`` (refinement steps; 12, SMURF's default — RAFT's
own evaluation used 24–32), ``device`` (``auto``: the GPU when there is one; ``cpu``; ``cuda[:N]``).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from vpsbench.cues.base import (
    Flow,
    FlowProvider,
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
    tensors_only,
)
from vpsbench.cues.raft_model import (
    Raft,
    config_for_state_dict,
    is_tensorflow_checkpoint,
    pad_to_raft_size,
    raft_state_dict,
    read_smurf_checkpoint,
)
from vpsbench.errors import InputError

RAFT_WEIGHTS = (
    "github.com/princeton-vl/RAFT (download_models.sh: raft-things.pth, raft-kitti.pth, "
    "raft-sintel.pth)"
)
SMURF_WEIGHTS = (
    "gs://gresearch/smurf/kitti and gs://gresearch/smurf/sintel (TensorFlow checkpoints, "
    "github.com/google-research/google-research/tree/master/smurf; convert with "
    "`python -m vpsbench.cues.raft_model CKPT smurf.pt`, which needs tensorflow)"
)


#: A key only RAFT-small's weights hold (its update block has a plain 3×3 ConvGRU).
RAFT_SMALL_KEY = "update_block.gru.convz.weight"


def read_raft_weights(path: Path) -> dict[str, torch.Tensor]:
    """RAFT-named weights from a PyTorch checkpoint, or converted from SMURF's TF checkpoint."""
    if is_tensorflow_checkpoint(path):
        return read_smurf_checkpoint(path)
    state = raft_state_dict(tensors_only(read_checkpoint(path)))
    if RAFT_SMALL_KEY in state:
        # raft-small.pth ships beside the large models: name it rather than its missing keys.
        raise InputError(
            path,
            "these are RAFT-small weights; the raft provider runs RAFT-large "
            "(use raft-things.pth, raft-sintel.pth or raft-kitti.pth)",
        )
    return state


@register_cue
class RaftFlow(FlowProvider):
    """RAFT optical flow (Teed & Deng, ECCV 2020) with weights in RAFT's naming."""

    name = "raft"
    description = "RAFT (Teed & Deng 2020) in PyTorch; RAFT or converted SMURF weights"
    needs_weights = True
    published: ClassVar[str] = RAFT_WEIGHTS

    def __init__(
        self, weights: str | Path | None = None, iterations: int = 12, device: str = "auto"
    ) -> None:
        path = None if weights is None else Path(weights)
        if path is None or not (path.exists() or is_tensorflow_checkpoint(path)):
            raise MissingWeightsError(self.name, path, self.published)
        self.iterations = positive_int_option(iterations, "iterations")
        self.device = resolve_device(device)
        state = read_raft_weights(path)
        self.model = Raft(config_for_state_dict(state))
        load_state_checked(self.model, state, str(path))
        self.model.eval().to(self.device)

    def flow(self, clip: VideoClip, source: int, target: int) -> Flow:
        """RAFT flow from frame ``source`` to frame ``target`` (float32, H×W×2)."""
        height, width = clip.image(source).shape[:2]
        min_size = self.model.config.min_input_size
        with torch.inference_mode():
            image1, (top, _, left, _) = pad_to_raft_size(
                image_to_tensor(clip.image(source), self.device), min_size
            )
            image2, _ = pad_to_raft_size(image_to_tensor(clip.image(target), self.device), min_size)
            flow = self.model(image1, image2, self.iterations)
        cropped = flow[0, :, top : top + height, left : left + width].permute(1, 2, 0)
        return np.ascontiguousarray(cropped.cpu().numpy(), dtype=np.float32)


@register_cue
class SmurfFlow(RaftFlow):
    """SMURF (Stone et al., CVPR 2021): RAFT trained without labels — VideoCUPS' flow."""

    name = "smurf"
    description = "SMURF (Stone et al. 2021): unsupervised RAFT, weights from google-research"
    published = SMURF_WEIGHTS
