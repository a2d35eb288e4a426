"""The ``videocups`` method plugin: stages ``pseudo-label`` (Sec. 3.1), ``train`` and ``predict``.

``pseudo-label`` labels the training split (``train_split`` of ``train_dataset``: for the real
datasets the unlabelled ``cityscapes-sequence`` video, as in the paper; for synthetic and
third-party datasets the evaluated dataset) and writes, in the run directory,
``pseudo-label/labels/<seq>/<frame>.png`` (STEP PNGs in the submission format, so
``vpsbench evaluate --pred <run>/pseudo-label/labels`` scores them), ``pseudo-label/summary.json``
(tracks, track lengths, thing/stuff pseudo-classes) and the fitted centroids. Sequences are
labelled by a process pool (``--executor ray``: Ray actors that build the cue networks once)
and resume where an interrupted run stopped.

``train`` (Sec. 3.2) trains a Panoptic Cascade MaskTrack R-CNN on them with Video DropLoss and
self-enhanced video copy-paste (``methods/vpsbench_methods/videocups/model``; config
``train_config``: the synthetic ``small`` config deviates, see ``docs/fidelity.md``) into
``train/`` (logs, checkpoints with exact resume, ``model_final.pt``). ``predict`` runs it over the
evaluated split, frame by frame, and writes ``predictions/`` for the evaluator.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from vpsbench.clustering import normalize_rows
from vpsbench.cues import DepthProvider, FeatureProvider, FlowProvider, VideoClip, make_cue
from vpsbench.datasets import open_dataset
from vpsbench.datasets.base import Dataset
from vpsbench.errors import VpsbenchError
from vpsbench.executors import ExecutorKind, ordered_map_with_setup
from vpsbench.formats.atomic import atomic_write_bytes, atomic_write_text
from vpsbench.formats.npz import encode_npz, load_npz_arrays, read_npz, write_npz
from vpsbench.formats.step import write_step_png
from vpsbench.methods import Method, MethodConfig, RunContext
from vpsbench.methods.base import PREDICT_STAGE, Range, WorkerContext
from vpsbench.models.depthg import depthg_head_from_checkpoint
from vpsbench.predictions import MAX_CLASS_ID
from vpsbench.video import PanopticFrame, SequenceRef
from vpsbench_methods.videocups.depthg_training import (
    DepthGCodes,
    ensure_depthg_head,
    training_config,
)
from vpsbench_methods.videocups.pseudo_labels import (
    CueSet,
    PseudoLabelSettings,
    clip_pseudo_labels,
    finalize_clip,
)
from vpsbench_methods.videocups.semantics import (
    fit_pseudo_classes,
    low_resolution_features,
    sample_feature_vectors,
)
from vpsbench_methods.videocups.temporal import accumulate_split_counts, thing_stuff_split
from vpsbench_methods.videocups.torch_threads import one_torch_thread

PSEUDO_LABEL_STAGE = "pseudo-label"
TRAIN_STAGE = "train"
#: Training video of an evaluated dataset where it is another dataset (paper Sec. 4: VideoCUPS
#: is trained once on the Cityscapes training sequences and evaluated on Cityscapes-VPS, and
#: cross-domain on KITTI-STEP, Waymo and MOTS). Other datasets (synthetic, third-party) train
#: on their own ``train_split``.
TRAINING_VIDEO = {
    name: "cityscapes-sequence"
    for name in ("cityscapes-vps", "kitti-step", "kitti-mots", "waymo", "mots")
}


@dataclass(frozen=True)
class VideoCupsConfig(MethodConfig):
    """VideoCUPS settings; the defaults are the paper's (Sec. 3.1 and 4)."""

    flow: str = field(default="dis", metadata={"help": "flow provider (paper: SMURF → raft)"})
    flow_weights: Path | None = field(default=None, metadata={"help": "RAFT/SMURF weights"})
    depth: str = field(
        default="auto",
        metadata={"help": "depth & motion provider (auto: oracle on synthetic, else dynamo-depth)"},
    )
    depth_weights: Path | None = field(default=None, metadata={"help": "Dynamo-Depth weights"})
    features: str = field(default="handcrafted", metadata={"help": "feature provider (or dino)"})
    feature_weights: Path | None = field(default=None, metadata={"help": "DINO weights"})
    window: str = field(
        default="auto",
        metadata={"help": "Eq. 2 P_high window side in px (auto: CUPS' frame height // 2)"},
    )
    window_stride: str = field(
        default="auto", metadata={"help": "P_high window step in px (auto: CUPS' height // 4)"}
    )
    low_scale: float = field(
        default=0.5,
        metadata={
            "help": "Eq. 2 P_low: frame scale in (0, 1] (CUPS: 0.5)",
            "range": Range(0, 1, low_open=True),
        },
    )
    depthg: bool = field(
        default=True,
        metadata={
            "help": "train S's DepthG head and cluster its codes (Sec. 3.1; off: raw features)"
        },
    )
    depthg_batches: str = field(
        default="auto",
        metadata={"help": "DepthG head training batches (auto: DepthG's 2334; 200 on synthetic)"},
    )
    depthg_frames: str = field(
        default="auto",
        metadata={"help": "frames whose five crops train the head (auto: 600; 24 on synthetic)"},
    )
    num_pseudo_classes: int = field(
        default=27, metadata={"help": "c_p", "range": Range(1, MAX_CLASS_ID + 1)}
    )
    sample_frames: int = field(
        default=48, metadata={"help": "frames sampled to fit k-means", "range": Range(1)}
    )
    alpha: float = field(
        default=0.15, metadata={"help": "motion seed threshold α (Eq. 1)", "range": Range(0)}
    )
    radius: int = field(
        default=8, metadata={"help": "Chebyshev radius r (Eq. 1)", "range": Range(0)}
    )
    tau_depth: float = field(
        default=0.02, metadata={"help": "relative depth τ_d (Eq. 1)", "range": Range(0)}
    )
    tau_flow: float = field(
        default=0.04, metadata={"help": "relative flow τ_f (Eq. 1)", "range": Range(0)}
    )
    min_instance_area: int = field(
        default=0,
        metadata={
            "help": "ours, 0 = off as in the paper: smallest instance kept",
            "range": Range(0),
        },
    )
    depth_guided: bool = field(default=True, metadata={"help": "Eq. 2 fusion (Table 3)"})
    crf: bool = field(default=True, metadata={"help": "dense CRF"})
    propagation: bool = field(default=True, metadata={"help": "propagation & tracking"})
    tau_match: float = field(
        default=0.4, metadata={"help": "IoU threshold τ_m", "range": Range(0, 1)}
    )
    smoothing: bool = field(default=True, metadata={"help": "temporal semantic smoothing"})
    psi_thing: float = field(
        default=0.08,
        metadata={"help": "thing/stuff threshold ψ_ts (CUPS config default)", "range": Range(0, 1)},
    )
    workers: int = field(
        default=2, metadata={"help": "processes labelling sequences", "range": Range(1)}
    )
    seed: int = field(default=0, metadata={"help": "k-means seed", "range": Range(0)})
    train_split: str = field(
        default="train", metadata={"help": "split pseudo-labelled and trained on (paper: train)"}
    )
    train_dataset: str = field(
        default="auto",
        metadata={
            "help": "dataset trained on (auto: cityscapes-sequence for the real datasets, "
            "as in the paper; the evaluated one for synthetic)"
        },
    )
    train_root: Path | None = field(
        default=None,
        metadata={"help": "root of train_dataset (default: config file / $VPSBENCH_DATA)"},
    )
    train_config: str = field(
        default="auto",
        metadata={
            "help": "training config: small, paper or a YAML path (auto: small on synthetic)"
        },
    )
    train_set: tuple[str, ...] = field(
        default=(), metadata={"help": "training config overrides SECTION.KEY=VALUE,…"}
    )
    backbone_weights: Path | None = field(
        default=None, metadata={"help": "DINO ResNet-50 checkpoint (paper config)"}
    )

    def __post_init__(self) -> None:
        window, stride = (
            _auto_count(self.window, "window"),
            _auto_count(self.window_stride, "window_stride"),
        )
        if window is not None and stride is not None and stride > window:
            raise VpsbenchError(
                f"--set window_stride={stride} must not exceed window={window} "
                "(the windows must overlap or touch to cover the frame)"
            )
        if not 0 < self.low_scale <= 1:
            raise VpsbenchError(f"--set low_scale={self.low_scale}: expected a number in (0, 1]")
        _auto_count(self.depthg_batches, "depthg_batches")
        _auto_count(self.depthg_frames, "depthg_frames")

    def settings(self) -> PseudoLabelSettings:
        return PseudoLabelSettings(
            alpha=self.alpha,
            radius=self.radius,
            tau_depth=self.tau_depth,
            tau_flow=self.tau_flow,
            min_instance_area=self.min_instance_area,
            depth_guided=self.depth_guided,
            window=_auto_count(self.window, "window"),
            window_stride=_auto_count(self.window_stride, "window_stride"),
            low_scale=self.low_scale,
            crf=self.crf,
            propagation=self.propagation,
            tau_match=self.tau_match,
            smoothing=self.smoothing,
        )


def build_cues(config: VideoCupsConfig, dataset: Dataset, device: str = "cpu") -> CueSet:
    """The providers named by the config (weights and device passed where they apply)."""
    depth_name = config.depth
    if depth_name == "auto":
        depth_name = "oracle" if dataset.name == "synthetic" else "dynamo-depth"
    flow_options = {} if config.flow_weights is None else {"weights": config.flow_weights}
    depth_options = {} if config.depth_weights is None else {"weights": config.depth_weights}
    flow = make_cue("flow", config.flow, flow_options)
    depth = make_cue("depth", depth_name, depth_options)

    options: dict[str, object] = {}
    if config.features != "handcrafted":
        options["device"] = device
        if config.feature_weights is not None:
            options["weights"] = config.feature_weights
    features = make_cue("features", config.features, options)
    assert isinstance(flow, FlowProvider) and isinstance(depth, DepthProvider)
    assert isinstance(features, FeatureProvider)
    return CueSet(flow, depth, features)


def _auto_count(value: str, name: str) -> int | None:
    """A positive whole-number setting, or None for ``auto``; one clear error otherwise."""
    if str(value).strip().lower() == "auto":
        return None
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count <= 0:
        raise VpsbenchError(f"--set {name}={value!r}: expected auto or a positive integer")
    return count


def with_semantic_head(cues: CueSet, head: str | None) -> CueSet:
    """S's features: the provider's, through the trained DepthG head when there is one."""
    if head is not None:
        cues.features = DepthGCodes(cues.features, depthg_head_from_checkpoint(head))
    return cues


@dataclass(frozen=True)
class LabelJob:
    """What every sequence of one pseudo-label run shares (picklable: it travels to the workers)."""

    place: WorkerContext  # the split labelled and the device
    config: VideoCupsConfig
    centroids: np.ndarray
    out: str
    head: str | None = None


@dataclass
class Labeller:
    """A worker's pseudo-labeller: the dataset and the cue networks, built once (weights loaded)."""

    job: LabelJob
    dataset: Dataset
    cues: CueSet
    settings: PseudoLabelSettings


def make_labeller(job: LabelJob) -> Labeller:
    """Open the dataset and build the cue providers (S's head included) on ``job.place.device``.

    On ``device="cuda"`` the cue networks, the dense CRF and region growing run on the GPU; on the
    CPU the CRF and region growing keep their numpy path.
    """
    device = job.place.device
    dataset = job.place.open().dataset
    cues = with_semantic_head(build_cues(job.config, dataset, device), job.head)
    settings = job.config.settings()
    if device != "cpu":
        settings = replace(settings, device=device)
    return Labeller(job, dataset, cues, settings)


def label_sequence(labeller: Labeller, sequence: SequenceRef) -> str:
    """Worker: pseudo-label one sequence and store its raw labels and split counts."""
    job = labeller.job
    clip = VideoClip(labeller.dataset, job.place.split, sequence)
    with one_torch_thread():
        frames = clip_pseudo_labels(clip, labeller.cues, job.centroids, labeller.settings)
    folder = Path(job.out) / sequence.name
    classes = job.config.num_pseudo_classes
    pixels = np.zeros(classes)
    inside = np.zeros(classes)
    for ref, frame in zip(sequence.frames, frames, strict=True):
        write_npz(folder / f"{ref.name}.npz", frame)
        counts = accumulate_split_counts(frame.semantic, frame.instance, classes)
        pixels += counts[0]
        inside += counts[1]
    atomic_write_text(
        folder / "counts.json",
        json.dumps({"class_pixels": pixels.tolist(), "in_instances": inside.tolist()}) + "\n",
    )
    return sequence.name


class VideoCups(Method):
    """VideoCUPS (this paper): video pseudo-labels, then a VPS model trained on them."""

    name = "videocups"
    description = "VideoCUPS: video pseudo-labels (Sec. 3.1), then MaskTrack training (Sec. 3.2)"
    stages = (PSEUDO_LABEL_STAGE, TRAIN_STAGE, PREDICT_STAGE)
    config_class = VideoCupsConfig
    citation = "Scene-Centric Unsupervised Video Panoptic Segmentation (VideoCUPS)"
    weights_info = "optional: RAFT/SMURF, Dynamo-Depth and DINO weights (see vpsbench.cues)"

    @property
    def settings(self) -> VideoCupsConfig:
        assert isinstance(self.config, VideoCupsConfig)
        return self.config

    def run_stage(self, stage: str, context: RunContext) -> None:
        if stage == TRAIN_STAGE:
            from vpsbench_methods.videocups.stage2 import train_stage

            train_stage(self.settings, context, self.training_context(context))
            return
        if stage == PREDICT_STAGE:
            from vpsbench_methods.videocups.stage2 import predict_stage

            predict_stage(self.settings, context)
            return
        if stage != PSEUDO_LABEL_STAGE:
            raise VpsbenchError(f"videocups has no stage {stage!r}")
        self._pseudo_label(self.training_context(context))

    def training_dataset(self, evaluated: Dataset) -> Dataset:
        """The dataset trained on: ``train_dataset`` (auto: :data:`TRAINING_VIDEO` or itself)."""
        name = self.settings.train_dataset
        if name == "auto":
            name = TRAINING_VIDEO.get(evaluated.name, evaluated.name)
        if name == evaluated.name and self.settings.train_root is None:
            return evaluated
        protocol = dict(evaluated.protocol) if name == evaluated.name else {}
        return open_dataset(name, self.settings.train_root, protocol)

    def training_context(self, context: RunContext) -> RunContext:
        """The run context of the training split (the evaluated split's when they are equal)."""
        split = self.settings.train_split
        dataset = self.training_dataset(context.dataset)
        if dataset is context.dataset and split == context.split:
            return context
        if dataset.name == "synthetic" and not (dataset.root / "images" / split).is_dir():
            from vpsbench.datasets.synthetic import Synthetic, prepare_synthetic

            assert isinstance(dataset, Synthetic)
            videos, frames, (height, width) = dataset.generated_size()
            seed = int(str(dataset.config().get("seed", 0)))
            context.log(f"synthetic has no {split} split yet: generating it in {dataset.root}")
            prepare_synthetic(
                dataset.root,
                videos=videos,
                frames=frames,
                height=height,
                width=width,
                seed=seed,
                splits=[split],
                workers=self.settings.workers,
            )
        try:
            sequences = dataset.sequences(split)
        except (OSError, VpsbenchError) as error:
            raise VpsbenchError(
                f"{dataset.name} has no readable {split!r} split to train on ({error}); "
                "set it with --set train_split=…, train_dataset=… or train_root=DIR"
            ) from None
        return RunContext(
            dataset,
            split,
            context.run_dir,
            context.device,
            sequences,
            context.log,
            context.executor,
        )

    def _pseudo_label(self, context: RunContext) -> None:
        stage = PSEUDO_LABEL_STAGE
        out = context.stage_dir(stage)
        head = self._semantic_head(context, out / "depthg")
        fitted = "centroids.npz" if head is None else "centroids_depthg.npz"  # codes' centroids
        centroids = self._centroids(context, out / fitted, head)
        pending = list(context.pending(stage))
        raw = out / "raw"
        job = LabelJob(
            context.for_workers(),
            self.settings,
            centroids,
            str(raw),
            None if head is None else str(head),
        )
        executor = context.executor
        if executor.kind is ExecutorKind.LOCAL:
            # Spawned, not forked: the parent has run torch (S's training), and a forked child
            # inherits its intra-op thread pool in a locked state and hangs on the first op.
            executor = replace(executor, workers=self.settings.workers, spawn=True)
        labeller = functools.partial(make_labeller, job)
        for name in ordered_map_with_setup(labeller, label_sequence, pending, executor):
            context.mark_done(stage, name)
            context.log(f"{stage}: {name} done")
        self._finalize(context, raw, out)

    def _semantic_head(self, context: RunContext, folder: Path) -> Path | None:
        """Train (resume, or reuse) S's DepthG head on the stage's features and depth (Sec. 3.1).

        Frames spread evenly over the split, their five crops, nearest-neighbour positives from
        the same features (:mod:`vpsbench_methods.videocups.depthg_training`); None with ``depthg``
        off.
        """
        if not self.settings.depthg:
            return None
        cues = build_cues(self.settings, context.dataset, context.device)
        config = replace(
            training_config(
                context.dataset.name,
                _auto_count(self.settings.depthg_batches, "depthg_batches"),
                _auto_count(self.settings.depthg_frames, "depthg_frames"),
                self.settings.num_pseudo_classes,
            ),
            seed=self.settings.seed,
        )
        frames = [(s, t) for s in context.sequences for t in range(len(s.frames))]
        chosen = frames[:: max(1, len(frames) // config.frames)][: config.frames]

        def views() -> Iterator[tuple[np.ndarray, np.ndarray]]:
            for sequence, t in chosen:
                clip = VideoClip(context.dataset, context.split, sequence)
                yield clip.image(t), cues.depth.depth_motion(clip, t).depth

        return ensure_depthg_head(
            views,
            cues.features.image_features,
            config,
            folder,
            device=context.device,
            log=context.log,
        )

    def _centroids(self, context: RunContext, path: Path, head: Path | None = None) -> np.ndarray:
        """Fit (or reload) the k-means pseudo-classes on P_low features of frames of the split.

        The features S clusters: those of the half-resolution, flip-averaged pass (Eq. 2's P_low),
        through the DepthG head when one was trained (its codes).
        """
        if path.is_file():
            return np.asarray(load_npz_arrays(path)["centroids"], dtype=np.float64)
        cues = with_semantic_head(
            build_cues(self.settings, context.dataset, context.device),
            None if head is None else str(head),
        )
        frames = [(s, t) for s in context.sequences for t in range(len(s.frames))]
        step = max(1, len(frames) // self.settings.sample_frames)
        feature_maps = (
            low_resolution_features(
                cues.features.image_features,
                VideoClip(context.dataset, context.split, sequence).image(t),
                self.settings.low_scale,
            )[0]
            for sequence, t in frames[::step][: self.settings.sample_frames]
        )
        samples = sample_feature_vectors(feature_maps, 2000, seed=self.settings.seed)
        centroids = normalize_rows(
            fit_pseudo_classes(samples, self.settings.num_pseudo_classes, seed=self.settings.seed)
        )
        atomic_write_bytes(path, encode_npz({"centroids": centroids}))
        return centroids

    def _finalize(self, context: RunContext, raw: Path, out: Path) -> None:
        """Thing/stuff split over all sequences, final labels as STEP PNGs, and a summary."""
        pixels = np.zeros(self.settings.num_pseudo_classes)
        inside = np.zeros(self.settings.num_pseudo_classes)
        for sequence in context.sequences:
            counts = json.loads((raw / sequence.name / "counts.json").read_text())
            pixels += np.array(counts["class_pixels"])
            inside += np.array(counts["in_instances"])
        things = thing_stuff_split(pixels, inside, self.settings.psi_thing)
        lengths: list[int] = []
        for sequence in context.sequences:
            frames = [read_npz(raw / sequence.name / f"{ref.name}.npz") for ref in sequence.frames]
            final = finalize_clip(frames, things)
            lengths += _track_lengths(final)
            for ref, frame in zip(sequence.frames, final, strict=True):
                write_step_png(out / "labels" / ref.sequence / f"{ref.name}.png", frame)
        summary = {
            "tracks": len(lengths),
            "track_length": {
                "mean": float(np.mean(lengths)) if lengths else 0.0,
                "median": float(np.median(lengths)) if lengths else 0.0,
                "max": int(max(lengths, default=0)),
            },
            "thing_pseudo_classes": np.flatnonzero(things).tolist(),
            "stuff_pseudo_classes": np.flatnonzero(~things).tolist(),
            "settings": json.loads(json.dumps(asdict(self.settings), default=str)),
        }
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
        context.log(
            f"{PSEUDO_LABEL_STAGE}: {summary['tracks']} tracks, thing pseudo-classes "
            f"{summary['thing_pseudo_classes']}; labels in {out / 'labels'}"
        )


def _track_lengths(frames: Sequence[PanopticFrame]) -> list[int]:
    """Number of frames each track id appears in."""
    appearances: dict[int, int] = {}
    for frame in frames:
        for ident in np.unique(frame.instance[frame.instance > 0]):
            appearances[int(ident)] = appearances.get(int(ident), 0) + 1
    return list(appearances.values())
