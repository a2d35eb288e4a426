"""Training of the semantic model S's head (paper Sec. 3.1): DepthG's contrastive distillation.

The paper distils DINO features into a low-dimensional code with DepthG's objective (Sick et al.,
CVPR 2024: STEGO's correspondence distillation plus a depth-guided feature correlation) and then
clusters the codes with stochastic cosine k-means into c_p = 27 pseudo-classes. This module
trains :class:`~vpsbench.models.depthg.DepthGHead` (its projection ``cluster1`` + ``cluster2``
and its cluster probe) on whatever :class:`~vpsbench.cues.base.FeatureProvider` the
pseudo-label stage uses. With ``features=dino`` and DINO weights that is DepthG's setting. On
weight-free runs (``synthetic``) the provider is ``handcrafted``: the head then learns a
projection of hand-made colour/texture/position features with DepthG's loss; it is *not* DepthG
(there is no SSL feature to distil), only the same training machinery on the features at hand.

**Objective** (:func:`depthg_loss`; upstream ``ContrastiveCorrelationLoss`` in
``src/modules.py`` and ``LitUnsupervisedSegmenter.training_step`` in
``src/train_segmentation.py``). For a batch of feature maps ``f`` (the frozen backbone's, after
the featurizer's channel dropout), their codes ``c``, the feature maps and codes of one
nearest-neighbour image per image (``f⁺``, ``c⁺``) and depth ``d``: ``feature_samples²`` points
are sampled per image (uniformly, or by farthest-point sampling of the depth point cloud), and
for each pair of sampled points the code similarity ``cos(c_i, c_j)`` (clamped at 0) is pushed up
where the feature similarity ``cos(f_i, f_j)`` exceeds a shift and down where it does not:
``L = −clamp(cos c, 0) · (cos f − shift)``, averaged, for three pairings — an image with itself
(``pos_intra``), with its neighbour (``pos_inter``) and with ``neg_samples`` random other images
of the batch (``neg_inter``) — plus DepthG's depth term, which replaces ``cos f`` by the
correlation of the unit-normalised depth map resized to n × n (``depth_feat``). The loss is
their weighted sum; the cluster probe is trained on the detached codes with its own loss (minus
the mean best cosine similarity). DepthG's linear probe needs human labels (an evaluation device)
and is left out; it sees detached codes only, so leaving it out changes nothing else. The
cluster probe is trained as DepthG does, but S's pseudo-classes come from cosine k-means on the
codes (``fit_pseudo_classes``), as for the raw features.

Facts of the published objective kept for equality (``tests/equivalence/test_depthg_loss.py``):
the sampled grid is read transposed (``coords.permute(0, 2, 1, 3)`` into ``grid_sample``);
unit-normalising a one-channel depth gives its sign, so the depth correlation is 1 wherever both
depths are > 0 — the term pulls all sampled codes of an image together with weight
``depth_feat_weight · (1 − depth_feat_shift)``, decayed over training; farthest-point sampling
keeps the sampled points in raster order and hands (row, column) fractions to ``grid_sample``,
which reads them as (x, y); the point cloud's field of view is ``2·tan(90 / 2)`` with 90 taken in
radians.

**Published configuration** (defaults of :class:`DepthGLossConfig` and
:class:`DepthGTrainingConfig`): DepthG's Cityscapes ViT-B/8 run, ``paper_reproduction.sh``
("Cityscapes ViT-B") over ``src/configs/local_config.yml`` of leonsick/depthg @ 0316879.

**Schedule in batches.** DepthG's Lightning module steps three optimizers per batch (net, linear
probe, cluster probe) under manual optimisation, and Lightning (2.0.1 in DepthG's
``requirements.txt``) counts each ``step()`` in its global step (Lightning issue #17958):
``max_steps: 7000`` ends training after ⌈7000 / 3⌉ = 2334 batches, and the depth-weight decay at
``global_step % 400 == 0`` (global step 3t at batch t; 3t ≡ 0 mod 400 ⇔ t ≡ 0 mod 400) happens
every 400 batches, after that batch's loss.

**Data.** A view is a square crop of a frame resized to ``resolution`` px: DepthG trains on five
crops (corners and centre) of side ``crop_ratio · min(H, W)`` of every image (``crop_type:
five``, ``crop_ratio: .5``, ``res: 224``). Features of the views are computed once (the backbone
is frozen and DepthG's training views are not augmented) and kept in memory; ``frames`` bounds
their number. Positives are DepthG's precomputed nearest neighbours (``precompute_knns.py``):
each view's features averaged over the cells and unit-normalised, cosine similarity to every
view, the top ``num_neighbors + 1`` kept; a batch element's positive is one of ranks
1…``num_neighbors`` drawn uniformly (rank 0 is normally the view itself), as its
``ContrastiveSegDataset`` does. Depth is the stage's depth provider's map on the same crop.

**Resumable.** :func:`train_depthg_head` checkpoints every ``checkpoint_every`` batches (head,
both Adam states, torch and numpy RNG states, batch order) and continues from the last
checkpoint bit for bit; the finished head is written as a DepthG-style checkpoint that
:func:`vpsbench.models.depthg.depthg_head_from_checkpoint` reads. Sample grids and negative
permutations are drawn from torch's CPU generator in DepthG's order (so, on the CPU, the same
seed gives upstream's draws); on a GPU upstream draws the grids there, so only determinism, not
upstream's random stream, carries over. :func:`code_extractor` turns
the stage's feature extractor into one of codes, so k-means and Eq. 2's inference run on them.
"""

from __future__ import annotations

import copy
import io
import itertools
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from vpsbench.cues.base import FeatureMap, FeatureProvider, FloatImage, Image, VideoClip
from vpsbench.errors import VpsbenchError
from vpsbench.formats.atomic import atomic_write_bytes
from vpsbench.models.depthg import DepthGConfig, DepthGHead, depthg_head_from_checkpoint

FeatureExtractor = Callable[[Image | FloatImage], FeatureMap]
DepthSampling = Literal["none", "fps"]
FINAL_CHECKPOINT = "depthg.ckpt"
RESUME_CHECKPOINT = "last.pt"
_UNIT_EPS = 1e-10  # DepthG's norm(): F.normalize(t, dim=1, eps=1e-10)
_NO_CLAMP = -9999.0  # DepthG's lower clamp without zero_clamp
_STABLE_MAX = 0.8  # DepthG's upper clamp with stabalize
_FOV = 90.0  # DepthG's farthest-point sampling: depth2points(depth, fov=90), far = 5
_FAR = 5.0


@dataclass(frozen=True)
class DepthGLossConfig:
    """The active terms of DepthG's objective; defaults: its published Cityscapes run.

    Sources: ``paper_reproduction.sh`` (Cityscapes ViT-B) sets the weights and shifts,
    ``pointwise=False`` and ``depth_sampling=none``; ``src/configs/local_config.yml`` the rest
    (``feature_samples: 11``, ``neg_samples: 5``, ``zero_clamp: True``, ``stabalize: False``,
    ``correspondence_weight: 1.0``; ``rec_weight``, ``aug_alignment_weight`` and ``crf_weight``
    are 0 there, so those terms are inactive and not implemented).
    """

    feature_samples: int = 11  # local_config.yml
    neg_samples: int = 5  # local_config.yml
    pos_intra_weight: float = 0.95  # paper_reproduction.sh, Cityscapes
    pos_intra_shift: float = 0.39  # paper_reproduction.sh, Cityscapes
    pos_inter_weight: float = 1.02  # paper_reproduction.sh, Cityscapes
    pos_inter_shift: float = 0.25  # paper_reproduction.sh, Cityscapes
    neg_inter_weight: float = 0.57  # paper_reproduction.sh: 0.5700000000000001
    neg_inter_shift: float = 0.26  # paper_reproduction.sh, Cityscapes
    depth_feat_weight: float = 0.09  # paper_reproduction.sh (initial value, decayed)
    depth_feat_shift: float = 0.03  # paper_reproduction.sh (initial value, decayed)
    correspondence_weight: float = 1.0  # local_config.yml
    pointwise: bool = False  # paper_reproduction.sh, Cityscapes ("For Cityscapes set False")
    zero_clamp: bool = True  # local_config.yml
    stabilize: bool = False  # local_config.yml's ``stabalize``
    depth_sampling: DepthSampling = "none"  # paper_reproduction.sh, Cityscapes: uniform

    def __post_init__(self) -> None:
        if self.feature_samples < 1 or self.neg_samples < 0:
            raise ValueError("feature_samples must be >= 1 and neg_samples >= 0")
        if self.depth_sampling not in ("none", "fps"):
            raise ValueError(f"depth_sampling must be 'none' or 'fps', not {self.depth_sampling!r}")


@dataclass(frozen=True)
class DepthGLoss:
    """The loss terms (each a mean, as DepthG logs them) and the weighted total."""

    pos_intra: Tensor
    pos_inter: Tensor
    neg_inter: Tensor
    depth_feat: Tensor
    cluster: Tensor
    correspondence: Tensor
    total: Tensor


def _unit(values: Tensor) -> Tensor:
    """Unit vectors along the channel axis (DepthG's eps)."""
    return F.normalize(values, dim=1, eps=_UNIT_EPS)


def _pairwise(first: Tensor, second: Tensor) -> Tensor:
    """Dot products of every point of ``first`` with every point of ``second``: (N, h, w, i, j)."""
    return torch.einsum("nchw,ncij->nhwij", first, second)


def _read_points(values: Tensor, grid: Tensor) -> Tensor:
    """Values (N, C, n, n) at grid points (N, n, n, 2) in [-1, 1], read transposed as upstream."""
    return F.grid_sample(
        values, grid.transpose(1, 2), mode="bilinear", padding_mode="border", align_corners=True
    )


def _correspondence(
    features: tuple[Tensor, Tensor],
    codes: tuple[Tensor, Tensor],
    shift: float,
    config: DepthGLossConfig,
) -> Tensor:
    """Per-pair loss ``−clamp(cos c) · (cos f − shift)``; the feature side carries no gradient."""
    with torch.no_grad():
        target = _pairwise(_unit(features[0]), _unit(features[1]))
        if config.pointwise:  # centre per point of the first map, keep the global mean
            overall = target.mean()
            target = target - target.mean(dim=(3, 4), keepdim=True)
            target = target - target.mean() + overall
    return _clamped_loss(_pairwise(_unit(codes[0]), _unit(codes[1])), target, shift, config)


def _clamped_loss(
    similarity: Tensor, target: Tensor, shift: float, cfg: DepthGLossConfig
) -> Tensor:
    """``−clamp(similarity) · (target − shift)`` with DepthG's clamp settings."""
    low = 0.0 if cfg.zero_clamp else _NO_CLAMP
    clamped = similarity.clamp(low, _STABLE_MAX) if cfg.stabilize else similarity.clamp(low)
    return -clamped * (target - shift)


def _neighbour_permutation(batch: int, generator: torch.Generator | None) -> Tensor:
    """A random permutation with no fixed point where possible (DepthG's ``super_perm``)."""
    permutation = torch.randperm(batch, generator=generator, dtype=torch.long)
    fixed = permutation == torch.arange(batch)
    return torch.where(fixed, permutation + 1, permutation) % batch


def depth_point_cloud(depth: Tensor) -> Tensor:
    """Points (h·w, 3) of a depth map (h, w) as DepthG's ``depth2points(depth, fov=90)``."""
    rows, cols = depth.shape
    factor = 2.0 * torch.tan(torch.tensor([_FOV], dtype=depth.dtype) / 2.0)
    y, x = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
    vertical = factor * depth * (y - rows / 2.0) / rows
    horizontal = factor * depth * (x - cols / 2.0) / cols
    return torch.stack([horizontal, vertical, -depth * _FAR]).permute(1, 2, 0).reshape(-1, 3)


def farthest_points(points: npt.NDArray[np.float32], count: int) -> npt.NDArray[np.int64]:
    """Indices of ``count`` points by greedy farthest-point sampling from point 0.

    Each step takes the point whose squared distance (float32) to the chosen set is largest
    (float64 running minimum); ties go to the lowest index, as in DepthG's numpy ``fps``.
    """
    if count > len(points):
        raise ValueError(f"cannot sample {count} distinct points from {len(points)}")
    chosen = np.zeros(count, dtype=np.int64)
    nearest = np.full(len(points), np.inf, dtype=np.float64)
    taken = np.zeros(len(points), dtype=bool)
    taken[0] = True
    for index in range(1, count):
        offsets = points[chosen[index - 1]] - points
        nearest = np.minimum(nearest, (offsets**2).sum(-1))
        candidates = np.where(taken, -np.inf, nearest)
        chosen[index] = int(np.argmax(candidates))
        taken[chosen[index]] = True
    return chosen


def farthest_point_grid(features: Tensor, depth: Tensor, samples: int) -> Tensor:
    """Sample grids (N, n, n, 2) in [-1, 1] by farthest-point sampling of the depth point cloud.

    Depth (N, 1, H, W) is average-pooled to the feature grid; the ``n²`` chosen cells are listed
    in raster order as (row / h, column / w) · 2 − 1, as DepthG's ``farthest_point_sampling_depth``.
    """
    pooled = F.adaptive_avg_pool2d(depth, (int(features.shape[-2]), int(features.shape[-1])))
    rows, cols = pooled.shape[-2:]
    grids = []
    for image in pooled:
        cloud = depth_point_cloud(image.squeeze()).detach().cpu().numpy()
        chosen = np.sort(farthest_points(cloud, samples * samples))
        cells = torch.from_numpy(np.stack([chosen // cols, chosen % cols], axis=1)).float()
        cells[:, 0] = cells[:, 0] / rows
        cells[:, 1] = cells[:, 1] / cols
        grids.append(cells.reshape(samples, samples, 2))
    return torch.stack(grids).to(features.device) * 2 - 1


def sample_grids(
    features: Tensor,
    features_pos: Tensor,
    depth: Tensor | None,
    depth_pos: Tensor | None,
    config: DepthGLossConfig,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """The two sample grids (N, n, n, 2) of a batch, drawn as DepthG draws them."""
    shape = (features.shape[0], config.feature_samples, config.feature_samples, 2)
    if config.depth_sampling == "fps":
        if depth is None or depth_pos is None:
            raise ValueError("farthest-point sampling needs depth")
        return (
            farthest_point_grid(features, depth, config.feature_samples),
            farthest_point_grid(features_pos, depth_pos, config.feature_samples),
        )
    first = torch.rand(shape, generator=generator).to(features.device) * 2 - 1
    second = torch.rand(shape, generator=generator).to(features.device) * 2 - 1
    return first, second


def cluster_probe_loss(head: DepthGHead, code: Tensor) -> Tensor:
    """The cluster probe's loss on (detached) codes: minus the mean best cosine similarity."""
    similarities: Tensor = head.cluster_probe(code)
    return -similarities.max(dim=1).values.mean()


def depthg_loss(
    features: Tensor,
    features_pos: Tensor,
    code: Tensor,
    code_pos: Tensor,
    depth: Tensor | None,
    config: DepthGLossConfig,
    *,
    depth_pos: Tensor | None = None,
    depth_feat_weight: float | None = None,
    depth_feat_shift: float | None = None,
    cluster: Tensor | None = None,
    generator: torch.Generator | None = None,
    grids: tuple[Tensor, Tensor] | None = None,
) -> DepthGLoss:
    """DepthG's training loss on a batch (features/codes (N, C|D, h, w), depth (N, 1, H, W)).

    ``depth_feat_weight`` / ``depth_feat_shift`` are the current (decayed) values (default: the
    config's initial ones); ``cluster`` is the cluster probe's loss, added to the total.
    Randomness (sample grids, then one permutation per negative round) is drawn from
    ``generator`` (default: torch's global one) in DepthG's order, or the grids are given.
    """
    weight = config.depth_feat_weight if depth_feat_weight is None else depth_feat_weight
    shift = config.depth_feat_shift if depth_feat_shift is None else depth_feat_shift
    if grids is None:
        grids = sample_grids(features, features_pos, depth, depth_pos, config, generator)
    first, second = grids
    feats, codes = _read_points(features, first), _read_points(code, first)
    feats_pos, codes_pos = _read_points(features_pos, second), _read_points(code_pos, second)
    pos_intra = _correspondence((feats, feats), (codes, codes), config.pos_intra_shift, config)
    pos_inter = _correspondence(
        (feats, feats_pos), (codes, codes_pos), config.pos_inter_shift, config
    )
    if weight != 0.0 or depth is not None:
        if depth is None:
            raise ValueError("the depth-feature term needs depth (or depth_feat_weight=0)")
        resized = F.interpolate(depth, size=codes.shape[2:], mode="bilinear", align_corners=True)
        depth_target = _pairwise(_unit(resized), _unit(resized))
        code_similarity = _pairwise(_unit(codes), _unit(codes))
        depth_feat = _clamped_loss(code_similarity, depth_target, shift, config).mean()
    else:
        depth_feat = torch.zeros((), device=code.device)
    negatives = []
    for _ in range(config.neg_samples):
        permutation = _neighbour_permutation(features.shape[0], generator).to(features.device)
        feats_neg = _read_points(features[permutation], second)
        codes_neg = _read_points(code[permutation], second)
        negatives.append(
            _correspondence((feats, feats_neg), (codes, codes_neg), config.neg_inter_shift, config)
        )
    neg_inter = (
        torch.cat(negatives, dim=0).mean() if negatives else torch.zeros((), device=code.device)
    )
    pos_intra, pos_inter = pos_intra.mean(), pos_inter.mean()
    correspondence = (
        config.pos_inter_weight * pos_inter
        + config.pos_intra_weight * pos_intra
        + config.neg_inter_weight * neg_inter
        + weight * depth_feat
    ) * config.correspondence_weight
    cluster_loss = torch.zeros((), device=code.device) if cluster is None else cluster
    return DepthGLoss(
        pos_intra=pos_intra,
        pos_inter=pos_inter,
        neg_inter=neg_inter,
        depth_feat=depth_feat,
        cluster=cluster_loss,
        correspondence=correspondence,
        total=correspondence + cluster_loss,
    )


@dataclass(frozen=True)
class DepthGTrainingConfig:
    """Trainer settings; defaults: DepthG's published Cityscapes run (see the module docstring)."""

    loss: DepthGLossConfig = field(default_factory=DepthGLossConfig)
    code_dim: int = 100  # paper_reproduction.sh, Cityscapes: dim=100
    num_classes: int = 27  # c_p (DepthG's 27 Cityscapes classes, extra_clusters: 0)
    nonlinear_projection: bool = True  # local_config.yml: projection_type nonlinear
    dropout: float = 0.1  # DinoFeaturizer: Dropout2d(p=.1), dropout: True
    batches: int = 2334  # max_steps: 7000 Lightning steps = ceil(7000 / 3) batches
    batch_size: int = 32  # paper_reproduction.sh, Cityscapes
    learning_rate: float = 5e-4  # local_config.yml lr (Adam, net)
    probe_learning_rate: float = 5e-3  # configure_optimizers: Adam(cluster_probe, lr=5e-3)
    depth_loss_decay: bool = True  # paper_reproduction.sh
    decay_factor: float = 0.8  # paper_reproduction.sh: depth_loss_decay_factor
    decay_every: int = 400  # paper_reproduction.sh: decay_every_steps (= batches, see above)
    num_neighbors: int = 7  # local_config.yml
    crop_ratio: float = 0.5  # local_config.yml: crop_type five, crop_ratio .5
    resolution: int = 224  # local_config.yml: res
    frames: int = 600  # ours: frames of the split whose five crops are trained on
    checkpoint_every: int = 100  # ours
    seed: int = 0

    @classmethod
    def synthetic(cls) -> DepthGTrainingConfig:
        """About 20 CPU seconds on ``synthetic``: 200 batches of 8 views of 64 px, code dim 32."""
        return cls(
            code_dim=32,
            batches=200,
            batch_size=8,
            resolution=64,
            frames=24,
            decay_every=100,
            checkpoint_every=50,
        )

    def depth_feat_values(self, batch: int) -> tuple[float, float]:
        """(weight, shift) of the depth term at 0-based ``batch``: × factor past each period."""
        weight, shift = self.loss.depth_feat_weight, self.loss.depth_feat_shift
        if self.depth_loss_decay:
            for _ in range(max(batch - 1, 0) // self.decay_every):
                weight, shift = weight * self.decay_factor, shift * self.decay_factor
        return weight, shift

    def fingerprint(self) -> str:
        """The settings as canonical JSON (a checkpoint only resumes an identical config)."""
        return json.dumps(asdict(self), sort_keys=True)


@dataclass
class TrainingSet:
    """Feature maps (V, C, h, w), depths (V, 1, r, r) and neighbour ranks (V, k + 1) of views."""

    features: Tensor
    depth: Tensor
    neighbours: npt.NDArray[np.int64]
    stride: int


def five_crops(height: int, width: int, ratio: float) -> list[tuple[int, int, int]]:
    """(top, left, side) of the four corner crops and the centre crop, side = ratio · min(H, W)."""
    side = max(1, int(min(height, width) * ratio))
    centre = (round((height - side) / 2.0), round((width - side) / 2.0))
    return [
        (0, 0, side),
        (0, width - side, side),
        (height - side, 0, side),
        (height - side, width - side, side),
        (*centre, side),
    ]


def _resize(values: npt.NDArray[Any], size: int) -> Tensor:
    """(H, W, C) values bilinearly resized (antialiased when shrinking) to (C, size, size)."""
    tensor = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32)).permute(2, 0, 1)
    if tensor.shape[-2:] == (size, size):
        return tensor
    return F.interpolate(
        tensor[None], size=(size, size), mode="bilinear", align_corners=False, antialias=True
    )[0]


def _finite_depth(depth: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
    """Depth with ``inf`` (sky) and ``nan`` replaced by the largest finite depth."""
    values = np.asarray(depth, dtype=np.float32)
    finite = np.isfinite(values)
    top = float(values[finite].max()) if finite.any() else 1.0
    return np.where(finite, values, top).astype(np.float32)


def frame_views(
    image: Image, depth: npt.NDArray[np.floating], config: DepthGTrainingConfig
) -> list[tuple[FloatImage, Tensor]]:
    """The five crop views of a frame, resized to ``resolution``: (image, depth (1, r, r))."""
    height, width = image.shape[:2]
    finite = _finite_depth(depth)
    views = []
    for top, left, side in five_crops(height, width, config.crop_ratio):
        crop = image[top : top + side, left : left + side]
        depth_crop = finite[top : top + side, left : left + side, None]
        resized = _resize(crop, config.resolution).permute(1, 2, 0).numpy()
        views.append((np.clip(resized, 0.0, 255.0), _resize(depth_crop, config.resolution)))
    return views


def nearest_neighbours(features: Tensor, count: int, chunk: int = 1024) -> npt.NDArray[np.int64]:
    """Top ``count`` views (V, count) by cosine similarity of cell-averaged features.

    As DepthG's ``precompute_knns.py``: mean over the cells, unit-normalise, similarity to every
    view, ``topk`` (rank 0 is normally the view itself).
    """
    pooled = F.normalize(features.mean(dim=(2, 3)), dim=1)
    count = min(count, pooled.shape[0])
    ranks = []
    for start in range(0, pooled.shape[0], chunk):
        similarity = torch.einsum("nf,mf->nm", pooled[start : start + chunk], pooled)
        ranks.append(torch.topk(similarity, count, dim=1).indices)
    return torch.cat(ranks).numpy().astype(np.int64)


def build_training_set(
    frames: Iterable[tuple[Image, npt.NDArray[np.floating]]],
    extract: FeatureExtractor,
    config: DepthGTrainingConfig,
) -> TrainingSet:
    """Features and depth of the five crop views of each (image, depth) frame, and neighbours.

    The features are written into one preallocated (V, C, h, w) tensor (no second copy).
    """
    chosen = list(frames)
    total = 5 * len(chosen)
    if total < 2:
        raise VpsbenchError("DepthG training needs at least one frame (five views)")
    features: Tensor | None = None
    depths = torch.empty(total, 1, config.resolution, config.resolution)
    stride, index = 0, 0
    for image, depth in chosen:
        for view, view_depth in frame_views(image, depth, config):
            cells = extract(view)
            if features is None:
                features = torch.empty(total, *cells.features.shape)
            features[index] = torch.from_numpy(np.ascontiguousarray(cells.features, np.float32))
            depths[index] = view_depth
            stride, index = cells.stride, index + 1
    assert features is not None
    neighbours = nearest_neighbours(features, config.num_neighbors + 1)
    return TrainingSet(features, depths, neighbours, stride)


class _Featurizer(nn.Module):
    """The trained part of DepthG's ``DinoFeaturizer`` on given features: dropout + projection."""

    def __init__(self, head: DepthGHead, dropout: float) -> None:
        super().__init__()
        self.head = head
        self.dropout = nn.Dropout2d(p=dropout)

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """(dropped-out features, code) in DepthG's draw order: cluster1, cluster2, features."""
        code: Tensor = self.head.cluster1(self.dropout(features))
        if self.head.cluster2 is not None:
            code = code + self.head.cluster2(self.dropout(features))
        return self.dropout(features), code


def new_head(feature_dim: int, config: DepthGTrainingConfig) -> DepthGHead:
    """An untrained head for ``feature_dim`` channels with the config's code size and classes."""
    head = DepthGHead(
        DepthGConfig(
            feature_dim=feature_dim,
            code_dim=config.code_dim,
            num_classes=config.num_classes,
            nonlinear_projection=config.nonlinear_projection,
        )
    )
    return head


def _optimizers(head: DepthGHead, config: DepthGTrainingConfig) -> tuple[Any, Any]:
    """DepthG's Adam for the projection (lr 5e-4) and for the cluster probe (lr 5e-3)."""
    projection = list(head.cluster1.parameters())
    if head.cluster2 is not None:
        projection += list(head.cluster2.parameters())
    return (
        torch.optim.Adam(projection, lr=config.learning_rate),
        torch.optim.Adam(head.cluster_probe.parameters(), lr=config.probe_learning_rate),
    )


@dataclass
class _State:
    """Everything a resumed run needs besides the data: step, order, RNG states."""

    batch: int
    order: npt.NDArray[np.int64]
    cursor: int
    numpy_state: dict[str, Any]
    losses: list[float]


def _save_checkpoint(
    path: Path,
    head: DepthGHead,
    optimizers: Sequence[Any],
    state: _State,
    config: DepthGTrainingConfig,
    device: torch.device,
) -> None:
    """Atomically write the resume checkpoint (readable with ``weights_only=True``)."""
    payload: dict[str, Any] = {
        "batch": state.batch,
        "order": torch.from_numpy(state.order),
        "cursor": state.cursor,
        "numpy_rng": json.dumps(state.numpy_state),
        "torch_rng": torch.get_rng_state(),
        "losses": list(state.losses),
        "head": head.state_dict(),
        "optimizers": [optimizer.state_dict() for optimizer in optimizers],
        "config": config.fingerprint(),
        "feature_dim": head.config.feature_dim,
    }
    if device.type == "cuda":
        payload["cuda_rng"] = torch.cuda.get_rng_state(device)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def _load_checkpoint(
    path: Path,
    head: DepthGHead,
    optimizers: Sequence[Any],
    config: DepthGTrainingConfig,
    device: torch.device,
) -> _State:
    """Restore head, optimizers and RNG states from a resume checkpoint of the same config."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if payload.get("config") != config.fingerprint():
        raise VpsbenchError(
            f"{path} was written with other DepthG training settings; delete {path.parent} "
            "to train again with the current ones"
        )
    head.load_state_dict(payload["head"])
    for optimizer, saved in zip(optimizers, payload["optimizers"], strict=True):
        optimizer.load_state_dict(saved)
    torch.set_rng_state(payload["torch_rng"])
    if device.type == "cuda" and "cuda_rng" in payload:
        torch.cuda.set_rng_state(payload["cuda_rng"], device)
    return _State(
        batch=int(payload["batch"]),
        order=payload["order"].numpy().astype(np.int64),
        cursor=int(payload["cursor"]),
        numpy_state=json.loads(payload["numpy_rng"]),
        losses=[float(value) for value in payload["losses"]],
    )


def write_head_checkpoint(head: DepthGHead, path: Path, batches: int) -> None:
    """The head as a DepthG-style checkpoint (``state_dict``, published names) for the loader."""
    buffer = io.BytesIO()
    state = {key: value.detach().cpu() for key, value in head.published_state_dict().items()}
    torch.save({"batches": batches, "state_dict": state}, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def train_depthg_head(
    data: TrainingSet,
    config: DepthGTrainingConfig,
    out: Path,
    *,
    device: str = "cpu",
    stop_after: int | None = None,
    log: Callable[[str], None] | None = None,
    initial: DepthGHead | None = None,
) -> DepthGHead:
    """Train the head on ``data`` (resuming from ``out``); returns it in eval mode.

    ``initial`` starts from given weights (e.g. a DepthG checkpoint) instead of a new head seeded
    with ``seed``; the training draws then start right after ``torch.manual_seed(seed)``.

    Checkpoints ``out/last.pt`` every ``checkpoint_every`` batches and writes ``out/depthg.ckpt``
    when done (a finished run is read back, not retrained). ``stop_after`` ends the call after
    that many batches in total (for tests of resuming); the head is then returned unfinished.
    Randomness: torch's global generator is forked, seeded with ``seed`` and checkpointed (the
    caller's is untouched); batch order and positives come from a numpy generator.
    """
    out = Path(out)
    final = out / FINAL_CHECKPOINT
    if final.is_file():
        return depthg_head_from_checkpoint(final).to(device).eval()
    target = torch.device(device)
    devices = [target.index or 0] if target.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(config.seed)
        if initial is None:
            head = new_head(int(data.features.shape[1]), config).to(target)
        else:
            head = copy.deepcopy(initial).to(target)
            sizes = (head.config.feature_dim, head.config.code_dim)
            if sizes != (int(data.features.shape[1]), config.code_dim):
                raise VpsbenchError(
                    f"initial head (features, code) {sizes} does not match "
                    f"{int(data.features.shape[1])} feature channels / code_dim {config.code_dim}"
                )
        featurizer = _Featurizer(head, config.dropout).to(target)
        optimizers = _optimizers(head, config)
        resume = out / RESUME_CHECKPOINT
        if resume.is_file():
            state = _load_checkpoint(resume, head, optimizers, config, target)
        else:
            rng = np.random.default_rng(config.seed)
            state = _State(0, np.zeros(0, np.int64), 0, dict(rng.bit_generator.state), [])
        rng = np.random.default_rng()
        rng.bit_generator.state = state.numpy_state
        end = config.batches if stop_after is None else min(config.batches, stop_after)
        featurizer.train()
        views = data.features.shape[0]
        while state.batch < end:
            if state.cursor >= len(state.order):
                state.order, state.cursor = rng.permutation(views).astype(np.int64), 0
            chosen = state.order[state.cursor : state.cursor + config.batch_size]
            state.cursor += len(chosen)
            ranks = rng.integers(1, data.neighbours.shape[1], size=len(chosen))
            positives = data.neighbours[chosen, np.minimum(ranks, data.neighbours.shape[1] - 1)]
            loss = _training_step(featurizer, optimizers, data, chosen, positives, state, config)
            state.losses.append(loss)
            state.batch += 1
            if state.batch % config.checkpoint_every == 0 or state.batch == end:
                state.numpy_state = dict(rng.bit_generator.state)
                _save_checkpoint(resume, head, optimizers, state, config, target)
            if log is not None and (state.batch % 50 == 0 or state.batch == end):
                log(f"depthg: batch {state.batch}/{config.batches}, loss {loss:.4f}")
        head.eval()
        if state.batch >= config.batches:
            write_head_checkpoint(head, final, config.batches)
    return head


def _training_step(
    featurizer: _Featurizer,
    optimizers: Sequence[Any],
    data: TrainingSet,
    chosen: npt.NDArray[np.int64],
    positives: npt.NDArray[np.int64],
    state: _State,
    config: DepthGTrainingConfig,
) -> float:
    """One batch of DepthG's ``training_step`` (without the label-fed linear probe)."""
    device = featurizer.head.linear_probe.weight.device
    index, index_pos = torch.from_numpy(chosen), torch.from_numpy(positives)
    features, features_pos = data.features[index].to(device), data.features[index_pos].to(device)
    depth, depth_pos = data.depth[index].to(device), data.depth[index_pos].to(device)
    for optimizer in optimizers:
        optimizer.zero_grad()
    signal, code = featurizer(features)
    signal_pos, code_pos = featurizer(features_pos)
    weight, shift = config.depth_feat_values(state.batch)
    cluster = cluster_probe_loss(featurizer.head, code.detach().clone())
    loss = depthg_loss(
        signal,
        signal_pos,
        code,
        code_pos,
        depth,
        config.loss,
        depth_pos=depth_pos,
        depth_feat_weight=weight,
        depth_feat_shift=shift,
        cluster=cluster,
    )
    loss.total.backward()  # type: ignore[no-untyped-call]
    for optimizer in optimizers:
        optimizer.step()
    return float(loss.total.detach())


def code_map(head: DepthGHead, features: FeatureMap) -> FeatureMap:
    """The head's code (D, h, w) of a feature map, on the same cell grid (eval mode)."""
    device = head.linear_probe.weight.device
    cells = torch.from_numpy(np.ascontiguousarray(features.features, dtype=np.float32))
    with torch.no_grad():
        code = head.code(cells[None].to(device))[0]
    return FeatureMap(np.ascontiguousarray(code.cpu().numpy(), dtype=np.float32), features.stride)


def code_extractor(head: DepthGHead, extract: FeatureExtractor) -> FeatureExtractor:
    """S's network with the head: image → backbone features → code (what k-means clusters)."""
    head.eval()

    def codes(image: Image | FloatImage) -> FeatureMap:
        return code_map(head, extract(image))

    return codes


class DepthGCodes(FeatureProvider):
    """A feature provider's features passed through a trained head: S's codes (D, h, w)."""

    name = "depthg-codes"
    description = "codes of a trained DepthG head on another provider's features"

    def __init__(self, provider: FeatureProvider, head: DepthGHead) -> None:
        self.provider = provider
        self.head = head.eval()

    def features(self, clip: VideoClip, t: int) -> FeatureMap:
        """Codes of frame ``t``."""
        return code_map(self.head, self.provider.features(clip, t))

    def image_features(self, image: Image | FloatImage) -> FeatureMap:
        """Codes of any RGB image, on the wrapped provider's cell grid."""
        return code_map(self.head, self.provider.image_features(image))


def training_config(
    dataset: str, batches: int | None = None, frames: int | None = None, classes: int = 27
) -> DepthGTrainingConfig:
    """DepthG's published settings (``synthetic``: the small CPU preset), with overrides."""
    config = DepthGTrainingConfig.synthetic() if dataset == "synthetic" else DepthGTrainingConfig()
    if batches is not None and batches < 1:
        raise VpsbenchError(f"depthg_batches={batches}: expected a positive integer")
    if frames is not None and frames < 1:
        raise VpsbenchError(f"depthg_frames={frames}: expected a positive integer")
    return replace(
        config,
        batches=config.batches if batches is None else batches,
        frames=config.frames if frames is None else frames,
        num_classes=classes,
    )


def ensure_depthg_head(
    frames: Callable[[], Iterable[tuple[Image, npt.NDArray[np.floating]]]],
    extract: FeatureExtractor,
    config: DepthGTrainingConfig,
    out: Path,
    *,
    device: str = "cpu",
    log: Callable[[str], None] | None = None,
) -> Path:
    """The resumable sub-step: train (or resume, or reuse) the head; returns its checkpoint.

    ``frames`` yields (image, depth) of the frames to train on (at most ``config.frames`` are
    used); it is only called when training is still to be done.
    """
    final = Path(out) / FINAL_CHECKPOINT
    if final.is_file():
        return final
    chosen = list(itertools.islice(frames(), config.frames))
    if log is not None:
        log(f"depthg: features of {5 * len(chosen)} views of {len(chosen)} frames")
    data = build_training_set(chosen, extract, config)
    train_depthg_head(data, config, Path(out), device=device, log=log)
    return final


__all__ = [
    "DepthGCodes",
    "DepthGLoss",
    "DepthGLossConfig",
    "DepthGTrainingConfig",
    "TrainingSet",
    "build_training_set",
    "cluster_probe_loss",
    "code_extractor",
    "code_map",
    "depthg_loss",
    "ensure_depthg_head",
    "farthest_point_grid",
    "five_crops",
    "frame_views",
    "nearest_neighbours",
    "train_depthg_head",
    "training_config",
    "write_head_checkpoint",
]
