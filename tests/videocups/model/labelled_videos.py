"""A tiny synthetic training split with hand-painted pseudo-labels, for the stage-2 tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from vpsbench_methods.videocups.model.data import ClassSpace, PseudoLabelClips

from vpsbench.datasets import open_dataset
from vpsbench.datasets.synthetic import prepare_synthetic
from vpsbench.formats.step import write_step_png
from vpsbench.video import PanopticFrame

HEIGHT, WIDTH = 32, 64
SPACE = ClassSpace(things=(5, 2), stuff=(0, 1, 3))


def labelled_synthetic(
    root: Path, labels: Path, videos: int, seed: int, paint: Callable[[int], PanopticFrame]
) -> None:
    """Three 32×64 frames per video under ``root``; ``paint(t)`` is every video's label ``t``."""
    prepare_synthetic(
        root,
        videos=videos,
        frames=3,
        height=HEIGHT,
        width=WIDTH,
        seed=seed,
        splits=["train"],
        workers=1,
    )
    for sequence in open_dataset("synthetic", root).sequences("train"):
        for frame in sequence.frames:
            write_step_png(labels / sequence.name / f"{frame.name}.png", paint(frame.index))


def training_clips(
    root: Path, labels: Path, size: tuple[int, int] | None, min_area: int
) -> PseudoLabelClips:
    """Two-frame clips of the train split of :func:`labelled_synthetic`, in :data:`SPACE`."""
    dataset = open_dataset("synthetic", root)
    return PseudoLabelClips(
        dataset,
        "train",
        dataset.sequences("train"),
        labels,
        SPACE,
        clip_length=2,
        input_size=size,
        min_instance_area=min_area,
    )
