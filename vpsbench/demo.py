"""A small generated example for ``vpsbench demo``: street-like videos and noisy predictions.

The ground truth is drawn procedurally in the Cityscapes label space (sky, building, vegetation,
sidewalk, road; cars and people moving across the frame; a far crowd region; void pixels) and
written in the KITTI-STEP layout, so the real loader and evaluator run on it.

The predictions are NOT a method's output: they are the ground truth perturbed by a documented
noise model, so that the numbers are meaningful but below 100%:

* classes are renamed to 27 pseudo-class ids by a fixed random permutation; road and building are
  each split into two pseudo-classes (near/far half), vegetation is merged into building's;
* object masks are dilated or eroded by one pixel, and 5% of stuff boundaries shift;
* one car's track id switches half-way, one person is split into two tracks (upper/lower half),
  two cars share one id, and every object is missed in 10% of the frames.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rich.console import Console
from scipy import ndimage

from vpsbench.formats.png import write_png
from vpsbench.formats.step import write_step_png
from vpsbench.video import PanopticFrame

ROAD, SIDEWALK, BUILDING, VEGETATION, SKY, PERSON, CAR = 0, 1, 2, 8, 10, 11, 13
VOID = 255
SEQUENCES = ("0002", "0006", "0007")
FRAMES, HEIGHT, WIDTH = 20, 96, 320
NUM_PSEUDO = 27


def _ground_truth_frame(rng_seed: int, t: int) -> PanopticFrame:
    """Frame ``t`` of the video with seed ``rng_seed``: a fixed street with moving objects."""
    rng = np.random.default_rng(rng_seed)
    rows = np.arange(HEIGHT)[:, None]
    cols = np.arange(WIDTH)[None, :]
    horizon = HEIGHT // 3 + int(rng.integers(-4, 5))
    semantic = np.full((HEIGHT, WIDTH), SKY, dtype=np.int32)
    skyline = horizon - 10 - (np.sin(cols / (9 + rng.integers(0, 5))) * 6).astype(int)
    semantic[(rows >= skyline) & (rows < horizon + 12)] = BUILDING
    trees = (np.sin(cols / 13.0 + rng_seed) > 0.6) & (rows >= horizon - 4) & (rows < horizon + 12)
    semantic[trees] = VEGETATION
    semantic[horizon + 12 :] = SIDEWALK
    semantic[horizon + 22 :] = ROAD
    instance = np.zeros_like(semantic)

    objects = [  # (class, id, row, start column, speed, height, width)
        (CAR, 1, horizon + 30, 10, 6, 18, 44),
        (CAR, 2, horizon + 40, 250, -5, 20, 50),
        (CAR, 3, horizon + 24, 150, 2, 12, 30),
        (PERSON, 4, horizon + 8, 40, 2, 22, 8),
        (PERSON, 5, horizon + 6, 280, -1, 20, 7),
    ]
    for cls, ident, top, left, speed, h, w in objects:
        x = (left + speed * t) % (WIDTH + w) - w
        mask = (rows >= top) & (rows < min(top + h, HEIGHT)) & (cols >= x) & (cols < x + w)
        semantic[mask] = cls
        instance[mask] = ident
        if cls == PERSON:  # a void ring around people, as KITTI-STEP's dilation ring
            ring = ndimage.binary_dilation(mask, iterations=1) & ~mask
            semantic[ring] = VOID
    crowd = (rows >= horizon + 14) & (rows < horizon + 18) & (cols >= 200) & (cols < 212)
    semantic[crowd] = CAR
    instance[crowd] = 0
    return PanopticFrame(semantic, instance)


def _perturb(frame: PanopticFrame, t: int, rng: np.random.Generator) -> PanopticFrame:
    """Apply the documented noise model to a ground-truth frame (pseudo-class ids out)."""
    permutation = np.random.default_rng(7).permutation(NUM_PSEUDO)
    semantic = frame.semantic.copy()
    instance = frame.instance.copy()
    cols = np.arange(WIDTH)[None, :]
    rows = np.arange(HEIGHT)[:, None]

    # Objects: dilate cars, erode people, drop 10% of them per frame, tracking errors.
    pseudo_instance = np.zeros_like(instance)
    for ident in np.unique(instance[instance > 0]):
        mask = instance == ident
        if rng.random() < 0.1:
            semantic[mask] = ROAD
            continue
        cls = int(np.bincount(semantic[mask]).argmax())
        if cls == CAR:
            mask = ndimage.binary_dilation(mask) & (semantic != PERSON)
        else:
            mask = ndimage.binary_erosion(mask) if mask.sum() > 30 else mask
        new_id = int(ident)
        if ident == 1 and t >= FRAMES // 2:
            new_id = 11  # identity switch half-way
        if ident == 3:
            new_id = 2  # two cars merged into one track
        semantic[mask] = cls
        pseudo_instance[mask] = new_id
        if ident == 4:  # person split into two tracks
            centre = int(np.nonzero(mask)[0].mean())
            pseudo_instance[mask & (rows > centre)] = 14
    semantic[semantic == VOID] = SIDEWALK

    # Stuff: boundaries wobble, road/building split, vegetation merged into building.
    jitter = rng.random(semantic.shape) < 0.05
    semantic = np.where(jitter, np.roll(semantic, 2, axis=0), semantic)
    pseudo = permutation[semantic % NUM_PSEUDO]
    far_half = cols >= WIDTH // 2
    pseudo = np.where((semantic == ROAD) & far_half, permutation[20], pseudo)
    pseudo = np.where((semantic == BUILDING) & far_half, permutation[21], pseudo)
    pseudo = np.where(semantic == VEGETATION, permutation[BUILDING], pseudo)
    pseudo_instance[~np.isin(semantic, (PERSON, CAR))] = 0
    return PanopticFrame(pseudo.astype(np.int32), pseudo_instance)


def prepare_demo(out: Path, console: Console) -> tuple[Path, Path]:
    """Write the example dataset and predictions under ``out`` (once); return both roots."""
    dataset_root = out / "kitti-step"
    predictions = out / "predictions"
    marker = out / ".complete"
    if marker.exists():
        console.print(f"using the example data in {out}")
        return dataset_root, predictions
    console.print(
        f"writing a generated example to {out}: {len(SEQUENCES)} videos × {FRAMES} frames "
        f"(ground truth in KITTI-STEP layout; predictions = ground truth + documented noise)"
    )
    image = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
    for index, sequence in enumerate(SEQUENCES):
        rng = np.random.default_rng(100 + index)
        for t in range(FRAMES):
            name = f"{t:06d}.png"
            truth = _ground_truth_frame(index, t)
            write_step_png(dataset_root / "panoptic_maps" / "val" / sequence / name, truth)
            write_png(dataset_root / "images" / "val" / sequence / name, image)
            write_step_png(predictions / sequence / name, _perturb(truth, t, rng))
    marker.write_text("ok\n")
    return dataset_root, predictions
