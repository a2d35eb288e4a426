"""Joint histograms equal a brute-force count, on both the packed-key and the lexsort code paths."""

from __future__ import annotations

import numpy as np
import pytest

from vpsbench.statistics import JointHistogram, joint_histogram
from vpsbench.video import PanopticFrame


def brute_force_rows(gt: PanopticFrame, pred: PanopticFrame) -> np.ndarray:
    keys = np.stack(
        [gt.semantic.ravel(), gt.instance.ravel(), pred.semantic.ravel(), pred.instance.ravel()], 1
    )
    rows, counts = np.unique(keys, axis=0, return_counts=True)
    return np.column_stack([rows, counts])


@pytest.mark.parametrize("max_instance", [3, 1000, 2**24, 2**31 - 1])
def test_joint_histogram_counts_every_combination(max_instance: int) -> None:
    rng = np.random.default_rng(max_instance % 97)
    shape = (40, 50)
    gt = PanopticFrame.from_arrays(
        rng.choice([0, 1, 11, 13, 255], shape), rng.integers(0, 4, shape) * (max_instance // 3)
    )
    pred = PanopticFrame.from_arrays(
        rng.integers(-1, 30, shape), rng.integers(0, max_instance, shape, endpoint=True)
    )
    table = joint_histogram(gt, pred)
    expected = brute_force_rows(gt, pred)
    got = np.column_stack(
        [table.gt_class, table.gt_instance, table.pred_class, table.pred_instance, table.pixels]
    )
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(table.weight, table.pixels.astype(float))


def test_weights_are_summed_per_row() -> None:
    gt = PanopticFrame.from_arrays([[1, 1, 2]], [[0, 0, 0]])
    pred = PanopticFrame.from_arrays([[5, 5, 5]], [[0, 0, 0]])
    table = joint_histogram(gt, pred, np.array([[0.25, 0.5, 2.0]]))
    assert table.pixels.tolist() == [2, 1]
    assert table.weight.tolist() == [0.75, 2.0]


def test_shape_mismatch_and_negative_instances_are_rejected() -> None:
    gt = PanopticFrame.from_arrays(np.zeros((2, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="shape"):
        joint_histogram(gt, PanopticFrame.from_arrays(np.zeros((2, 3)), np.zeros((2, 3))))
    with pytest.raises(ValueError, match="non-negative"):
        joint_histogram(gt, PanopticFrame.from_arrays(np.zeros((2, 2)), -np.ones((2, 2))))


def test_relabel_merges_rows_and_drops_instances_on_stuff() -> None:
    table = JointHistogram.from_rows(
        gt_class=[13, 13, 0],
        gt_instance=[1, 1, 0],
        pred_class=[3, 4, 2],
        pred_instance=[7, 7, 9],
        pixels=[5, 6, 4],
    )
    is_thing = np.zeros(256, dtype=bool)
    is_thing[13] = True
    mapped = table.relabel_predictions(np.array([-1, -1, 0, 13, 13], dtype=np.int32), is_thing)
    # Pseudo 3 and 4 both become car with id 7: one row of 11 pixels. Pseudo 2 → road, id dropped.
    assert mapped.gt_class.tolist() == [0, 13]
    assert mapped.pred_class.tolist() == [0, 13]
    assert mapped.pred_instance.tolist() == [0, 7]
    assert mapped.pixels.tolist() == [4, 11]


def blocky_frame(rng: np.random.Generator, shape: tuple[int, int], ids: int) -> PanopticFrame:
    """Piecewise-constant maps (long raster runs, as in real label maps) with sparse noise."""
    rows, cols = shape
    semantic = np.repeat(rng.choice([0, 2, 11, 13, 255], (rows, cols // 7 + 1)), 7, axis=1)
    instance = np.repeat(rng.integers(0, ids, (rows // 3 + 1, cols)), 3, axis=0)
    semantic, instance = semantic[:, :cols], instance[:rows]
    noise = rng.random(shape) < 0.01
    semantic[noise] = 1
    return PanopticFrame.from_arrays(semantic, instance)


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (3, 5), (17, 33), (64, 71)])
@pytest.mark.parametrize("ids", [2, 70000, 2**31 - 1])
def test_run_based_histogram_equals_brute_force_on_blocky_frames(
    shape: tuple[int, int], ids: int
) -> None:
    rng = np.random.default_rng(shape[0] * 1000 + shape[1] + ids % 13)
    gt = blocky_frame(rng, shape, 5)
    pred = blocky_frame(rng, shape, ids)
    pred = PanopticFrame.from_arrays(pred.semantic - 3, pred.instance)  # some void (< 0) classes
    weights = rng.choice([0.5, 1.0, 2.25], shape)
    table = joint_histogram(gt, pred, weights)
    void = np.maximum(pred.semantic.ravel(), -1)
    keys = np.stack([gt.semantic.ravel(), gt.instance.ravel(), void, pred.instance.ravel()], 1)
    rows, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    got = np.column_stack(
        [table.gt_class, table.gt_instance, table.pred_class, table.pred_instance]
    )
    np.testing.assert_array_equal(got, rows)
    np.testing.assert_array_equal(table.pixels, np.bincount(inverse))
    expected_weight = np.zeros(len(rows))
    np.add.at(expected_weight, inverse, weights.ravel())
    np.testing.assert_allclose(table.weight, expected_weight, rtol=1e-12)


def test_merge_sums_rows_on_both_sort_paths() -> None:
    """A merge of histograms whose keys do or do not pack into 62 bits equals one count."""
    rng = np.random.default_rng(5)
    for ids in (9, 2**31 - 1):
        frames = [
            (blocky_frame(rng, (20, 30), 4), blocky_frame(rng, (20, 30), ids)) for _ in range(3)
        ]
        merged = JointHistogram.merge(joint_histogram(g, p) for g, p in frames)
        whole = joint_histogram(
            PanopticFrame.from_arrays(
                np.concatenate([g.semantic for g, _ in frames]),
                np.concatenate([g.instance for g, _ in frames]),
            ),
            PanopticFrame.from_arrays(
                np.concatenate([p.semantic for _, p in frames]),
                np.concatenate([p.instance for _, p in frames]),
            ),
        )
        for column in ("gt_class", "gt_instance", "pred_class", "pred_instance", "pixels"):
            np.testing.assert_array_equal(getattr(merged, column), getattr(whole, column))


def test_negative_ground_truth_class_is_rejected() -> None:
    gt = PanopticFrame.from_arrays(-np.ones((2, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="non-negative"):
        joint_histogram(gt, PanopticFrame.from_arrays(np.zeros((2, 2)), np.zeros((2, 2))))
