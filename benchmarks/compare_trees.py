"""Time ``evaluate()`` of two source trees on one generated 1024×2048 split, in alternating runs.

Each run is a fresh process started in one tree (so it imports that tree's ``vpsbench``), which
evaluates once to warm up and then times one evaluation; the trees take turns. Prints the median
and minimum seconds of each, their ratios and the STQ each computed (they must agree).

Run from the repository root, with the other tree exported first, e.g.
``git archive <commit> | tar -x -C /tmp/old`` then
``python benchmarks/compare_trees.py /tmp/old [--sequences 8] [--frames 2] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the benchmarks beside this file

from bench_evaluate import write_split  # noqa: E402

RUN = """
import sys, time
sys.path.insert(0, '.')
from vpsbench.datasets import open_dataset
from vpsbench.evaluation import EvaluationJob, evaluate
from vpsbench.predictions import PredictionSource
dataset = open_dataset('kitti-step', {gt!r}, {{'things': 'cityscapes'}})
job = EvaluationJob(dataset, 'val', PredictionSource.open({pred!r}, 'step'))
evaluate(job, sequences={names!r}, workers={workers})
start = time.perf_counter()
result = evaluate(job, sequences={names!r}, workers={workers})
print(time.perf_counter() - start, result.stq.stq)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("other", type=Path, help="The other source tree (e.g. the old code).")
    parser.add_argument("--sequences", type=int, default=8)
    parser.add_argument("--frames", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    if not (args.other / "vpsbench" / "evaluation.py").is_file():
        sys.exit(f"{args.other}: not a vpsbench source tree (no vpsbench/evaluation.py)")
    trees = {"other": args.other.resolve(), "this": REPO}
    with tempfile.TemporaryDirectory() as scratch:
        gt_root, pred_root = write_split(Path(scratch), args.sequences, args.frames)
        names = [f"{s:04d}" for s in range(args.sequences)]
        code = RUN.format(gt=str(gt_root), pred=str(pred_root), names=names, workers=args.workers)
        times: dict[str, list[float]] = {name: [] for name in trees}
        stq: dict[str, str] = {}
        for _ in range(args.rounds):
            for name, tree in trees.items():
                output = subprocess.run(
                    [sys.executable, "-c", code], cwd=tree, check=True, capture_output=True
                )
                seconds, stq[name] = output.stdout.decode().split()[-2:]
                times[name].append(float(seconds))
    for name, values in times.items():
        print(
            f"{name}: median {statistics.median(values):.3f} s, min {min(values):.3f} s, "
            f"STQ {stq[name]}"
        )
    median = statistics.median(times["other"]) / statistics.median(times["this"])
    best = min(times["other"]) / min(times["this"])
    print(f"other / this: median {median:.2f}, min {best:.2f}; load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
