"""Table 3 of the paper on the synthetic dataset: STQ/AQ/SQ of VideoCUPS pseudo-labels per step.

Rows (each adds one step): vanilla semantics + region-growing instances → + depth-guided semantic
inference → + instance propagation & tracking → + temporal semantic smoothing (full). Two cue
settings: ``oracle`` (exact flow, depth and motion of the synthetic dataset) and ``estimated``
(DIS optical flow; depth and motion stay oracle, since no weight-free depth estimator exists).
Every row runs with each stage-1 seed (``seed``: S's DepthG training and the k-means), and the
table gives mean ± sd over the seeds (sample sd) and the time per frame.

Each run lives in its own folder under ``--work`` and is skipped when its ``scores.json`` exists,
so the script resumes. The rows of one seed differ only after S is trained and clustered, so a
row reuses the DepthG head and centroids of the seed's first row (the stage resumes from them)
and its time per frame is the labelling's. ``--shard K/N`` splits the seeds between processes.

Run: ``python benchmarks/ablation_pseudo_labels.py --root DATA/synthetic [--sequences 0000,0001]``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path

from vpsbench.datasets import open_dataset
from vpsbench.evaluation import EvaluationJob, EvaluationSettings, evaluate
from vpsbench.formats.atomic import atomic_write_text
from vpsbench.methods.runner import RunRequest, run_method
from vpsbench.predictions import PredictionSource

ROWS = {
    "vanilla + region growing": ["depth_guided=false", "propagation=false", "smoothing=false"],
    "+ depth-guided inference": ["propagation=false", "smoothing=false"],
    "+ propagation & tracking": ["smoothing=false"],
    "+ temporal smoothing (full)": [],
}
CUES = {"oracle": ["flow=oracle"], "estimated": ["flow=dis"]}
STAGE = "pseudo-label"
#: What a seed's first run trains and fits, which the seed's other rows reuse.
SEED_STATE = ("depthg", "centroids_depthg.npz", "centroids.npz")


def run_row(
    args: argparse.Namespace, cue_name: str, row: int, seed: int, first: Path | None
) -> Path:
    """Pseudo-label val with one row's switches and score it; the run's folder."""
    work: Path = args.work
    run_dir = work / f"{cue_name}-row{row}-seed{seed}"
    scores = run_dir / "scores.json"
    if scores.is_file():
        return run_dir
    if first is not None:
        for name in SEED_STATE:
            source, target = first / STAGE / name, run_dir / STAGE / name
            if target.exists() or not source.exists():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target)
            else:
                shutil.copy2(source, target)
    switches = list(ROWS.values())[row - 1]
    started = time.perf_counter()
    run_method(
        RunRequest(
            method="videocups",
            dataset="synthetic",
            root=args.root,
            overrides=(*CUES[cue_name], *switches, "train_split=val", f"seed={seed}", "workers=1"),
            stages=(STAGE,),
            run_dir=run_dir,
            sequences=args.wanted,
        ),
        log=lambda _: None,
    )
    seconds = time.perf_counter() - started
    dataset = open_dataset("synthetic", args.root)
    labels = run_dir / STAGE / "labels"
    job = EvaluationJob(dataset, "val", PredictionSource.open(labels, "step"))
    result = evaluate(job, EvaluationSettings(metrics=("stq",)), sequences=args.wanted)
    values = {
        "STQ": 100 * result.stq.stq,
        "AQ": 100 * result.stq.aq,
        "SQ": 100 * result.stq.sq,
        "seconds_per_frame": seconds / result.num_frames,
    }
    atomic_write_text(scores, json.dumps(values) + "\n")
    print(json.dumps({"run": run_dir.name, **values}), flush=True)
    return run_dir


def summary_table(work: Path, cues: list[str], seeds: list[int]) -> str:
    """Markdown: mean ± sd over the seeds found, per cue setting and row."""
    lines = [
        "| cues | configuration | seeds | STQ | AQ | SQ | s/frame (median) |",
        "|---|---|---|--:|--:|--:|--:|",
    ]
    for cue_name in cues:
        for row, name in enumerate(ROWS, start=1):
            paths = [work / f"{cue_name}-row{row}-seed{s}" / "scores.json" for s in seeds]
            found = [json.loads(p.read_text()) for p in paths if p.is_file()]
            if not found:
                continue
            cells = []
            for key in ("STQ", "AQ", "SQ"):
                values = [f[key] for f in found]
                sd = statistics.stdev(values) if len(values) > 1 else float("nan")
                cells.append(f"{statistics.mean(values):.2f} ± {sd:.2f}")
            per_frame = statistics.median(f["seconds_per_frame"] for f in found)
            row_cells = [cue_name, name, str(len(found)), *cells, f"{per_frame:.2f}"]
            lines.append("| " + " | ".join(row_cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="synthetic dataset root")
    parser.add_argument("--work", type=Path, default=Path("runs/ablation-pseudo-labels"))
    parser.add_argument("--sequences", default=None, help="comma-separated subset of val")
    parser.add_argument("--cues", default=",".join(CUES), help=f"cue settings ({', '.join(CUES)})")
    parser.add_argument("--seeds", default="0,1,2", help="stage-1 seeds")
    parser.add_argument("--shard", default="1/1", help="K/N: every N-th seed from the K-th")
    args = parser.parse_args()
    args.wanted = tuple(args.sequences.split(",")) if args.sequences else None
    cues = args.cues.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    shard, shards = (int(n) for n in args.shard.split("/"))
    for seed in seeds[shard - 1 :: shards]:
        for cue_name in cues:
            first = None
            for row in range(1, len(ROWS) + 1):
                run_dir = run_row(args, cue_name, row, seed, first)
                first = first or run_dir
    print(summary_table(args.work, cues, seeds))


if __name__ == "__main__":
    main()
