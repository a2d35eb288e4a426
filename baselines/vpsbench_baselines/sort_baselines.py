"""U2Seg + SORT, CUPS + SORT and CUPS† + SORT: per-frame unsupervised panoptic models + SORT.

The paper builds these baselines by tracking the thing detections of an unsupervised panoptic
*image* model with SORT (Bewley et al. 2016, their proposed hyper-parameters: max_age 1,
min_hits 3, IoU 0.3). The per-frame predictions come from, in order of precedence:

1. ``per_frame=DIR`` — predictions produced elsewhere, in a vpsbench prediction format;
2. ``weights=PATH`` — the published Panoptic Cascade Mask R-CNN checkpoint (detectron2 format),
   run by vpsbench's pure-PyTorch implementation;
3. otherwise the weight-free stand-in of :mod:`vpsbench_baselines.weight_free` (not the baseline's
model).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal, cast

from vpsbench.cues import VideoClip
from vpsbench.errors import VpsbenchError
from vpsbench.executors import ordered_map_with_setup
from vpsbench.formats.atomic import atomic_write_text
from vpsbench.methods import PREDICT_STAGE, Method, MethodConfig, RunContext
from vpsbench.methods.base import Range, WorkerContext
from vpsbench.predictions import MAX_CLASS_ID, PredictionSource
from vpsbench.tracking.panoptic import track_panoptic_video
from vpsbench.tracking.sort import ASSOCIATIONS, Association, SortConfig
from vpsbench.video import PanopticFrame, SequenceRef
from vpsbench_baselines.weight_free import WeightFreeModel, WeightFreePanoptic, WeightFreeSettings

CLUSTER_STAGE = "cluster"
MODEL_FILE = "weight_free_model.npz"


@dataclass(frozen=True)
class SortBaselineConfig(MethodConfig):
    """Settings of a per-frame model + SORT baseline."""

    weights: Path | None = field(default=None, metadata={"help": "published checkpoint"})
    per_frame: Path | None = field(
        default=None, metadata={"help": "folder of per-frame predictions made elsewhere"}
    )
    max_age: int = field(
        default=1, metadata={"help": "SORT: frames a track survives unmatched", "range": Range(0)}
    )
    min_hits: int = field(
        default=3, metadata={"help": "SORT: matches before a track is output", "range": Range(0)}
    )
    iou_threshold: float = field(
        default=0.3, metadata={"help": "SORT: minimum IoU to associate", "range": Range(0, 1)}
    )
    association: str = field(
        default="bewley",
        metadata={"help": "SORT: bewley (Hungarian on raw IoU, as published) | threshold-first"},
    )
    class_vote: bool = field(
        default=False,
        metadata={"help": "ours, off as in the paper: a track's pixels take its majority class"},
    )
    num_pseudo_classes: int = field(
        default=27, metadata={"help": "weight-free stand-in", "range": Range(1, MAX_CLASS_ID + 1)}
    )
    features: str = field(default="handcrafted", metadata={"help": "weight-free stand-in"})
    depth: str = field(default="none", metadata={"help": "depth cue of the stand-in"})
    thing_ratio: float = field(
        default=0.5,
        metadata={
            "help": "stand-in: share of a class in object-sized segments",
            "range": Range(0, 1),
        },
    )
    position_weight: float = field(
        default=1.0,
        metadata={"help": "stand-in: weight of image position in the features", "range": Range(0)},
    )
    min_instance_area: int = field(
        default=30, metadata={"help": "stand-in: pixels", "range": Range(0)}
    )
    max_instance_fraction: float = field(
        default=0.05, metadata={"help": "stand-in: of frame", "range": Range(0, 1, low_open=True)}
    )
    seed: int = field(default=0, metadata={"help": "weight-free stand-in", "range": Range(0)})

    def __post_init__(self) -> None:
        if self.association not in ASSOCIATIONS:
            raise VpsbenchError(
                f"--set association={self.association!r}: expected one of {', '.join(ASSOCIATIONS)}"
            )

    @property
    def sort_config(self) -> SortConfig:
        """SORT's hyper-parameters (Bewley et al.'s by default, as the paper's baselines use)."""
        return SortConfig(
            self.max_age,
            self.min_hits,
            self.iou_threshold,
            association=cast(Association, self.association),
        )

    def weight_free(self) -> WeightFreeSettings:
        return WeightFreeSettings(
            num_pseudo_classes=self.num_pseudo_classes,
            features=self.features,
            depth=self.depth,
            thing_ratio=self.thing_ratio,
            position_weight=self.position_weight,
            min_instance_area=self.min_instance_area,
            max_instance_fraction=self.max_instance_fraction,
            seed=self.seed,
        )


def _mode(config: SortBaselineConfig) -> str:
    if config.per_frame is not None:
        return "per-frame predictions"
    if config.weights is not None:
        return "published weights"
    return "weight-free stand-in"


@dataclass
class Tracker:
    """What tracks the sequences of one worker: the per-frame source and SORT's settings."""

    context: RunContext
    predict_frame: Callable[[VideoClip, int], PanopticFrame]
    tracking: SortConfig
    class_vote: bool


def track_sequence(tracker: Tracker, sequence: SequenceRef) -> str:
    """Worker: predict every frame of one sequence, track the things with SORT, write them."""
    context = tracker.context
    clip = VideoClip(context.dataset, context.split, sequence)
    per_frame = (tracker.predict_frame(clip, t) for t in range(len(clip)))
    tracked = track_panoptic_video(
        per_frame, config=tracker.tracking, carry_class=tracker.class_vote
    )
    for frame, prediction in zip(sequence.frames, tracked, strict=True):
        context.write_prediction(frame, prediction)
    return sequence.name


def _fitted_model_path(context: RunContext) -> Path:
    """The stand-in model the cluster stage fitted; an error naming the stage when it is missing."""
    model_path = context.run_dir / CLUSTER_STAGE / MODEL_FILE
    if not model_path.is_file():
        raise VpsbenchError(f"run the {CLUSTER_STAGE!r} stage first ({model_path} is missing)")
    return model_path


class SortBaseline(Method):
    """A per-frame unsupervised panoptic model whose thing detections SORT tracks."""

    stages = (CLUSTER_STAGE, PREDICT_STAGE)
    config_class = SortBaselineConfig
    model_preset: ClassVar[str]

    @property
    def settings(self) -> SortBaselineConfig:
        assert isinstance(self.config, SortBaselineConfig)
        return self.config

    def run_stage(self, stage: str, context: RunContext) -> None:
        context.log(f"{self.name}: per-frame source = {_mode(self.settings)}")
        atomic_write_text(
            context.stage_dir(stage) / "mode.json",
            json.dumps({"mode": _mode(self.settings)}) + "\n",
        )
        if stage == CLUSTER_STAGE:
            if _mode(self.settings) == "weight-free stand-in":
                clips = [VideoClip(context.dataset, context.split, s) for s in context.sequences]
                model = WeightFreePanoptic(self.settings.weight_free()).fit(clips)
                model.save(context.stage_dir(stage) / MODEL_FILE)
                context.log(f"{CLUSTER_STAGE}: pseudo thing classes {sorted(model.thing_classes)}")
            return
        self._check_model(context)  # before any worker starts
        setup = functools.partial(self._tracker, context.for_workers())
        pending = list(context.pending(PREDICT_STAGE))
        for name in ordered_map_with_setup(setup, track_sequence, pending, context.executor):
            context.mark_done(PREDICT_STAGE, name)
            context.log(f"{PREDICT_STAGE}: {name} done")

    def _tracker(self, place: WorkerContext) -> Tracker:
        """A worker's per-frame source (a network: loaded once) and SORT's settings."""
        context = place.open()
        predict_frame = self._frame_predictor(context)
        return Tracker(context, predict_frame, self.settings.sort_config, self.settings.class_vote)

    def _check_model(self, context: RunContext) -> None:
        """The stand-in's fitted model must exist (the cluster stage made it)."""
        if _mode(self.settings) == "weight-free stand-in":
            _fitted_model_path(context)

    def _frame_predictor(self, context: RunContext) -> Callable[[VideoClip, int], PanopticFrame]:
        """The per-frame panoptic source chosen by the settings."""
        if self.settings.per_frame is not None:
            source = PredictionSource.open(self.settings.per_frame)

            def from_folder(clip: VideoClip, t: int) -> PanopticFrame:
                shape = clip.image(t).shape[:2]
                prediction, _ = source.read(clip.sequence.frames[t], (shape[0], shape[1]))
                return prediction

            return from_folder
        if self.settings.weights is not None:
            return self._network_predictor(context)
        model = WeightFreeModel.load(_fitted_model_path(context))
        stand_in = WeightFreePanoptic(self.settings.weight_free())
        return lambda clip, t: stand_in.predict(model, clip, t)

    def _network_predictor(self, context: RunContext) -> Callable[[VideoClip, int], PanopticFrame]:
        """The published Panoptic Cascade Mask R-CNN, in vpsbench's pure-PyTorch version."""
        try:
            from vpsbench.models.checkpoints import build_from_checkpoint
        except ModuleNotFoundError as error:
            raise VpsbenchError(
                f"{self.name} with weights needs {error.name}: pip install 'vpsbench[methods]'"
            ) from None
        assert self.settings.weights is not None
        preset: Literal["cups", "u2seg"] = "u2seg" if self.model_preset == "u2seg" else "cups"
        network = build_from_checkpoint(self.settings.weights, preset).eval().to(context.device)
        return lambda clip, t: network.predict_panoptic(clip.image(t))


class U2SegSort(SortBaseline):
    """U2Seg (COCO & ImageNet, 800 + 27 pseudo-classes) + SORT."""

    name = "u2seg-sort"
    description = "U2Seg per-frame panoptic (800 thing + 27 stuff pseudo-classes) tracked by SORT"
    model_preset = "u2seg"
    weights_info = "U2Seg's Panoptic Cascade Mask R-CNN checkpoint, published by its authors"
    prediction_format = "npz (827 pseudo-classes do not fit a STEP PNG); step for the stand-in"
    citation = (
        "Niu et al., Unsupervised Universal Image Segmentation, CVPR 2024; Bewley et al. 2016"
    )


class CupsSort(SortBaseline):
    """CUPS (trained on Cityscapes stereo video, 27 pseudo-classes) + SORT."""

    name = "cups-sort"
    description = "CUPS per-frame panoptic (27 pseudo-classes, stereo-trained) tracked by SORT"
    model_preset = "cups"
    weights_info = "the CUPS checkpoint, published at github.com/visinf/cups"
    citation = "Hahn et al., Scene-Centric Unsupervised Panoptic Segmentation, CVPR 2025"


class CupsMonoSort(SortBaseline):
    """CUPS† (retrained on monocular video with DynamoDepth) + SORT."""

    name = "cups-mono-sort"
    description = "CUPS† per-frame panoptic (monocular-video training) tracked by SORT"
    model_preset = "cups"
    weights_info = "a CUPS checkpoint trained on monocular video (not public; train it with CUPS)"
    citation = "VideoCUPS paper, Sec. 4 (CUPS retrained with monocular depth)"
