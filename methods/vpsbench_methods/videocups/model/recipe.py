"""The VideoCUPS training recipe (paper Sec. 3.2): model, clips, copy-paste, losses, evaluation.

One training step on one rank: draw the step's clips (a pure function of seed, step and rank;
each flipped and cut by a random resized crop); with copy-paste on, collect video instances —
from the batch's pseudo-labels (plain mode, and the self-enhanced mode's warm-up, the first
``augment.self_enhance_start`` of training), or else only the model's own confident tracks on
the batch that the pseudo-labels miss (CUPS' ``training_step``) — and paste them along random
trajectories into the batch's clips; resize the batch to a random training size and apply
photometric augmentation (CUPS); then compute the losses (Video DropLoss, Eq. 3, when
``loss.drop_loss``). The trainer sums them, steps AdamW and checkpoints. Periodic evaluation
predicts a few val sequences and scores them.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from vpsbench.cues.base import MissingWeightsError
from vpsbench.datasets.base import Dataset
from vpsbench.video import PanopticFrame, SequenceRef
from vpsbench_methods.videocups.model.backbone_weights import load_dino_resnet50
from vpsbench_methods.videocups.model.config import TrainingConfig
from vpsbench_methods.videocups.model.copy_paste import (
    VideoInstance,
    copy_paste_batch,
    instances_from_predictions,
    instances_from_targets,
)
from vpsbench_methods.videocups.model.data import (
    ClassSpace,
    PseudoLabelClips,
    jitter_size,
    load_image,
    photometric_augment,
    resize_clip,
)
from vpsbench_methods.videocups.model.network import (
    PanopticCascadeMaskTrack,
    paper_architecture,
    small_architecture,
)
from vpsbench_methods.videocups.model.predict import predict_video
from vpsbench_methods.videocups.model.targets import Clip
from vpsbench_methods.videocups.model.tracking import TrackMemory
from vpsbench_methods.videocups.model.trainer import StepContext

DINO_RESNET50_URL = (
    "https://dl.fbaipublicfiles.com/dino/dino_resnet50_pretrain/dino_resnet50_pretrain.pth"
)


def build_model(
    config: TrainingConfig, space: ClassSpace, *, load_backbone: bool = True
) -> PanopticCascadeMaskTrack:
    """The network of ``model.architecture`` for the pseudo-label class space.

    ``load_backbone`` initialises the backbone from ``model.backbone_weights`` (required by the
    ``paper`` architecture); a trained model's own weights are loaded without it.
    """
    settings = config.model
    preset = small_architecture if settings.architecture == "small" else paper_architecture
    architecture = preset(len(space.things), len(space.stuff))
    architecture = dataclasses.replace(
        architecture,
        anchor_sizes=settings.anchor_sizes or architecture.anchor_sizes,
        roi_score_thresh_test=settings.score_threshold,
        combine_instances_score_thresh=settings.score_threshold,
        combine_stuff_area_thresh=settings.stuff_area_threshold,
    )
    model = PanopticCascadeMaskTrack(
        architecture,
        config.loss,
        embed_dim=settings.embed_dim,
        track_norm_scale=settings.track_norm_scale or None,
    )
    if not load_backbone:
        return model
    if settings.architecture == "paper":
        path = settings.backbone_weights
        if path is None or not Path(path).is_file():
            raise MissingWeightsError("dino-resnet50", path, DINO_RESNET50_URL)
        load_dino_resnet50(model.backbone.bottom_up, Path(path))
    elif settings.backbone_weights is not None:
        load_dino_resnet50(model.backbone.bottom_up, Path(settings.backbone_weights))
    return model


def unwrap(model: nn.Module) -> PanopticCascadeMaskTrack:
    """The network inside a DistributedDataParallel wrapper (or the model itself)."""
    inner = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    assert isinstance(inner, PanopticCascadeMaskTrack)
    return inner


@torch.no_grad()
def predicted_video_instances(
    model: PanopticCascadeMaskTrack, clip: Clip, config: TrainingConfig
) -> list[VideoInstance]:
    """The model's confident thing tracks in one clip that overlap no pseudo-instance (Sec. 3.2).

    As CUPS' ``prediction_to_label_format`` and ``filter_predictions``: detections scoring above
    ``copy_paste.min_score`` whose boxes overlap no pseudo-label box by IoU 0.5 or more.
    """
    was_training = model.training
    model.eval()
    detections = model.detect(clip.images.to(next(model.parameters()).device))
    model.train(was_training)
    memory = TrackMemory(config.tracker)
    masks, classes, scores, track_ids = [], [], [], []
    for frame in detections:
        confident = frame.scores > config.copy_paste.min_score
        ids = memory.associate(
            frame.boxes[confident],
            frame.scores[confident],
            frame.classes[confident],
            frame.embeddings[confident],
        )
        masks.append(frame.masks[confident].cpu())
        classes.append(frame.classes[confident].cpu())
        scores.append(frame.scores[confident].cpu())
        track_ids.append(ids.cpu())
    pseudo_boxes = [target.boxes.cpu() for target in clip.targets]
    return instances_from_predictions(
        clip.images, masks, classes, scores, track_ids, config.copy_paste, pseudo_boxes
    )


@dataclass
class VideoCupsStep:
    """The step function of the trainer: clips → copy-paste → losses (pure in step and rank)."""

    clips: PseudoLabelClips
    config: TrainingConfig
    total_steps: int
    seed: int

    def augment(
        self, model: PanopticCascadeMaskTrack, batch: list[Clip], ctx: StepContext
    ) -> list[Clip]:
        """Copy-paste of the batch's pseudo-label instances, or its predicted ones after warm-up.

        CUPS pastes pseudo-label objects for ``NUM_STEPS_STARTUP`` steps and afterwards only the
        model's confident predictions (none: no paste), never a mix of both.
        """
        mode = self.config.augment.copy_paste
        if mode == "none":
            return batch
        start = self.config.augment.self_enhance_start * self.total_steps
        pool: list[VideoInstance] = []
        if mode == "self-enhanced" and ctx.step >= start:
            for clip in batch:
                pool += predicted_video_instances(model, clip, self.config)
        else:
            pool = [instance for clip in batch for instance in instances_from_targets(clip)]
        if not pool:
            return batch
        return copy_paste_batch(batch, pool, self.config.copy_paste, ctx.generator)

    def __call__(self, model: nn.Module, ctx: StepContext) -> dict[str, Tensor]:
        data = self.config.data
        batch = self.clips.batch(
            ctx.step,
            ctx.rank,
            ctx.world_size,
            data.clips_per_step,
            self.seed,
            data.horizontal_flip,
            ctx.generator,
            crop_scale=data.crop_scale,
        )
        batch = self.augment(unwrap(model), batch, ctx)
        # CUPS' order: copy-paste, then resolution jitter (one size per batch), then photometric.
        if data.jitter_scales and batch:
            base = (int(batch[0].images.shape[-2]), int(batch[0].images.shape[-1]))
            size = jitter_size(base, data.jitter_scales, ctx.generator)
            batch = [resize_clip(clip, size, data.min_instance_area) for clip in batch]
        if data.photometric:
            batch = [
                Clip(photometric_augment(clip.images, ctx.generator), clip.targets)
                for clip in batch
            ]
        device = ctx.device
        batch = [
            Clip(clip.images.to(device), [t.to(device) for t in clip.targets]) for clip in batch
        ]
        with ctx.autocast():
            losses: dict[str, Tensor] = model(batch, generator=ctx.generator)
        return losses


def predict_sequences(
    model: PanopticCascadeMaskTrack,
    dataset: Dataset,
    split: str,
    sequences: Sequence[SequenceRef],
    space: ClassSpace,
    config: TrainingConfig,
    write: Callable[[SequenceRef, int, PanopticFrame], None],
) -> None:
    """Predict every frame of ``sequences`` and hand each to ``write(sequence, index, frame)``."""
    size = _input_size(config)
    for sequence in sequences:
        frames = (load_image(dataset, split, ref) for ref in sequence.frames)
        for index, frame in enumerate(predict_video(model, frames, space, config.tracker, size)):
            write(sequence, index, frame)


def _input_size(config: TrainingConfig) -> tuple[int, int] | None:
    settings = config.model
    return (settings.input_height, settings.input_width) if settings.input_height else None


def validation_callback(
    dataset: Dataset,
    split: str,
    sequences: Sequence[SequenceRef],
    space: ClassSpace,
    config: TrainingConfig,
) -> Callable[[nn.Module, int], Mapping[str, float]]:
    """Predict ``evaluation.sequences`` val sequences and score them (STQ, AQ, SQ in %)."""
    from vpsbench.evaluation import EvaluationJob, EvaluationSettings, evaluate
    from vpsbench.methods.base import RunContext
    from vpsbench.predictions import PredictionSource

    count = config.evaluation.sequences
    chosen = list(sequences)[:count] if count else list(sequences)

    def run(model: nn.Module, step: int) -> Mapping[str, float]:
        network = unwrap(model)
        was_training = network.training
        with tempfile.TemporaryDirectory(prefix="videocups-eval-") as scratch:
            context = RunContext(dataset, split, Path(scratch), sequences=chosen)

            def write(sequence: SequenceRef, index: int, frame: PanopticFrame) -> None:
                context.write_prediction(sequence.frames[index], frame)

            predict_sequences(network, dataset, split, chosen, space, config, write)
            result = evaluate(
                EvaluationJob(dataset, split, PredictionSource.open(context.predictions_dir)),
                EvaluationSettings(metrics=("stq",)),
                sequences=[s.name for s in chosen],
            )
        network.train(was_training)
        return {"STQ": 100 * result.stq.stq, "AQ": 100 * result.stq.aq, "SQ": 100 * result.stq.sq}

    return run
