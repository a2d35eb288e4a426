"""Table 3 of the paper on the synthetic dataset: STQ/AQ/SQ of VideoCUPS pseudo-labels per step.

Rows (each adds one step): vanilla semantics + region-growing instances → + depth-guided semantic
inference → + instance propagation & tracking → + temporal semantic smoothing (full). Two cue
settings: ``oracle`` (exact flow, depth and motion of the synthetic dataset) and ``estimated``
(DIS optical flow; depth and motion stay oracle, since no weight-free depth estimator exists).
Also reports the time per frame.

Run: ``python benchmarks/ablation_pseudo_labels.py --root DATA/synthetic [--sequences 0000,0001]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from vpsbench.datasets import open_dataset
from vpsbench.evaluation import EvaluationJob, EvaluationSettings, evaluate
from vpsbench.methods.runner import RunRequest, run_method
from vpsbench.predictions import PredictionSource

ROWS = {
    "vanilla + region growing": ["depth_guided=false", "propagation=false", "smoothing=false"],
    "+ depth-guided inference": ["propagation=false", "smoothing=false"],
    "+ propagation & tracking": ["smoothing=false"],
    "+ temporal smoothing (full)": [],
}
CUES = {"oracle": ["flow=oracle"], "estimated": ["flow=dis"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="synthetic dataset root")
    parser.add_argument("--sequences", default=None, help="comma-separated subset")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    wanted = tuple(args.sequences.split(",")) if args.sequences else None
    dataset = open_dataset("synthetic", args.root)
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as scratch:
        for cue_name, cue_settings in CUES.items():
            for row_name, switches in ROWS.items():
                run_dir = Path(scratch) / f"{cue_name}-{len(rows)}"
                started = time.perf_counter()
                run_method(
                    RunRequest(
                        method="videocups",
                        dataset="synthetic",
                        root=args.root,
                        overrides=(*cue_settings, *switches, "train_split=val"),
                        stages=("pseudo-label",),
                        run_dir=run_dir,
                        sequences=wanted,
                    ),
                    log=lambda _: None,
                )
                seconds = time.perf_counter() - started
                labels = run_dir / "pseudo-label" / "labels"
                job = EvaluationJob(dataset, "val", PredictionSource.open(labels, "step"))
                result = evaluate(job, EvaluationSettings(metrics=("stq",)), sequences=wanted)
                rows.append(
                    {
                        "cues": cue_name,
                        "configuration": row_name,
                        "STQ": 100 * result.stq.stq,
                        "AQ": 100 * result.stq.aq,
                        "SQ": 100 * result.stq.sq,
                        "seconds_per_frame": seconds / result.num_frames,
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    print("\n| cues | configuration | STQ | AQ | SQ | s/frame |\n|---|---|--:|--:|--:|--:|")
    for row in rows:
        print(
            f"| {row['cues']} | {row['configuration']} | {row['STQ']:.1f} | {row['AQ']:.1f} "
            f"| {row['SQ']:.1f} | {row['seconds_per_frame']:.2f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
