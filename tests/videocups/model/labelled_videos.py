"""A tiny synthetic training split with hand-painted pseudo-labels, for the stage-2 tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from vpsbench.datasets import open_dataset
from vpsbench.datasets.synthetic import prepare_synthetic
from vpsbench.formats.step import write_step_png
from vpsbench.video import PanopticFrame

HEIGHT, WIDTH = 32, 64


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
