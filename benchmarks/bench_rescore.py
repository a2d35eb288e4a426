"""Benchmark of ``vpsbench rescore`` on a statistics file of Cityscapes-VPS val size.

Builds (or reuses) a statistics file of 50 videos × 6 annotated frames at 1024×2048 (the facts of
:mod:`vpsbench.datasets.cityscapes_vps`) from synthetic blocky label maps — random ground-truth
classes and instances on a 16×32 grid of cells, random pseudo-classes (8 of 27 carry instance ids)
on a 32×64 grid, ~1350 table rows per frame — then times :func:`vpsbench.api.rescore` (open,
merge, match, score, results) for every matching mode and prints the median and minimum of the
wall-clock and the process CPU time (on a shared machine the CPU time is the steadier number).

Run: ``python benchmarks/bench_rescore.py [--stats city.npz] [--runs 5] [--metrics stq,vpq,pq]``.
``--stats`` names the file to reuse, or to build when it does not exist yet (a build at full size
takes minutes: 300 joint histograms of 2-megapixel frames); without it a temporary file is built.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import vpsbench
from vpsbench.api import rescore
from vpsbench.datasets.cityscapes_vps import (
    FRAMES_PER_VIDEO,
    RESOLUTION,
    VIDEOS_PER_SPLIT,
    CityscapesVps,
)
from vpsbench.matching import MatchingMode
from vpsbench.statistics import SequenceStatistics, joint_histogram
from vpsbench.stats_file import StatsHeader, StatsWriter
from vpsbench.video import PanopticFrame

PSEUDO_CLASSES = 27  # predicted classes -1 (void) … 26; 19 … 26 carry instance ids
PSEUDO_THINGS_FROM = 19


def blocky(
    rng: np.random.Generator, cells: tuple[int, int], values: np.ndarray, size: tuple[int, int]
) -> np.ndarray:
    """A label map of ``size`` made of a grid of ``cells`` constant blocks of random values."""
    grid = rng.choice(values, size=cells)
    block = (size[0] // cells[0], size[1] // cells[1])
    return np.kron(grid, np.ones(block, dtype=grid.dtype)).astype(np.int32)


def build(path: Path, videos: int, frames: int, size: tuple[int, int], seed: int) -> None:
    """Write a statistics file of ``videos`` × ``frames`` synthetic frames of ``size``."""
    space = CityscapesVps(Path("."), {}).label_space()
    things = sorted(space.thing_classes)
    gt_classes = np.array([*sorted(space.evaluated_classes), space.ignore_label])
    rng = np.random.default_rng(seed)
    header = StatsHeader("cityscapes-vps", "val", {}, space, "step", None, True, None)
    with StatsWriter(path, header) as writer:
        for video in range(videos):
            tables = []
            for _ in range(frames):
                gt_semantic = blocky(rng, (16, 32), gt_classes, size)
                gt_instance = blocky(rng, (16, 32), np.arange(1, 40), size)
                gt_instance[~np.isin(gt_semantic, things)] = 0
                pred_semantic = blocky(rng, (32, 64), np.arange(-1, PSEUDO_CLASSES), size)
                pred_instance = blocky(rng, (32, 64), np.arange(1, 60), size)
                pred_instance[pred_semantic < PSEUDO_THINGS_FROM] = 0
                tables.append(
                    joint_histogram(
                        PanopticFrame(gt_semantic, gt_instance),
                        PanopticFrame(pred_semantic, pred_instance),
                    )
                )
            names = [f"{index:06d}" for index in range(frames)]
            writer.add(SequenceStatistics.from_frames(f"{video:04d}", names, tables), {}, video)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stats", type=Path, help="statistics file to reuse or build")
    parser.add_argument("--runs", type=int, default=5, help="timed rescores per matching mode")
    parser.add_argument("--metrics", default="stq,vpq,pq", help="metrics to score")
    parser.add_argument("--videos", type=int, default=VIDEOS_PER_SPLIT["val"])
    parser.add_argument("--frames", type=int, default=FRAMES_PER_VIDEO)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error(f"--runs must be at least 1, got {args.runs}")

    with tempfile.TemporaryDirectory(prefix="vpsbench-bench-rescore-") as folder:
        path = args.stats or Path(folder) / "stats.npz"
        if path.exists():
            print(f"reusing {path}")
        else:
            started = time.perf_counter()
            build(path, args.videos, args.frames, RESOLUTION, args.seed)
            print(f"built {path} in {time.perf_counter() - started:.1f} s")
        print(f"{path.stat().st_size / 1e6:.1f} MB; metrics {args.metrics}; {args.runs} runs")
        print(f"vpsbench from {Path(vpsbench.__file__).parent}")
        rescore(path, metrics=args.metrics)  # warm-up: imports, first reads
        for mode in MatchingMode:
            if mode is MatchingMode.NONE:
                continue  # needs ground-truth class ids in the predictions
            wall, cpu = [], []
            for _ in range(args.runs):
                started, started_cpu = time.perf_counter(), time.process_time()
                rescore(path, matching=mode, metrics=args.metrics)
                wall.append(time.perf_counter() - started)
                cpu.append(time.process_time() - started_cpu)
            print(
                f"{mode.value:22s} wall median {statistics.median(wall):7.3f} s"
                f" min {min(wall):7.3f} s   cpu median {statistics.median(cpu):7.3f} s"
                f" min {min(cpu):7.3f} s"
            )
        print(
            f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
