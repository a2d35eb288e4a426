"""DepthG + VideoCutLER: unsupervised semantics + class-agnostic video instances, fused.

As the paper builds it (Sec. 4): DepthG gives per-frame semantic pseudo-classes, VideoCutLER
class-agnostic video instance masks on 30-frame clips with a 5-frame overlap (long videos
exhaust its memory otherwise), instance ids are aligned across clips by IoU, and the two are fused
with VideoCUPS' pseudo-labelling rules (Sec. 3.1), the very functions its pseudo-label stage
runs: every instance takes the majority pseudo-class of its masks over the video
(``align_semantics_to_tracks``), a pseudo-class is a thing when more than ψ_ts of its pixels lie
inside instance masks over the whole split (``thing_stuff_split``, ψ_ts = 0.08 as VideoCUPS),
and instances of stuff classes lose their ids (``finalize_clip``).

Sources: ``weights``/``depthg_weights``/``dino_weights`` for the published networks; otherwise
the weight-free stand-ins (semantics: :mod:`vpsbench_baselines.weight_free`; video instances: its
object-sized components linked within each clip by mask IoU) — not the baseline's models.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from vpsbench_methods.videocups.pseudo_labels import finalize_clip
from vpsbench_methods.videocups.temporal import (
    PSI_THING_STUFF,
    align_semantics_to_tracks,
    thing_stuff_split,
)

from vpsbench.cues import VideoClip
from vpsbench.errors import VpsbenchError
from vpsbench.executors import ordered_map_with_setup
from vpsbench.formats.atomic import atomic_write_text
from vpsbench.formats.npz import read_npz, write_npz
from vpsbench.methods import PREDICT_STAGE, Method, MethodConfig, RunContext
from vpsbench.methods.base import Range, WorkerContext
from vpsbench.predictions import MAX_CLASS_ID
from vpsbench.tracking.clips import align_clip_ids, split_into_clips
from vpsbench.tracking.panoptic import track_panoptic_video
from vpsbench.tracking.sort import SortConfig
from vpsbench.video import PanopticFrame, SequenceRef
from vpsbench_baselines.sort_baselines import CLUSTER_STAGE, MODEL_FILE
from vpsbench_baselines.weight_free import WeightFreeModel, WeightFreePanoptic, WeightFreeSettings

SEGMENT_STAGE = "segment"

SemanticSource = Callable[[VideoClip, int], np.ndarray]
InstanceSource = Callable[[VideoClip, list[int]], list[np.ndarray]]


def _add_counts(total: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Element-wise sum of two count vectors of possibly different lengths."""
    size = max(total.size, counts.size)
    summed = np.pad(total, (0, size - total.size)) + np.pad(counts, (0, size - counts.size))
    return np.asarray(summed, dtype=np.float64)


@dataclass(frozen=True)
class DepthGVideoCutLERConfig(MethodConfig):
    """Settings of the DepthG + VideoCutLER baseline."""

    weights: Path | None = field(default=None, metadata={"help": "VideoCutLER checkpoint"})
    depthg_weights: Path | None = field(default=None, metadata={"help": "DepthG checkpoint"})
    dino_weights: Path | None = field(default=None, metadata={"help": "DINO ViT backbone"})
    clip_length: int = field(
        default=30, metadata={"help": "frames per VideoCutLER clip", "range": Range(1)}
    )
    clip_overlap: int = field(
        default=5, metadata={"help": "frames shared by adjacent clips", "range": Range(0)}
    )
    align_iou: float = field(
        default=0.5, metadata={"help": "IoU to carry an id across clips", "range": Range(0, 1)}
    )
    psi_thing_stuff: float = field(
        default=PSI_THING_STUFF,
        metadata={"help": "ψ_ts of the thing/stuff split (VideoCUPS')", "range": Range(0, 1)},
    )
    num_pseudo_classes: int = field(
        default=27, metadata={"help": "weight-free stand-in", "range": Range(1, MAX_CLASS_ID + 1)}
    )
    features: str = field(default="handcrafted", metadata={"help": "weight-free stand-in"})
    depth: str = field(default="none", metadata={"help": "depth cue of the stand-in"})
    seed: int = field(default=0, metadata={"help": "weight-free stand-in", "range": Range(0)})

    def __post_init__(self) -> None:
        if self.clip_overlap >= self.clip_length:
            raise VpsbenchError(
                f"--set clip_overlap={self.clip_overlap}: must be smaller than "
                f"clip_length={self.clip_length}"
            )


@dataclass
class Segmenter:
    """What segments the sequences of one worker: the semantic and instance sources."""

    context: RunContext
    settings: DepthGVideoCutLERConfig
    semantic_of: SemanticSource
    instances_of: InstanceSource


def segment_sequence(segmenter: Segmenter, sequence: SequenceRef) -> str:
    """Worker: semantics per frame, video instances per clip window (ids aligned across
    windows), written with the sequence's class counts for the thing/stuff split."""
    context, s = segmenter.context, segmenter.settings
    clip = VideoClip(context.dataset, context.split, sequence)
    aligned: list[PanopticFrame] = []
    next_id = 1
    for window in split_into_clips(len(clip), s.clip_length, s.clip_overlap):
        instance_maps = segmenter.instances_of(clip, list(window))
        frames = [PanopticFrame(np.zeros_like(m), m) for m in instance_maps]
        overlap = len(aligned) - window.start if aligned else 0
        if overlap > 0:
            relabelled, next_id = align_clip_ids(
                aligned[window.start :], frames[:overlap], frames, next_id, s.align_iou
            )
            aligned.extend(relabelled[overlap:])
        else:
            top = max((int(f.instance.max(initial=0)) for f in frames), default=0)
            aligned.extend(frames)
            next_id = max(next_id, top + 1)
    folder = context.stage_dir(SEGMENT_STAGE) / sequence.name
    class_pixels = np.zeros(0)
    inside = np.zeros(0)
    for t, (frame, instances) in enumerate(zip(sequence.frames, aligned, strict=True)):
        semantic = segmenter.semantic_of(clip, t)
        class_pixels = _add_counts(class_pixels, np.bincount(semantic.ravel()))
        inside = _add_counts(inside, np.bincount(semantic[instances.instance > 0]))
        write_npz(folder / f"{frame.name}.npz", PanopticFrame(semantic, instances.instance))
    counts = {"class_pixels": class_pixels.tolist(), "inside_instances": inside.tolist()}
    atomic_write_text(folder / "counts.json", json.dumps(counts) + "\n")
    return sequence.name


def fuse_sequence(fusion: tuple[RunContext, np.ndarray], sequence: SequenceRef) -> str:
    """Worker: VideoCUPS' fusion of one segmented sequence (per-track majority class, instances
    of stuff classes dropped) written as its predictions; ``fusion``: (context, thing classes)."""
    context, things = fusion
    folder = context.run_dir / SEGMENT_STAGE / sequence.name
    frames = [read_npz(folder / f"{f.name}.npz") for f in sequence.frames]
    aligned, _ = align_semantics_to_tracks(
        [frame.semantic for frame in frames], [frame.instance for frame in frames]
    )
    fused = finalize_clip(
        [
            PanopticFrame(semantic, frame.instance)
            for semantic, frame in zip(aligned, frames, strict=True)
        ],
        things,
    )
    for ref, prediction in zip(sequence.frames, fused, strict=True):
        context.write_prediction(ref, prediction)
    return sequence.name


def _fusion(place: WorkerContext, things: np.ndarray) -> tuple[RunContext, np.ndarray]:
    return place.open(), things


class DepthGVideoCutLER(Method):
    """DepthG semantics + VideoCutLER video instances, fused as VideoCUPS fuses pseudo-labels."""

    name = "depthg-videocutler"
    description = "DepthG semantics + class-agnostic VideoCutLER video instances, fused"
    stages = (CLUSTER_STAGE, SEGMENT_STAGE, PREDICT_STAGE)
    config_class = DepthGVideoCutLERConfig
    citation = "Sick et al. (DepthG), CVPR 2024; Wang et al. (VideoCutLER), CVPR 2024"
    weights_info = (
        "VideoCutLER (github.com/facebookresearch/CutLER), DepthG (github.com/leonsick/depthg) "
        "and DINO ViT (github.com/facebookresearch/dino) checkpoints"
    )

    @property
    def settings(self) -> DepthGVideoCutLERConfig:
        assert isinstance(self.config, DepthGVideoCutLERConfig)
        return self.config

    def _stand_in(self) -> WeightFreePanoptic:
        s = self.settings
        return WeightFreePanoptic(
            WeightFreeSettings(
                num_pseudo_classes=s.num_pseudo_classes,
                features=s.features,
                depth=s.depth,
                seed=s.seed,
                thing_ratio=0.0,
            )
        )

    def _uses_networks(self) -> bool:
        s = self.settings
        given = [s.weights is not None, s.depthg_weights is not None]
        if any(given) and not all(given):
            raise VpsbenchError("give both weights (VideoCutLER) and depthg_weights, or neither")
        return all(given)

    def run_stage(self, stage: str, context: RunContext) -> None:
        if stage == CLUSTER_STAGE:
            if not self._uses_networks():
                context.log("no weights: weight-free stand-ins for DepthG and VideoCutLER")
                clips = [VideoClip(context.dataset, context.split, s) for s in context.sequences]
                self._stand_in().fit(clips).save(context.stage_dir(stage) / MODEL_FILE)
        elif stage == SEGMENT_STAGE:
            setup = functools.partial(self._segmenter, context.for_workers())
            pending = list(context.pending(SEGMENT_STAGE))
            for name in ordered_map_with_setup(setup, segment_sequence, pending, context.executor):
                context.mark_done(SEGMENT_STAGE, name)
        else:
            self._fuse_and_predict(context)

    # -- segment: semantics per frame, class-agnostic video instances per clip ------------------
    def _segmenter(self, place: WorkerContext) -> Segmenter:
        """A worker's sources (the networks: loaded once) and the clip settings."""
        context = place.open()
        semantic_of, instances_of = self._sources(context)
        return Segmenter(context, self.settings, semantic_of, instances_of)

    def _sources(self, context: RunContext) -> tuple[SemanticSource, InstanceSource]:
        """(semantic of a frame, class-agnostic instance maps of a clip window)."""
        if self._uses_networks():
            return self._network_sources(context)
        model = WeightFreeModel.load(context.run_dir / CLUSTER_STAGE / MODEL_FILE)
        stand_in = self._stand_in()

        def semantic_of(clip: VideoClip, t: int) -> np.ndarray:
            return stand_in.semantic(clip, t, model.centroids).astype(np.int32)

        agnostic = WeightFreeModel(model.centroids, frozenset(range(model.centroids.shape[0])))

        def instances_of(clip: VideoClip, window: list[int]) -> list[np.ndarray]:
            proposals = (
                PanopticFrame(np.ones_like(p.instance), p.instance)
                for p in (stand_in.predict(agnostic, clip, t) for t in window)
            )
            linked = track_panoptic_video(
                proposals, thing_classes={1}, config=SortConfig(max_age=1, min_hits=1)
            )
            return [frame.instance for frame in linked]

        return semantic_of, instances_of

    def _network_sources(self, context: RunContext) -> tuple[SemanticSource, InstanceSource]:
        """DepthG on DINO features and VideoCutLER's VideoMask2Former, pure PyTorch."""
        try:
            from vpsbench.cues import make_cue
            from vpsbench.models.depthg import depthg_backbone_arch, depthg_head_from_checkpoint
            from vpsbench.models.video_mask2former import (
                VideoMask2Former,
                VideoMask2FormerConfig,
                load_checkpoint,
            )
        except ModuleNotFoundError as error:
            raise VpsbenchError(
                f"{self.name} with weights needs {error.name}: pip install 'vpsbench[methods]'"
            ) from None
        s = self.settings
        assert s.weights is not None and s.depthg_weights is not None
        # The DINO ViT the DepthG head was trained on (DepthG's Cityscapes model: ViT-B/8).
        dino_options: dict[str, object] = {"weights": s.dino_weights, "device": context.device}
        arch = depthg_backbone_arch(s.depthg_weights)
        if arch is not None:
            dino_options["arch"] = arch
        dino = make_cue("features", "dino", dino_options)
        head = depthg_head_from_checkpoint(s.depthg_weights)
        video_model = VideoMask2Former(VideoMask2FormerConfig()).eval()
        load_checkpoint(video_model, s.weights)

        def semantic_of(clip: VideoClip, t: int) -> np.ndarray:
            features = dino.features(clip, t)  # type: ignore[attr-defined]
            return np.asarray(head.predict(features, clip.image(t).shape[:2]), dtype=np.int32)

        def instances_of(clip: VideoClip, window: list[int]) -> list[np.ndarray]:
            return list(video_model.segment_clip([clip.image(t) for t in window]))

        return semantic_of, instances_of

    # -- predict: VideoCUPS' fusion (Sec. 3.1): per-track majority class, thing/stuff split -----
    def _fuse_and_predict(self, context: RunContext) -> None:
        totals = np.zeros(0)
        inside = np.zeros(0)
        for sequence in context.sequences:
            path = context.run_dir / SEGMENT_STAGE / sequence.name / "counts.json"
            counts = json.loads(path.read_text())
            totals = _add_counts(totals, np.array(counts["class_pixels"]))
            inside = _add_counts(inside, np.array(counts["inside_instances"]))
        inside = _add_counts(inside, np.zeros(totals.size))  # no instance at all: zeros
        things = thing_stuff_split(totals, inside, self.settings.psi_thing_stuff)
        context.log(f"{PREDICT_STAGE}: pseudo thing classes {np.flatnonzero(things).tolist()}")
        setup = functools.partial(_fusion, context.for_workers(), things)
        pending = list(context.pending(PREDICT_STAGE))
        spec = replace(context.executor, num_gpus=0.0)  # no network: no GPU to hold
        for name in ordered_map_with_setup(setup, fuse_sequence, pending, spec):
            context.mark_done(PREDICT_STAGE, name)
