"""MaskTrack R-CNN's tracking branch (Yang et al., 2019), its loss and inference-time association.

VideoCUPS (paper Sec. 3.2) trains a Panoptic Cascade *MaskTrack* R-CNN: besides boxes, classes
and masks, every RoI gets an embedding from :class:`TrackHead` (the same head is applied to the
key frame's and the reference frame's RoIs).

* Training (:func:`tracking_loss`): for a key RoI the logits are ``[0, <e, r_1>, …, <e, r_M>]``
  — a constant-zero "new object" dummy followed by dot products with the reference embeddings —
  and the target is the 1-based index of the reference with the same track id, or 0 (new).
* Inference (:class:`TrackMemory`): a detection is scored against every live track with
  MaskTrack's composite ``log softmax([0, sims])[track] + w_score·log(score) + w_iou·IoU +
  w_class·[same class]``; the "new" option is MaskTrack's dummy track, of IoU 0 and the
  detection's own class: ``log softmax(...)[0] + w_score·log(score) + w_class``.
  Assignment is one-to-one by the Hungarian algorithm on these scores (each detection also has
  its own private "new" column), which — unlike MaskTrack's per-detection argmax — can never give
  two detections of a frame the same id.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn

_INFEASIBLE = -1e12
"""Score of forbidden assignment entries (finite, so the Hungarian solver always has a solution)."""
_MIN_SCORE = 1e-12
"""Detection scores are clamped to this before the log, so a zero score stays finite."""


class TrackHead(nn.Module):
    """MaskTrack R-CNN's tracking branch: optional 3×3 convs, flatten, two FC layers → embedding."""

    def __init__(
        self,
        in_channels: int,
        resolution: int,
        embed_dim: int = 1024,
        *,
        num_convs: int = 0,
        conv_dim: int = 256,
        fc_dim: int = 1024,
        norm_scale: float | None = None,
    ) -> None:
        super().__init__()
        # ``norm_scale`` (our addition, off by default as in MaskTrack): L2-normalise embeddings
        # and scale them, so a dot product is ``norm_scale · cosine``. Raw dot products are
        # unbounded and made the tracking loss diverge when training from scratch at lr 1e-3.
        self.norm_scale = norm_scale
        # MaskTrack R-CNN's default is no convolutions and two FCs (1024 hidden units) on 7×7
        # RoIAlign features, with a ReLU between the FCs but not after the last one.
        convs: list[nn.Module] = []
        channels = in_channels
        for _ in range(num_convs):
            convs += [nn.Conv2d(channels, conv_dim, 3, padding=1), nn.ReLU(inplace=True)]
            channels = conv_dim
        self.convs = nn.Sequential(*convs)
        self.fc1 = nn.Linear(channels * resolution * resolution, fc_dim)
        self.fc2 = nn.Linear(fc_dim, embed_dim)
        self.in_channels = in_channels
        self.resolution = resolution
        self.embed_dim = embed_dim
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.01)  # MaskTrack's FC initialisation
                nn.init.zeros_(module.bias)

    def forward(self, pooled: Tensor) -> Tensor:
        """Embeddings ``(R, embed_dim)`` of RoIAligned features ``(R, C, res, res)``."""
        expected = (self.in_channels, self.resolution, self.resolution)
        if pooled.dim() != 4 or tuple(pooled.shape[1:]) != expected:
            raise ValueError(f"TrackHead expects (R, {expected}), got {tuple(pooled.shape)}")
        x: Tensor = self.convs(pooled).flatten(1)
        embeddings: Tensor = self.fc2(F.relu(self.fc1(x)))
        if self.norm_scale is not None:
            embeddings = F.normalize(embeddings, dim=1) * math.sqrt(self.norm_scale)
        return embeddings


def tracking_loss(
    key_embeddings: Tensor,
    key_track_ids: Tensor,
    ref_embeddings: Tensor,
    ref_track_ids: Tensor,
) -> Tensor:
    """MaskTrack's cross-entropy over ``[new] + references`` for every key RoI, mean over keys.

    Track id 0 marks a key RoI without a track (target "new"); a key whose id is absent from the
    references is also "new". If several references share an id the first one is the target.
    Always connected to both embedding tensors, so DDP sees a gradient for every parameter even
    when there are no key RoIs or no references.
    """
    num_keys = key_embeddings.shape[0]
    connection = 0.0 * (key_embeddings.sum() + ref_embeddings.sum())
    if num_keys == 0:
        return connection
    similarities = key_embeddings @ ref_embeddings.transpose(0, 1)  # (R, M)
    dummy = similarities.new_zeros((num_keys, 1))
    logits = torch.cat([dummy, similarities], dim=1)
    keys = key_track_ids.to(torch.int64).view(-1, 1)
    refs = ref_track_ids.to(device=keys.device, dtype=torch.int64).view(1, -1)
    same = (keys == refs) & (keys > 0)  # (R, M)
    if same.shape[1] == 0:
        targets = torch.zeros(num_keys, dtype=torch.int64, device=logits.device)
    else:
        first = same.to(torch.int64).argmax(dim=1)  # first True per row (0 if none)
        targets = torch.where(same.any(dim=1), first + 1, torch.zeros_like(first))
    loss = F.cross_entropy(logits, targets, reduction="mean")
    return loss + connection if ref_embeddings.shape[0] == 0 else loss


@dataclass(frozen=True)
class TrackerConfig:
    """Association hyper-parameters; the defaults are MaskTrack R-CNN's (``match_coeff``)."""

    w_embedding: float = 1.0
    """Weight of the embedding term (log-softmax over ``[new] + live tracks``)."""
    w_score: float = 1.0
    """Weight of ``log(detection score)`` (MaskTrack ``match_coeff[0]``)."""
    w_iou: float = 2.0
    """Weight of the IoU with the track's last box (MaskTrack ``match_coeff[1]``)."""
    w_class: float = 10.0
    """Bonus for the same class as the track's last class (MaskTrack ``match_coeff[2]``); the
    "new" option always gets it, so a class change starts a new track unless the other terms
    outweigh it."""
    match_threshold: float = -math.inf
    """A detection–track pair scoring below this is never matched (MaskTrack: no threshold)."""
    max_age: int | None = None
    """Frames a track may go undetected and still be matched; None keeps it (MaskTrack)."""
    embedding_update: Literal["replace", "ema"] = "replace"
    """A matched track's embedding: the new one (MaskTrack) or an exponential moving average."""
    ema_momentum: float = 0.5
    """With ``"ema"``: ``new = momentum · old + (1 − momentum) · detection``."""

    def __post_init__(self) -> None:
        if self.max_age is not None and self.max_age < 0:
            raise ValueError(f"max_age must be >= 0 or None, got {self.max_age}")
        if self.embedding_update not in ("replace", "ema"):
            raise ValueError(f"unknown embedding_update {self.embedding_update!r}")
        if not 0.0 <= self.ema_momentum <= 1.0:
            raise ValueError(f"ema_momentum must be in [0, 1], got {self.ema_momentum}")


@dataclass
class _Track:
    """One live track: what association compares new detections with."""

    embedding: Tensor  # (D,)
    box: Tensor  # (4,) x1, y1, x2, y2
    label: int
    last_frame: int


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise IoU ``(N, M)`` of ``x1, y1, x2, y2`` boxes (0 where the union is empty)."""
    area1 = (boxes1[:, 2] - boxes1[:, 0]).clamp(min=0) * (boxes1[:, 3] - boxes1[:, 1]).clamp(min=0)
    area2 = (boxes2[:, 2] - boxes2[:, 0]).clamp(min=0) * (boxes2[:, 3] - boxes2[:, 1]).clamp(min=0)
    top_left = torch.maximum(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = torch.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    wh = (bottom_right - top_left).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = area1[:, None] + area2[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))


class TrackMemory:
    """Online track association over one video, one :meth:`associate` call per frame.

    Tracks are kept in id order; a track last detected at frame ``f`` can still be matched at
    frame ``t`` while ``t - f - 1 <= max_age`` (frames missed in between), else it is dropped for
    good (at the end of frame ``f + max_age + 1``). Ids start at 1, increase by one per new
    track and are never reused within a video; new tracks of one frame get their ids in
    detection order. Everything is deterministic.
    """

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self._tracks: dict[int, _Track] = {}
        self._next_id = 1
        self._frame = -1

    def reset(self) -> None:
        """Forget every track and restart ids at 1 (call at the start of each video)."""
        self._tracks = {}
        self._next_id = 1
        self._frame = -1

    @property
    def live_ids(self) -> tuple[int, ...]:
        """Ids of the tracks that can still be matched, ascending."""
        return tuple(self._tracks)

    @property
    def frame_index(self) -> int:
        """Index of the last associated frame within the video (-1 before the first)."""
        return self._frame

    def associate(
        self, boxes: Tensor, scores: Tensor, classes: Tensor, embeddings: Tensor
    ) -> Tensor:
        """Track ids ``(N,)`` int64 (>= 1) of one frame's detections; updates the memory."""
        self._frame += 1
        num = boxes.shape[0]
        if not (scores.shape[0] == classes.shape[0] == embeddings.shape[0] == num):
            raise ValueError("boxes, scores, classes and embeddings need the same length")
        boxes = boxes.detach().to(device="cpu", dtype=torch.float32).reshape(num, 4)
        scores = scores.detach().to(device="cpu", dtype=torch.float32)
        labels = classes.detach().to(device="cpu", dtype=torch.int64)
        embeddings = (
            embeddings.detach()
            .to(device="cpu", dtype=torch.float32)
            .reshape(num, embeddings.shape[-1])
        )
        ids = [0] * num
        track_ids = list(self._tracks)
        if num and track_ids:
            assignment = self._assign(boxes, scores, labels, embeddings, track_ids)
        else:
            assignment = [None] * num
        for det, track_id in enumerate(assignment):
            if track_id is None:
                track_id = self._next_id
                self._next_id += 1
                self._tracks[track_id] = _Track(
                    embeddings[det].clone(), boxes[det].clone(), int(labels[det]), self._frame
                )
            else:
                self._update(self._tracks[track_id], boxes[det], int(labels[det]), embeddings[det])
            ids[det] = track_id
        self._expire()
        return torch.tensor(ids, dtype=torch.int64)

    def _expire(self) -> None:
        """Drop tracks missed for more than ``max_age`` frames, counting the current one."""
        max_age = self.config.max_age
        if max_age is None:
            return
        self._tracks = {
            track_id: track
            for track_id, track in self._tracks.items()
            if self._frame - track.last_frame <= max_age
        }

    def _assign(
        self,
        boxes: Tensor,
        scores: Tensor,
        labels: Tensor,
        embeddings: Tensor,
        track_ids: list[int],
    ) -> list[int | None]:
        """Hungarian assignment of detections to live tracks or to their own "new" option."""
        config = self.config
        tracks = [self._tracks[track_id] for track_id in track_ids]
        memory = torch.stack([track.embedding for track in tracks])  # (T, D)
        track_boxes = torch.stack([track.box for track in tracks])  # (T, 4)
        track_labels = torch.tensor([track.label for track in tracks], dtype=torch.int64)
        similarities = embeddings @ memory.transpose(0, 1)  # (N, T)
        logits = torch.cat([similarities.new_zeros((len(boxes), 1)), similarities], dim=1)
        log_prob = F.log_softmax(logits.double(), dim=1)
        score_term = config.w_score * torch.log(scores.double().clamp(min=_MIN_SCORE))
        # The "new" column is MaskTrack's dummy: IoU 0 and the class term of a same-class match.
        new_scores = config.w_embedding * log_prob[:, 0] + score_term + config.w_class  # (N,)
        match_scores = (
            config.w_embedding * log_prob[:, 1:]
            + score_term[:, None]
            + config.w_iou * box_iou(boxes, track_boxes).double()
            + config.w_class * (labels[:, None] == track_labels[None, :]).double()
        )  # (N, T)
        match = match_scores.nan_to_num(nan=_INFEASIBLE, neginf=_INFEASIBLE).numpy()
        match[match < config.match_threshold] = _INFEASIBLE
        num, num_tracks = match.shape
        own_new = np.full((num, num), _INFEASIBLE)
        np.fill_diagonal(own_new, new_scores.nan_to_num(neginf=_INFEASIBLE / 2).numpy())
        rows, cols = linear_sum_assignment(np.concatenate([match, own_new], axis=1), maximize=True)
        assignment: list[int | None] = [None] * num
        for row, col in zip(rows.tolist(), cols.tolist(), strict=True):
            if col < num_tracks and match[row, col] > _INFEASIBLE:
                assignment[row] = track_ids[col]
        return assignment

    def _update(self, track: _Track, box: Tensor, label: int, embedding: Tensor) -> None:
        """Refresh a matched track with its new detection."""
        if self.config.embedding_update == "ema":
            momentum = self.config.ema_momentum
            track.embedding = momentum * track.embedding + (1.0 - momentum) * embedding
        else:
            track.embedding = embedding.clone()
        track.box = box.clone()
        track.label = label
        track.last_frame = self._frame
