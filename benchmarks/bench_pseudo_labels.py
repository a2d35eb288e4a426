"""Benchmark of VideoCUPS stage 1's labelling: seconds per 256×512 frame, and 2 workers against 1.

Generates (once, kept in ``--workdir``) a synthetic train split of ``--sequences`` videos of
``--frames`` frames at 256×512, runs the pseudo-label stage's set-up once (S's DepthG head and
the k-means centroids, through the stage itself with ``--stage pseudo-label``), then times, in
alternating runs, the stage's own labelling map — ``ordered_map_with_setup(make_labeller,
label_sequence, …)`` over the sequences, exactly what ``run-method`` runs — with 1 worker (in
this process) and with ``--workers`` local spawned workers. Prints wall seconds per frame
(median / min), the 1-worker run's CPU seconds per frame, the speed-up, and the load average.
Like the CLI, it first lets malloc reuse freed frame buffers (``executors.reuse_freed_memory``).

Run from the repository root: ``python benchmarks/bench_pseudo_labels.py [--sequences 4]
[--frames 8] [--rounds 3] [--workers 2] [--workdir DIR]``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's code

from vpsbench_methods.videocups.plugin import (
    LabelJob,
    VideoCupsConfig,
    label_sequence,
    make_labeller,
)

from vpsbench.datasets import open_dataset
from vpsbench.datasets.synthetic import prepare_synthetic
from vpsbench.executors import ExecutorSpec, ordered_map_with_setup, reuse_freed_memory
from vpsbench.formats.npz import load_npz_arrays
from vpsbench.methods.base import WorkerContext

HEIGHT, WIDTH = 256, 512


def set_up(root: Path, run_dir: Path) -> tuple[np.ndarray, str]:
    """S's head and the centroids, made by the pseudo-label stage itself (once per workdir)."""
    head = run_dir / "pseudo-label" / "depthg" / "depthg.ckpt"
    centroids = run_dir / "pseudo-label" / "centroids_depthg.npz"
    if not centroids.is_file():
        command = [
            sys.executable, "-m", "vpsbench", "run-method", "videocups", "--dataset", "synthetic",
            "--root", str(root), "--split", "train", "--stage", "pseudo-label",
            "--run-dir", str(run_dir),
        ]  # fmt: skip
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return np.asarray(load_npz_arrays(centroids)["centroids"]), str(head)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=4)
    parser.add_argument("--frames", type=int, default=8, help="Frames per sequence.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="Also write the figures here.")
    args = parser.parse_args()
    reuse_freed_memory()  # as the CLI does
    with tempfile.TemporaryDirectory() as scratch:
        work = args.workdir or Path(scratch)
        root = work / "synthetic"
        prepare_synthetic(
            root, videos=args.sequences, frames=args.frames, height=HEIGHT, width=WIDTH,
            seed=0, splits=["train"], workers=1,
        )  # fmt: skip
        run_dir = work / "run"
        centroids, head = set_up(root, run_dir)
        dataset = open_dataset("synthetic", root)
        sequences = dataset.sequences("train")
        frames = sum(len(s.frames) for s in sequences)
        out = work / "labels"
        place = WorkerContext("synthetic", str(root), {}, "train", str(run_dir))
        job = LabelJob(place, VideoCupsConfig(), centroids, str(out), head)

        def run(workers: int) -> float:
            spec = ExecutorSpec(workers=workers, spawn=True)  # as the stage runs its local pool
            start = time.perf_counter()
            list(
                ordered_map_with_setup(
                    functools.partial(make_labeller, job), label_sequence, sequences, spec
                )
            )
            return time.perf_counter() - start

        load_before = os.getloadavg()[0]
        single: list[float] = []
        parallel: list[float] = []
        cpu: list[float] = []
        for _ in range(args.rounds):
            cpu_start = time.process_time()
            single.append(run(1))
            cpu.append(time.process_time() - cpu_start)
            parallel.append(run(args.workers))
    figures = {
        "frames": frames,
        "sequences": len(sequences),
        "wall_s_per_frame_1_worker": [statistics.median(single) / frames, min(single) / frames],
        "cpu_s_per_frame_1_worker": [statistics.median(cpu) / frames, min(cpu) / frames],
        f"wall_s_per_frame_{args.workers}_workers": [
            statistics.median(parallel) / frames,
            min(parallel) / frames,
        ],
        f"speedup_{args.workers}_workers": [
            statistics.median(single) / statistics.median(parallel),
            min(single) / min(parallel),
        ],
        "load_average_before": load_before,
        "load_average_after": os.getloadavg()[0],
    }
    print("| measure (median / min) | value |\n|---|---|")
    for key, value in figures.items():
        shown = " / ".join(f"{v:.3f}" for v in value) if isinstance(value, list) else value
        print(f"| {key} | {shown} |")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
