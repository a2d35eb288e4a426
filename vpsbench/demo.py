"""``vpsbench demo``: the synthetic val split, noisy predictions, the evaluator, a picture.

Until a method that needs no weights lands, the predictions are NOT a method's output: they are
the ground truth seen through a documented noise model (:func:`perturb_video`), honestly labelled
as such, so that every number and picture below 100% has a known cause:

* **pseudo-classes** — the 19 classes are renamed to 27 pseudo-class ids by a fixed permutation;
  road and building each split into two pseudo-classes (left/right half of the image), terrain is
  merged into vegetation's pseudo-class and wall into building's;
* **segmentation** — 4% of pixels take the label of the pixel 3 rows above (boundary wobble);
  thing masks are dilated (vehicles) or eroded (people) by one pixel;
* **tracking** — per track, decided once per video: 25% switch identity at a random frame, 10%
  are split into two tracks (upper/lower half), 10% are merged with another track of their class,
  and every track is missed (predicted as the surrounding stuff) in 10% of its frames;
* **crowd** — ground-truth crowd regions are predicted as one extra track.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from vpsbench.config import cache_dir
from vpsbench.datasets.base import Dataset
from vpsbench.formats.atomic import atomic_write_text
from vpsbench.formats.step import write_step_png
from vpsbench.video import PanopticFrame

NUM_PSEUDO_CLASSES = 27
ROAD, BUILDING, WALL, VEGETATION, TERRAIN = 0, 2, 3, 8, 9
THINGS = tuple(range(11, 19))
VEHICLES = (13, 14, 15, 16)
SPLIT_SLOT = {ROAD: 19, BUILDING: 20}  # permutation slots of the right-half pseudo-classes
MERGED_INTO = {TERRAIN: VEGETATION, WALL: BUILDING}
CROWD_TRACK = 999


#: Disk the demo fills (synthetic val split with its cues, predictions, results, picture),
#: measured on the default run: 866.0 MB dataset (cues are most of it) + 1.5 MB predictions.
DEMO_DISK_MB = 870


def default_cache() -> Path:
    """Where the demo keeps its predictions and results: vpsbench's cache folder."""
    return cache_dir()


def folder_size(folder: Path) -> int:
    """Bytes of the regular files under ``folder`` (0 when it does not exist)."""
    if not folder.is_dir():
        return 0
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


@dataclass(frozen=True)
class TrackFate:
    """What the noise model does to one ground-truth track for a whole video."""

    switch_at: int | None
    split: bool
    merge_into: int | None
    missed_frames: frozenset[int]


def _pseudo_ids() -> np.ndarray:
    """The fixed permutation of pseudo-class ids; slot k < 19 belongs to trainId k."""
    return np.random.default_rng(2024).permutation(NUM_PSEUDO_CLASSES)


def _pseudo_class_table() -> np.ndarray:
    """Ground-truth trainId (0..18, 255) → pseudo-class id (−1 for void)."""
    permutation = _pseudo_ids()
    table = np.full(256, -1, dtype=np.int32)
    for train_id in range(19):
        table[train_id] = permutation[MERGED_INTO.get(train_id, train_id)]
    return table


def _track_fates(
    frames: Sequence[PanopticFrame], rng: np.random.Generator
) -> dict[tuple[int, int], TrackFate]:
    """Draw the fate of every (class, track id) of a video once."""
    keys: set[tuple[int, int]] = set()
    for frame in frames:
        tracked = np.isin(frame.semantic, THINGS) & (frame.instance > 0)
        pairs = np.unique(np.stack([frame.semantic[tracked], frame.instance[tracked]]), axis=1)
        keys.update((int(c), int(i)) for c, i in pairs.T)
    tracks = sorted(keys)
    fates = {}
    for cls, ident in tracks:
        partners = [i for c, i in tracks if c == cls and i != ident]
        fates[(cls, ident)] = TrackFate(
            switch_at=int(rng.integers(1, len(frames))) if rng.random() < 0.25 else None,
            split=bool(rng.random() < 0.10),
            merge_into=int(rng.choice(partners)) if partners and rng.random() < 0.10 else None,
            missed_frames=frozenset(int(t) for t in np.flatnonzero(rng.random(len(frames)) < 0.1)),
        )
    return fates


def _surrounding_class(semantic: np.ndarray, mask: np.ndarray) -> int:
    """The most frequent non-thing class in a ring around ``mask`` (road when there is none)."""
    ring = ndimage.binary_dilation(mask, iterations=3) & ~mask
    around = semantic[ring]
    around = around[(around < 11) & (around >= 0)]
    return int(np.bincount(around).argmax()) if around.size else ROAD


def perturb_frame(
    frame: PanopticFrame, t: int, fates: dict[tuple[int, int], TrackFate], rng: np.random.Generator
) -> PanopticFrame:
    """Apply the noise model to frame ``t`` of a video (ground truth in, pseudo-classes out)."""
    semantic = frame.semantic.copy()
    instance = np.zeros_like(frame.instance)
    rows = np.arange(semantic.shape[0])[:, None]
    for (cls, ident), fate in fates.items():
        mask = (frame.semantic == cls) & (frame.instance == ident)
        if not mask.any():
            continue
        if t in fate.missed_frames:
            semantic[mask] = _surrounding_class(frame.semantic, mask)
            continue
        if cls in VEHICLES:
            mask = ndimage.binary_dilation(mask) & ~np.isin(frame.semantic, (11, 12))
        elif mask.sum() > 40:
            mask = ndimage.binary_erosion(mask)
        new_id = fate.merge_into if fate.merge_into is not None else ident
        if fate.switch_at is not None and t >= fate.switch_at:
            new_id += 500
        semantic[mask] = cls
        instance[mask] = new_id
        if fate.split:
            centre = int(np.nonzero(mask)[0].mean())
            instance[mask & (rows > centre)] = new_id + 250
    crowd = np.isin(frame.semantic, THINGS) & (frame.instance == 0)
    instance[crowd] = CROWD_TRACK
    wobble = rng.random(semantic.shape) < 0.04
    shifted = np.roll(semantic, 3, axis=0)
    semantic = np.where(wobble & (instance == 0), shifted, semantic)
    semantic[(semantic == 255)] = ROAD

    pseudo = _pseudo_class_table()[semantic]
    right_half = np.arange(semantic.shape[1])[None, :] >= semantic.shape[1] // 2
    for train_id, slot in SPLIT_SLOT.items():
        pseudo[(semantic == train_id) & right_half] = _pseudo_ids()[slot]
    instance[~np.isin(semantic, THINGS)] = 0
    return PanopticFrame(pseudo.astype(np.int32), instance.astype(np.int32))


def perturb_video(frames: Sequence[PanopticFrame], seed: int) -> list[PanopticFrame]:
    """The noisy prediction of a whole video (deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    fates = _track_fates(frames, rng)
    return [perturb_frame(frame, t, fates, rng) for t, frame in enumerate(frames)]


def write_demo_predictions(dataset: Dataset, split: str, out: Path) -> Path:
    """Write the noisy predictions of every sequence of ``split`` under ``out`` (once)."""
    marker = out / ".complete"
    if marker.is_file():
        return out
    for index, sequence in enumerate(dataset.sequences(split)):
        truth = [dataset.load_ground_truth(split, ref) for ref in sequence.frames]
        for ref, predicted in zip(sequence.frames, perturb_video(truth, seed=index), strict=True):
            write_step_png(out / ref.sequence / f"{ref.name}.png", predicted)
    atomic_write_text(marker, "ground truth + vpsbench.demo noise model\n")
    return out
