"""The one-pass scoring of ``evaluate``/``rescore`` against brute force and the pixel reference.

``score()`` relabels each sequence's frame tables in one reduction and computes every VPQ window
and image PQ from per-frame segment areas (prefix sums over frames, in blocks of frames for long
sequences) instead of merging tube tables. The oracles: a dictionary relabelling of every row,
and the reference VPQ/PQ of :mod:`vpsbench.metrics.reference` on full label arrays whose pseudo-
classes were mapped pixel by pixel.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from tests.metrics.test_pq import RANDOM_SPACE, assert_same_pq, tables_of
from tests.metrics.test_stq_random import NUM_CLASSES, SPACE, THINGS, map_pixels, to_pseudo_classes
from tests.metrics.test_vpq import assert_same_vpq
from tests.random_videos import random_split, random_video
from vpsbench.evaluation import EvaluationSettings, score
from vpsbench.matching import MatchingMode
from vpsbench.metrics import pq as pq_module
from vpsbench.metrics.pq import summarize_pq, window_pq_counts
from vpsbench.metrics.reference import reference_pq, reference_vpq
from vpsbench.statistics import JointHistogram, SequenceStatistics, joint_histogram, relabel_frames
from vpsbench.stats_file import SplitStatistics, StatsFile, StatsHeader, StatsWriter


def brute_relabel(
    table: JointHistogram, class_map: np.ndarray, is_thing: np.ndarray
) -> dict[tuple[int, int, int, int], tuple[int, float]]:
    """Row by row: map the class, drop stuff instances, sum pixels and weights per key in order."""
    sums: dict[tuple[int, int, int, int], list[float]] = defaultdict(lambda: [0, 0.0])
    for gc, gi, pc, pi, px, w in zip(
        table.gt_class.tolist(),
        table.gt_instance.tolist(),
        table.pred_class.tolist(),
        table.pred_instance.tolist(),
        table.pixels.tolist(),
        table.weight.tolist(),
        strict=True,
    ):
        mapped = int(class_map[pc]) if 0 <= pc < class_map.size else -1
        instance = pi if mapped >= 0 and is_thing[mapped] else 0
        entry = sums[(gc, gi, mapped, instance)]
        entry[0] += px
        entry[1] += w
    return {key: (int(value[0]), float(value[1])) for key, value in sums.items()}


def as_rows(table: JointHistogram) -> dict[tuple[int, int, int, int], tuple[int, float]]:
    keys = zip(
        table.gt_class.tolist(),
        table.gt_instance.tolist(),
        table.pred_class.tolist(),
        table.pred_instance.tolist(),
        strict=True,
    )
    values = zip(table.pixels.tolist(), table.weight.tolist(), strict=True)
    return dict(zip(keys, values, strict=True))


def random_frames(seed: int, weighted: bool, class_shift: int) -> list[JointHistogram]:
    """Frame tables of a random video; ``class_shift`` moves the ground-truth classes up."""
    rng = np.random.default_rng(seed)
    video = random_video(rng, 5, 20, 28, 8, (4, 5, 6, 7), num_tracks=9, weighted=weighted)
    return [
        JointHistogram(
            t.gt_class + np.int32(class_shift),
            t.gt_instance,
            t.pred_class,
            t.pred_instance,
            t.pixels,
            t.weight,
        )
        for t in tables_of(video)
    ]


@pytest.mark.parametrize("seed", range(4))
def test_relabel_frames_equals_row_by_row_relabelling(seed: int) -> None:
    frames = random_frames(seed, weighted=seed % 2 == 1, class_shift=3 * (seed // 2))
    frames.insert(2, JointHistogram.empty())  # an empty frame keeps its place
    rng = np.random.default_rng(50 + seed)
    class_map = rng.integers(-1, 8, size=6).astype(np.int32)  # classes 6, 7 fall off the map
    is_thing = np.zeros(256, dtype=bool)
    is_thing[[4, 5, 6, 7]] = True
    mapped = relabel_frames(frames, class_map, is_thing)
    assert len(mapped) == len(frames)
    for table, result in zip(frames, mapped, strict=True):
        # Exact equality, weights included: the sums run over the frame's rows in order.
        assert as_rows(result) == brute_relabel(table, class_map, is_thing)
        order = np.lexsort(
            (result.pred_instance, result.pred_class, result.gt_instance, result.gt_class)
        )
        assert np.array_equal(order, np.arange(len(result))), "rows must stay sorted"
        assert result.gt_class.dtype == np.int32 and result.weight.dtype == np.float64


def test_relabel_frames_with_a_huge_class_span_falls_back_to_frame_by_frame() -> None:
    # Ground-truth ids 0 and 2**30 over two frames: frame · span would overflow int32.
    tables = [
        JointHistogram.from_rows([0, 2**30, 0], [0, 0, 0], [1, 1, 2], [3, 3, 0], [4, 5, 6]),
        JointHistogram.from_rows([2**30, 2**30], [1, 1], [2, 1], [7, 7], [1, 2]),
    ]
    class_map = np.array([-1, 4, 4], dtype=np.int32)
    is_thing = np.zeros(256, dtype=bool)
    is_thing[4] = True
    mapped = relabel_frames(tables, class_map, is_thing)
    assert [as_rows(t) for t in mapped] == [
        {(0, 0, 4, 3): (4, 4.0), (0, 0, 4, 0): (6, 6.0), (2**30, 0, 4, 3): (5, 5.0)},
        {(2**30, 1, 4, 7): (3, 3.0)},
    ]


@pytest.mark.parametrize(("frames", "sizes", "block"), [(37, (1, 2, 4), 32), (9, (1, 3, 6), 2)])
def test_every_window_equals_the_reference_across_frame_blocks(
    frames: int, sizes: tuple[int, ...], block: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Long sequences are cut into blocks of window starts; windows straddle block borders.
    monkeypatch.setattr(pq_module, "_BLOCK_FRAMES", block)
    rng = np.random.default_rng(frames)
    video = random_video(rng, frames, 10, 14, 8, (4, 5, 6, 7), num_tracks=5, noise_boxes=2)
    counts = window_pq_counts(tables_of(video), RANDOM_SPACE, sizes)
    for size in sizes:
        assert len(counts[size]) == frames - size + 1
        for start, window in enumerate(counts[size]):
            # The reference scores the window alone: one sequence of exactly ``size`` frames.
            tube = {"window": video[start : start + size]}
            expected = reference_vpq(tube, RANDOM_SPACE, (size,))["per_window"][size]
            assert_same_pq(summarize_pq(window, RANDOM_SPACE), expected)


@pytest.mark.parametrize("mode", [m for m in MatchingMode if m is not MatchingMode.NONE])
def test_score_equals_the_reference_on_pixel_mapped_predictions(
    mode: MatchingMode, tmp_path: Path
) -> None:
    rng = np.random.default_rng(7)
    split = random_split(rng, 3, (1, 4, 6), 20, 28, NUM_CLASSES, THINGS, num_tracks=8)
    pseudo_split = to_pseudo_classes(split, 7)
    header = StatsHeader("test", "val", {}, SPACE, "step", None, True, None)
    path = tmp_path / "stats.npz"
    with StatsWriter(path, header) as writer:
        for position, (name, video) in enumerate(pseudo_split.items()):
            tables = [joint_histogram(gt, pred, weights) for gt, pred, weights in video]
            names = [f"{index:06d}" for index in range(len(video))]
            writer.add(SequenceStatistics.from_frames(name, names, tables), {}, position)
    stats_file = StatsFile(path)
    try:
        stats = SplitStatistics(stats_file.header, [(stats_file, e) for e in stats_file.entries])
        result = score(stats, EvaluationSettings(matching=mode, vpq_windows=(1, 2, 3, 5)))
    finally:
        stats_file.close()
    mapped_split = {
        name: [(gt, map_pixels(pred, result.matching.target), w) for gt, pred, w in video]
        for name, video in pseudo_split.items()
    }
    assert result.vpq is not None and result.pq is not None
    assert_same_vpq(result.vpq, reference_vpq(mapped_split, SPACE, (1, 2, 3, 5)))
    assert_same_pq(result.pq, reference_pq(mapped_split, SPACE))
    assert set(result.vpq.per_window) == {1, 2, 3, 5}
