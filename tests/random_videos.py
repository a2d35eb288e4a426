"""Seeded random blocky videos with ground truth and a noisy prediction, for metric tests.

A video is a list of ``(ground_truth, prediction, weights)`` frames in an evaluation label space:

* ground truth: a coarse grid of stuff classes, moving rectangular thing tracks (instance ids
  persist across frames and are reused between classes), crowd rectangles (a thing class with
  instance 0) and ignore rectangles (``ignore_label``);
* prediction: the ground truth seen through a tracker that mostly keeps one predicted id per track
  but sometimes switches it or merges two tracks, sometimes gets the class wrong, predicts things
  on crowd and ignore regions, and has random rectangles of noise (including void, class -1)
  that shift segment boundaries so IoUs spread around the 0.5 threshold;
* weights: ``None``, or per-block float weights in (0, 1] (Waymo-style wSTQ).

Everything is drawn from the given ``numpy.random.Generator``, so a seed fixes the video.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from vpsbench.video import PanopticFrame

Frame = tuple[PanopticFrame, PanopticFrame, npt.NDArray[np.float64] | None]
IntMap = npt.NDArray[np.int32]


@dataclass
class _Track:
    """A moving rectangle of one thing class in the ground truth, and how it is predicted."""

    gt_class: int
    gt_instance: int  # 0 = crowd
    pred_class: int
    pred_instance: int
    top: int
    left: int
    height: int
    width: int


def _paint(
    semantic: IntMap, instance: IntMap, box: tuple[int, int, int, int], cls: int, inst: int
) -> None:
    """Paint a (top, left, height, width) rectangle, clipped to the frame."""
    top, left, height, width = box
    rows = slice(max(top, 0), max(top + height, 0))
    cols = slice(max(left, 0), max(left + width, 0))
    semantic[rows, cols] = cls
    instance[rows, cols] = inst


def _random_box(
    rng: np.random.Generator, height: int, width: int, max_fraction: float
) -> tuple[int, int, int, int]:
    """A random rectangle of at most ``max_fraction`` of each side, possibly crossing a border."""
    box_height = int(rng.integers(1, max(2, int(height * max_fraction)) + 1))
    box_width = int(rng.integers(1, max(2, int(width * max_fraction)) + 1))
    top = int(rng.integers(-box_height // 2, height))
    left = int(rng.integers(-box_width // 2, width))
    return top, left, box_height, box_width


def random_video(
    rng: np.random.Generator,
    num_frames: int,
    height: int,
    width: int,
    num_classes: int,
    thing_classes: Sequence[int],
    *,
    num_tracks: int = 6,
    max_instance: int = 5,
    stuff_cell: int = 8,
    crowd_probability: float = 0.15,
    ignore_boxes: int = 1,
    class_error_probability: float = 0.1,
    id_switch_probability: float = 0.15,
    noise_boxes: int = 4,
    void_probability: float = 0.25,
    stuff_instances_in_prediction: bool = False,
    weighted: bool = False,
    ignore_label: int = 255,
) -> list[Frame]:
    """A random blocky video of ``num_frames`` frames with ground truth, prediction and weights.

    ``thing_classes`` must leave at least one stuff class in ``range(num_classes)``. Thing
    instance ids are drawn from 1..``max_instance`` (so different classes reuse ids), predicted
    ids from a larger range. ``stuff_instances_in_prediction`` puts random instance ids on
    predicted stuff pixels (metrics must drop them).
    """
    things = sorted(set(thing_classes))
    stuff = [c for c in range(num_classes) if c not in things]
    if not stuff:
        raise ValueError("random_video needs at least one stuff class")
    next_pred_id = 1

    def new_pred_id() -> int:
        nonlocal next_pred_id
        next_pred_id += int(rng.integers(1, 4))
        return next_pred_id

    tracks: list[_Track] = []
    for _ in range(num_tracks if things else 0):
        cls = int(rng.choice(things))
        crowd = bool(rng.random() < crowd_probability)
        box = _random_box(rng, height, width, 0.5)
        tracks.append(
            _Track(
                gt_class=cls,
                gt_instance=0 if crowd else int(rng.integers(1, max_instance + 1)),
                pred_class=cls,
                pred_instance=new_pred_id(),
                top=box[0],
                left=box[1],
                height=box[2],
                width=box[3],
            )
        )
    cell_rows = -(-height // stuff_cell)
    cell_cols = -(-width // stuff_cell)
    stuff_grid = rng.choice(stuff, size=(cell_rows, cell_cols))

    video: list[Frame] = []
    for _ in range(num_frames):
        # Stuff background: a coarse grid that changes a few cells per frame.
        changed = rng.random(stuff_grid.shape) < 0.2
        stuff_grid = np.where(changed, rng.choice(stuff, size=stuff_grid.shape), stuff_grid)
        stuff_map = np.kron(stuff_grid, np.ones((stuff_cell, stuff_cell), dtype=np.int64))
        gt_semantic = stuff_map[:height, :width].astype(np.int32)
        gt_instance = np.zeros_like(gt_semantic)
        pred_semantic = gt_semantic.copy()
        pred_instance = np.zeros_like(gt_semantic)
        wrong_stuff = rng.random(gt_semantic.shape) < class_error_probability
        pred_semantic[wrong_stuff] = rng.choice(stuff, size=int(wrong_stuff.sum()))

        # Thing tracks move a little, the tracker keeps, switches or merges their ids.
        for track in tracks:
            track.top += int(rng.integers(-2, 3))
            track.left += int(rng.integers(-2, 3))
            track.height = max(1, track.height + int(rng.integers(-1, 2)))
            track.width = max(1, track.width + int(rng.integers(-1, 2)))
            if rng.random() < id_switch_probability:
                other = tracks[int(rng.integers(len(tracks)))]
                track.pred_instance = other.pred_instance if rng.random() < 0.3 else new_pred_id()
            if rng.random() < class_error_probability:
                track.pred_class = int(rng.choice(things))
        for index in rng.permutation(len(tracks)):
            track = tracks[int(index)]
            box = (track.top, track.left, track.height, track.width)
            _paint(gt_semantic, gt_instance, box, track.gt_class, track.gt_instance)
            _paint(pred_semantic, pred_instance, box, track.pred_class, track.pred_instance)

        # Ignore regions: the prediction puts a thing, a stuff class or void on them.
        for _ in range(ignore_boxes):
            box = _random_box(rng, height, width, 0.4)
            _paint(gt_semantic, gt_instance, box, ignore_label, 0)
            choice = rng.random()
            if choice < 0.4 and things:
                _paint(pred_semantic, pred_instance, box, int(rng.choice(things)), new_pred_id())
            elif choice < 0.7:
                _paint(pred_semantic, pred_instance, box, int(rng.choice(stuff)), 0)
            else:
                _paint(pred_semantic, pred_instance, box, -1, 0)

        # Noise: rectangles of void, stuff or spurious things that shift segment boundaries.
        for _ in range(noise_boxes):
            box = _random_box(rng, height, width, 0.3)
            choice = rng.random()
            if choice < void_probability:
                _paint(pred_semantic, pred_instance, box, -1, 0)
            elif choice < 0.6 and things:
                _paint(pred_semantic, pred_instance, box, int(rng.choice(things)), new_pred_id())
            else:
                _paint(pred_semantic, pred_instance, box, int(rng.choice(stuff)), 0)

        if stuff_instances_in_prediction:
            on_stuff = np.isin(pred_semantic, stuff)
            pred_instance[on_stuff] = rng.integers(0, 3, size=int(on_stuff.sum()))

        weights: npt.NDArray[np.float64] | None = None
        if weighted:
            coarse = rng.choice([1.0, 0.5, 1.0 / 3.0, 0.25], size=(cell_rows, cell_cols))
            weights = np.kron(coarse, np.ones((stuff_cell, stuff_cell)))[:height, :width]
        video.append(
            (
                PanopticFrame.from_arrays(gt_semantic, gt_instance),
                PanopticFrame.from_arrays(pred_semantic, pred_instance),
                weights,
            )
        )
    return video


def random_split(
    rng: np.random.Generator,
    num_sequences: int,
    frame_counts: Sequence[int],
    height: int,
    width: int,
    num_classes: int,
    thing_classes: Sequence[int],
    **options: Any,
) -> dict[str, list[Frame]]:
    """Several random videos keyed ``seq00, seq01, ...``, lengths drawn from ``frame_counts``."""
    return {
        f"seq{index:02d}": random_video(
            rng,
            int(rng.choice(frame_counts)),
            height,
            width,
            num_classes,
            thing_classes,
            **options,
        )
        for index in range(num_sequences)
    }
