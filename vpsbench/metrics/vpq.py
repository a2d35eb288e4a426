"""Video panoptic quality (Kim et al. 2020), computed the way VPSNet eval_vpq does.

For a window of k annotated frames, the frames of a video are concatenated into spatio-temporal
tubes (same ids in different frames = same tube) and PQ is computed on the tubes. Every video
contributes its windows ``frames[s : s + k]`` with stride 1; the counts of all windows of all
videos are summed before averaging over classes, giving VPQ_k. On Cityscapes-VPS the annotated
frames are 5 frames apart, so window k spans λ = 5·(k − 1) frames; VPQ is the mean over k.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from vpsbench.datasets.base import LabelSpace
from vpsbench.metrics.pq import PQCounts, PQResult, summarize_pq, window_pq_counts
from vpsbench.statistics import JointHistogram

DEFAULT_WINDOW_SIZES: tuple[int, ...] = (1, 2, 3, 4)


@dataclass(frozen=True)
class VPQResult:
    """VPQ and its thing/stuff parts (means over window sizes) and the PQ of each window size."""

    vpq: float
    vpq_things: float
    vpq_stuff: float
    per_window: dict[int, PQResult]


def window_counts(
    frames: Sequence[JointHistogram], window_size: int, label_space: LabelSpace
) -> PQCounts:
    """Summed PQ counts of every stride-1 window of ``window_size`` frames (VPSNet eval_vpq)."""
    windows = window_pq_counts(frames, label_space, (window_size,))[window_size]
    return PQCounts.merge(windows, label_space.num_classes)


class VPQTotals:
    """Running VPQ counts of a split, fed one sequence's window counts at a time."""

    def __init__(self, label_space: LabelSpace, window_sizes: Sequence[int]) -> None:
        self.label_space = label_space
        self.sizes = tuple(dict.fromkeys(window_sizes))
        if any(size < 1 for size in self.sizes):
            raise ValueError(f"window sizes must be positive, got {tuple(window_sizes)}")
        self.totals = {size: PQCounts.zeros(label_space.num_classes) for size in self.sizes}
        self.num_windows = dict.fromkeys(self.sizes, 0)

    def add(self, windows: Mapping[int, Sequence[PQCounts]]) -> None:
        """Add a sequence's counts per window (:func:`window_pq_counts` of at least our sizes)."""
        for size in self.sizes:
            if windows[size]:
                self.totals[size] = self.totals[size] + PQCounts.merge(
                    windows[size], self.label_space.num_classes
                )
                self.num_windows[size] += len(windows[size])

    def result(self) -> VPQResult:
        """VPQ of what was added.

        Window sizes for which no sequence is long enough have no window at all; they are left
        out of ``per_window`` and of the means (VPSNet eval_vpq would divide by zero there).
        """
        per_window = {
            size: summarize_pq(self.totals[size], self.label_space)
            for size in self.sizes
            if self.num_windows[size] > 0
        }
        results = list(per_window.values())
        return VPQResult(
            vpq=float(np.mean([r.pq for r in results])) if results else 0.0,
            vpq_things=float(np.mean([r.pq_things for r in results])) if results else 0.0,
            vpq_stuff=float(np.mean([r.pq_stuff for r in results])) if results else 0.0,
            per_window=per_window,
        )


def video_panoptic_quality(
    sequences: Iterable[Sequence[JointHistogram]],
    label_space: LabelSpace,
    window_sizes: Sequence[int] = DEFAULT_WINDOW_SIZES,
) -> VPQResult:
    """VPQ over a split of sequences of per-frame tables, streamed one sequence at a time."""
    totals = VPQTotals(label_space, window_sizes)
    for frames in sequences:
        totals.add(window_pq_counts(frames, label_space, totals.sizes))
    return totals.result()
