"""A weight-free stand-in for an unsupervised per-frame panoptic model.

When a baseline's published weights are not available, this produces per-frame panoptic
predictions from cues that need nothing (it is NOT the baseline's model, and runs say so):

1. **semantics** — handcrafted features (colour, texture, position, optionally depth) clustered
   into ``num_pseudo_classes`` with cosine mini-batch k-means fitted on frames of the split;
2. **thing/stuff split** — a pseudo-class is a thing when at least ``thing_ratio`` of its pixels
   lie in object-sized connected components (the same ratio test VideoCUPS uses with ψ_ts);
3. **instances** — connected components of each thing pseudo-class, split at depth
   discontinuities when a depth cue is given, kept when object-sized.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from vpsbench.clustering import assign_cosine, fit_cosine_kmeans
from vpsbench.cues import DepthProvider, FeatureProvider, VideoClip, make_cue
from vpsbench.errors import InputError
from vpsbench.formats.atomic import atomic_write_bytes
from vpsbench.formats.npz import encode_npz, load_npz_arrays
from vpsbench.video import PanopticFrame


@dataclass(frozen=True)
class WeightFreeSettings:
    """The stand-in's knobs (each baseline exposes them in its config)."""

    num_pseudo_classes: int = 27
    features: str = "handcrafted"
    depth: str = "none"
    position_weight: float = 1.0
    sample_frames: int = 48
    samples_per_frame: int = 2000
    min_instance_area: int = 30
    max_instance_fraction: float = 0.05
    thing_ratio: float = 0.5
    depth_edge: float = 0.08
    seed: int = 0


@dataclass(frozen=True)
class WeightFreeModel:
    """Fitted centroids and the pseudo thing classes."""

    centroids: npt.NDArray[np.float64]
    thing_classes: frozenset[int]

    def save(self, path: Path) -> None:
        """Store the model (deterministic ``.npz``, written atomically)."""
        things = np.array(sorted(self.thing_classes), dtype=np.int64)
        atomic_write_bytes(path, encode_npz({"centroids": self.centroids, "things": things}))

    @classmethod
    def load(cls, path: Path) -> WeightFreeModel:
        arrays = load_npz_arrays(path, what="weight-free model")
        if "centroids" not in arrays or "things" not in arrays:
            raise InputError(path, "not a weight-free model (centroids/things missing)")
        return cls(arrays["centroids"], frozenset(int(c) for c in arrays["things"]))


class WeightFreePanoptic:
    """Fits and applies the stand-in on the clips of a split."""

    def __init__(self, settings: WeightFreeSettings) -> None:
        self.settings = settings
        options: dict[str, object] = {}
        if settings.depth != "none":
            options["depth"] = settings.depth
        if settings.features == "handcrafted":
            options["position_weight"] = settings.position_weight
        provider = make_cue("features", settings.features, options)
        assert isinstance(provider, FeatureProvider)
        self.features = provider
        self.depth: DepthProvider | None = None
        if settings.depth != "none":
            depth = make_cue("depth", settings.depth)
            assert isinstance(depth, DepthProvider)
            self.depth = depth

    def _pixel_features(
        self, clip: VideoClip, t: int
    ) -> tuple[npt.NDArray[np.float32], tuple[int, int], int]:
        """Feature vectors of frame ``t`` (one row per cell), the cell grid and its stride."""
        feature_map = self.features.features(clip, t)
        channels, rows, cols = feature_map.features.shape
        vectors = feature_map.features.reshape(channels, -1).T
        return vectors, (int(rows), int(cols)), feature_map.stride

    def semantic(self, clip: VideoClip, t: int, centroids: npt.NDArray[np.float64]) -> np.ndarray:
        """Per-pixel pseudo-class of frame ``t`` (nearest centroid, upsampled to the frame)."""
        return self._label_pixels(self._pixel_features(clip, t), clip.image(t).shape[:2], centroids)

    @staticmethod
    def _label_pixels(
        features: tuple[npt.NDArray[np.float32], tuple[int, int], int],
        shape: tuple[int, ...],
        centroids: npt.NDArray[np.float64],
    ) -> np.ndarray:
        """Nearest-centroid class of every cell, repeated over the cell's pixels."""
        vectors, (grid_rows, grid_cols), stride = features
        height, width = shape[0], shape[1]
        grid = assign_cosine(vectors, centroids).reshape(grid_rows, grid_cols)
        rows = np.minimum(np.arange(height) // stride, grid_rows - 1)
        cols = np.minimum(np.arange(width) // stride, grid_cols - 1)
        return grid[rows[:, None], cols[None, :]]

    def _components(self, mask: np.ndarray, depth: np.ndarray | None) -> tuple[np.ndarray, int]:
        """Connected components of ``mask``, cut where the relative depth jumps."""
        if depth is not None:
            log_depth = np.log(np.clip(np.nan_to_num(depth, posinf=1e4), 1e-3, 1e4))
            edges = (
                np.abs(np.diff(log_depth, axis=0, append=log_depth[-1:])) > self.settings.depth_edge
            ) | (
                np.abs(np.diff(log_depth, axis=1, append=log_depth[:, -1:]))
                > self.settings.depth_edge
            )
            mask = mask & ~edges
        labels, count = ndimage.label(mask, structure=np.ones((3, 3)))
        return labels, int(count)

    def _object_sized(self, areas: np.ndarray, frame_area: int) -> np.ndarray:
        return (areas >= self.settings.min_instance_area) & (
            areas <= self.settings.max_instance_fraction * frame_area
        )

    def fit(self, clips: Sequence[VideoClip]) -> WeightFreeModel:
        """Cluster features of sampled frames, then split pseudo-classes into things and stuff."""
        frames = [(clip, t) for clip in clips for t in range(len(clip))]
        step = max(1, len(frames) // self.settings.sample_frames)
        chosen = frames[::step][: self.settings.sample_frames]
        rng = np.random.default_rng(self.settings.seed)
        samples = []
        features = [self._pixel_features(clip, t) for clip, t in chosen]
        for vectors, _, _ in features:
            take = rng.choice(
                vectors.shape[0],
                min(self.settings.samples_per_frame, vectors.shape[0]),
                replace=False,
            )
            samples.append(vectors[np.sort(take)])
        centroids = fit_cosine_kmeans(
            np.concatenate(samples), self.settings.num_pseudo_classes, seed=self.settings.seed
        )
        in_objects = np.zeros(self.settings.num_pseudo_classes)
        totals = np.zeros(self.settings.num_pseudo_classes)
        for (clip, t), cells in zip(chosen, features, strict=True):
            semantic = self._label_pixels(cells, clip.image(t).shape, centroids)
            depth = self.depth.depth_motion(clip, t).depth if self.depth else None
            totals += np.bincount(semantic.ravel(), minlength=totals.size)
            for cls in np.unique(semantic):
                labels, count = self._components(semantic == cls, depth)
                areas = np.bincount(labels.ravel(), minlength=count + 1)[1:]
                in_objects[cls] += areas[self._object_sized(areas, semantic.size)].sum()
        ratio = np.divide(in_objects, totals, out=np.zeros_like(totals), where=totals > 0)
        things = frozenset(int(c) for c in np.flatnonzero(ratio >= self.settings.thing_ratio))
        return WeightFreeModel(centroids, things)

    def predict(self, model: WeightFreeModel, clip: VideoClip, t: int) -> PanopticFrame:
        """Per-frame panoptic prediction: pseudo-classes, object-sized thing components as ids."""
        semantic = self.semantic(clip, t, model.centroids)
        depth = self.depth.depth_motion(clip, t).depth if self.depth else None
        instance = np.zeros(semantic.shape, dtype=np.int32)
        next_id = 1
        for cls in sorted(model.thing_classes):
            labels, count = self._components(semantic == cls, depth)
            if count == 0:
                continue
            areas = np.bincount(labels.ravel(), minlength=count + 1)
            keep = np.flatnonzero(self._object_sized(areas, semantic.size))
            keep = keep[keep > 0]
            new_ids = np.zeros(count + 1, dtype=np.int32)
            new_ids[keep] = np.arange(next_id, next_id + keep.size, dtype=np.int32)
            instance = np.where(labels > 0, np.maximum(instance, new_ids[labels]), instance)
            next_id += keep.size
        return PanopticFrame(semantic.astype(np.int32), instance)
