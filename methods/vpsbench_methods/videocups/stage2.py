"""VideoCUPS stages ``train`` and ``predict`` (paper Sec. 3.2) inside a ``run-method`` run.

``train`` reads the pseudo-labels of the training split and their thing/stuff split, builds the
network of the training config, and runs the trainer in ``<run>/train`` (``train.log``,
``metrics.jsonl``, ``checkpoints/``, ``model_final.pt``, ``summary.json``); an interrupted
training resumes from its last checkpoint. Under ``torchrun`` every process trains its share of
each step (DDP); only rank 0 writes. ``predict`` loads ``model_final.pt`` and writes one
prediction per frame of the evaluated split, sequence by sequence (resumable; ``--executor ray``:
sequences spread over Ray actors that load the model once each).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from vpsbench.errors import InputError
from vpsbench.executors import ordered_map_with_setup
from vpsbench.formats.atomic import atomic_write_text
from vpsbench.methods.base import PREDICT_STAGE, RunContext, WorkerContext
from vpsbench.video import PanopticFrame, SequenceRef
from vpsbench_methods.videocups.model.config import TrainingConfig, load_training_config
from vpsbench_methods.videocups.model.data import ClassSpace, PseudoLabelClips
from vpsbench_methods.videocups.model.network import PanopticCascadeMaskTrack
from vpsbench_methods.videocups.model.recipe import (
    VideoCupsStep,
    build_model,
    predict_sequences,
    validation_callback,
)
from vpsbench_methods.videocups.model.trainer import Trainer, distributed_env
from vpsbench_methods.videocups.torch_threads import one_torch_thread

if TYPE_CHECKING:
    from vpsbench_methods.videocups.plugin import VideoCupsConfig

TRAIN_STAGE = "train"
FINAL_WEIGHTS = "model_final.pt"


def training_config(settings: VideoCupsConfig, dataset_name: str) -> TrainingConfig:
    """The training config the method settings name, with their overrides applied."""
    name = settings.train_config
    if name == "auto":
        name = "small" if dataset_name == "synthetic" else "paper"
    overrides = list(settings.train_set)
    if settings.backbone_weights is not None:
        overrides.append(f"model.backbone_weights={settings.backbone_weights}")
    return load_training_config(name, overrides)


def _class_space(run_dir: Path) -> ClassSpace:
    return ClassSpace.from_summary(run_dir / "pseudo-label" / "summary.json")


def _device(requested: str) -> torch.device:
    """The device of this process (``cuda:LOCAL_RANK`` under torchrun)."""
    _, world_size, local_rank = distributed_env()
    if requested.startswith("cuda") and world_size > 1:
        return torch.device("cuda", local_rank)
    return torch.device(requested)


def train_stage(settings: VideoCupsConfig, context: RunContext, train: RunContext) -> None:
    """Train on the pseudo-labels of ``train``'s split; validate on ``context``'s split."""
    config = training_config(settings, context.dataset.name)
    space = _class_space(context.run_dir)
    model_settings = config.model
    size = (model_settings.input_height, model_settings.input_width)
    clips = PseudoLabelClips(
        train.dataset,
        train.split,
        train.sequences,
        context.run_dir / "pseudo-label" / "labels",
        space,
        clip_length=config.data.clip_length,
        input_size=size if size[0] else None,
        min_instance_area=config.data.min_instance_area,
        min_instance_width=config.data.min_instance_width,
    )
    rank, world_size, _ = distributed_env()
    loop = config.loop(len(clips), world_size)
    model = build_model(config, space)
    evaluate = None
    if loop.eval_every:
        evaluate = validation_callback(
            context.dataset, context.split, context.sequences, space, config
        )
    out = context.stage_dir(TRAIN_STAGE)
    context.log(
        f"{TRAIN_STAGE}: {len(clips)} clips of {train.split}, {loop.steps} steps, "
        f"{len(space.things)} thing / {len(space.stuff)} stuff classes, config {config.source}"
    )
    trainer = Trainer(
        model,
        loop,
        out,
        VideoCupsStep(clips, config, loop.steps, loop.seed),
        evaluate=evaluate,
        images_per_step=config.data.clips_per_step * config.data.clip_length * world_size,
        device=context.device,  # the trainer picks cuda:LOCAL_RANK under torchrun
        log=context.log,
        config_fingerprint={"training": config.as_dict(), "things": list(space.things)},
    )
    summary = trainer.fit()
    trainer.close()
    if rank != 0:
        return
    record: dict[str, Any] = {
        "steps": summary.final_step,
        "seconds": round(summary.seconds, 3),
        "images_per_second": round(summary.images_per_second, 3),
        "peak_memory_bytes": summary.peak_memory_bytes,
        "last_losses": {k: round(float(v), 6) for k, v in summary.last_losses.items()},
        "world_size": world_size,
        "device": str(trainer.device),
        "config": config.as_dict(),
    }
    atomic_write_text(out / "summary.json", json.dumps(record, indent=2, sort_keys=True) + "\n")


def trained_weights(run_dir: Path) -> Path:
    """The run's ``train/model_final.pt``; :class:`InputError` when the train stage has not run."""
    path = run_dir / TRAIN_STAGE / FINAL_WEIGHTS
    if not path.is_file():
        raise InputError(path, "missing: run the train stage first")
    return path


def load_trained_model(
    settings: VideoCupsConfig, context: RunContext
) -> tuple[PanopticCascadeMaskTrack, ClassSpace, TrainingConfig]:
    """The trained network of this run (``train/model_final.pt``), on the run's device."""
    config = training_config(settings, context.dataset.name)
    space = _class_space(context.run_dir)
    path = trained_weights(context.run_dir)
    model = build_model(config, space, load_backbone=False)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except (RuntimeError, OSError, KeyError) as error:
        problem = str(error).splitlines()[0]
        raise InputError(path, f"cannot load the trained model: {problem}") from None
    return model.to(_device(context.device)), space, config


@dataclass(frozen=True)
class PredictJob:
    """What every sequence of the predict stage shares (picklable: it travels to the workers)."""

    settings: VideoCupsConfig
    place: WorkerContext


@dataclass
class Predictor:
    """A worker's trained model (loaded once) and where its predictions go."""

    context: RunContext
    model: PanopticCascadeMaskTrack
    space: ClassSpace
    config: TrainingConfig


def make_predictor(job: PredictJob) -> Predictor:
    """Open the split and load the trained model on the worker's device."""
    context = job.place.open()
    return Predictor(context, *load_trained_model(job.settings, context))


def predict_sequence(predictor: Predictor, sequence: SequenceRef) -> str:
    """Worker: predict every frame of one sequence and write the predictions."""
    context = predictor.context

    def write(sequence: SequenceRef, index: int, frame: PanopticFrame) -> None:
        context.write_prediction(sequence.frames[index], frame)

    with one_torch_thread():  # the bytes must not depend on the executor (torch_threads)
        predict_sequences(
            predictor.model,
            context.dataset,
            context.split,
            [sequence],
            predictor.space,
            predictor.config,
            write,
        )
    return sequence.name


def predict_stage(settings: VideoCupsConfig, context: RunContext) -> None:
    """Predict every pending sequence of the evaluated split with the trained model, wherever
    ``context.executor`` says (the model loaded once per worker: in this process, per actor)."""
    trained_weights(context.run_dir)  # before any worker starts
    setup = functools.partial(make_predictor, PredictJob(settings, context.for_workers()))
    pending = list(context.pending(PREDICT_STAGE))
    for name in ordered_map_with_setup(setup, predict_sequence, pending, context.executor):
        context.mark_done(PREDICT_STAGE, name)
        context.log(f"{PREDICT_STAGE}: {name} done")
