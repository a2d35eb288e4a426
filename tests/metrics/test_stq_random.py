"""The fast path (joint histograms → matching → relabel → STQ) equals the brute-force reference.

Randomised videos have crowd, ignore, void predictions, weights, many tracks with id switches,
and twice as many pseudo-classes as ground-truth classes, so matching is exercised too.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.random_videos import Frame, random_split
from vpsbench.datasets.base import LabelSpace
from vpsbench.evaluation import pseudo_thing_mask
from vpsbench.matching import match_pseudo_classes
from vpsbench.metrics.reference import reference_stq
from vpsbench.metrics.stq import segmentation_and_tracking_quality
from vpsbench.statistics import JointHistogram, joint_histogram
from vpsbench.video import PanopticFrame

NUM_CLASSES = 7
THINGS = (4, 5, 6)
SPACE = LabelSpace("test", tuple(f"c{i}" for i in range(NUM_CLASSES)), frozenset(THINGS))


def to_pseudo_classes(split: dict[str, list[Frame]], seed: int) -> dict[str, list[Frame]]:
    """Rename predicted classes to 2·C pseudo-classes: each class splits by column parity."""
    permutation = np.random.default_rng(seed).permutation(2 * NUM_CLASSES)
    renamed: dict[str, list[Frame]] = {}
    for name, frames in split.items():
        renamed[name] = []
        for gt, pred, weights in frames:
            alias = (np.arange(pred.shape[1])[None, :] // 3) % 2
            pseudo = np.where(
                pred.semantic >= 0, permutation[pred.semantic + NUM_CLASSES * alias], -1
            )
            renamed[name].append(
                (gt, PanopticFrame(pseudo.astype(np.int32), pred.instance), weights)
            )
    return renamed


def map_pixels(frame: PanopticFrame, target: np.ndarray) -> PanopticFrame:
    """Apply a pseudo→GT mapping at pixel level (the way a user would remap a prediction)."""
    mapped = np.where(frame.semantic >= 0, target[np.maximum(frame.semantic, 0)], -1)
    keeps = np.isin(mapped, THINGS)
    return PanopticFrame(
        mapped.astype(np.int32), np.where(keeps, frame.instance, 0).astype(np.int32)
    )


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("mode", ["hungarian-thing-stuff", "hungarian", "one-to-one"])
def test_fast_path_equals_reference(seed: int, mode: str) -> None:
    rng = np.random.default_rng(seed)
    split = random_split(
        rng,
        3,
        (1, 4, 7),
        24,
        32,
        NUM_CLASSES,
        THINGS,
        num_tracks=8,
        max_instance=9,
        weighted=seed % 2 == 0,
    )
    pseudo_split = to_pseudo_classes(split, seed)

    sequences = []
    for name, frames in pseudo_split.items():
        tables = [joint_histogram(gt, pred, weights) for gt, pred, weights in frames]
        sequences.append((name, JointHistogram.merge(tables), len(frames)))
    split_joint = JointHistogram.merge(table for _, table, _ in sequences)
    num_pseudo = 2 * NUM_CLASSES

    # The overlap matrix equals a brute-force pixel count (GT ignore and void left out).
    brute = np.zeros((num_pseudo, NUM_CLASSES), dtype=np.int64)
    for frames in pseudo_split.values():
        for gt, pred, _ in frames:
            valid = (gt.semantic != 255) & (pred.semantic >= 0)
            np.add.at(brute, (pred.semantic[valid], gt.semantic[valid]), 1)
    overlap = split_joint.pseudo_class_overlap(num_pseudo, tuple(range(NUM_CLASSES)))
    np.testing.assert_array_equal(overlap, brute)

    things = pseudo_thing_mask(split_joint, num_pseudo, None)
    brute_things = np.zeros(num_pseudo, dtype=bool)
    for frames in pseudo_split.values():
        for _, pred, _ in frames:
            brute_things[np.unique(pred.semantic[(pred.instance > 0) & (pred.semantic >= 0)])] = (
                True
            )
    np.testing.assert_array_equal(things, brute_things)

    matching = match_pseudo_classes(overlap, things, tuple(range(NUM_CLASSES)), THINGS, mode)
    is_thing = np.zeros(256, dtype=bool)
    is_thing[list(THINGS)] = True
    fast = segmentation_and_tracking_quality(
        [(n, t.relabel_predictions(matching.target, is_thing), k) for n, t, k in sequences], SPACE
    )
    mapped_split = {
        name: [(gt, map_pixels(pred, matching.target), w) for gt, pred, w in frames]
        for name, frames in pseudo_split.items()
    }
    expected = reference_stq(mapped_split, SPACE)

    assert fast.stq == pytest.approx(expected["STQ"], abs=1e-9)
    assert fast.aq == pytest.approx(expected["AQ"], abs=1e-9)
    assert fast.sq == pytest.approx(expected["SQ"], abs=1e-9)
    reference_ious = {c: v for c, v in expected["IoU_per_class"].items() if c >= 0}
    assert fast.iou_per_class == pytest.approx(reference_ious, abs=1e-9)
    for sequence in fast.per_sequence:
        reference_sequence = expected["per_sequence"][sequence.name]
        assert sequence.aq == pytest.approx(reference_sequence["AQ"], abs=1e-9)
        assert sequence.sq == pytest.approx(reference_sequence["SQ"], abs=1e-9)
        assert sequence.stq == pytest.approx(reference_sequence["STQ"], abs=1e-9)
        assert sequence.num_tubes == reference_sequence["num_tubes"]


def test_merge_order_does_not_change_the_histogram() -> None:
    rng = np.random.default_rng(3)
    frames = random_split(rng, 1, (6,), 16, 16, NUM_CLASSES, THINGS, weighted=True)["seq00"]
    tables = [joint_histogram(gt, pred, w) for gt, pred, w in frames]
    forward = JointHistogram.merge(tables)
    backward = JointHistogram.merge(tables[::-1])
    pairwise = JointHistogram.merge(
        [JointHistogram.merge(tables[:2]), JointHistogram.merge(tables[2:])]
    )
    for other in (backward, pairwise):
        for column in ("gt_class", "gt_instance", "pred_class", "pred_instance", "pixels"):
            np.testing.assert_array_equal(getattr(forward, column), getattr(other, column))
        np.testing.assert_allclose(forward.weight, other.weight, rtol=1e-12)
