"""Table 4 of the paper on the synthetic dataset: VideoCUPS training, one component at a time.

Rows (each adds one component, as in the paper): vanilla training → + Video DropLoss (at
tau_IoU 0.01, CutLER's; 0.4; and 0.5, the paper's) → + video copy-paste of the pseudo-labels →
+ self-enhanced copy-paste (the full recipe, tau_IoU 0.5). Every row is trained with each seed
(``optim.seed``) and scored on val at every score threshold (0.05, detectron2's test default, and
0.5, CUPS'): the model is trained once per seed and predicted once per threshold. The table gives
mean ± sd over the seeds (sample sd).

The pseudo-labels of the training split are made once (stage 1 seed 0) and shared by every run;
the val pseudo-labels are scored as the reference row, so "training improves on its pseudo-labels"
can be read off. Each run lives in its own folder under ``--work`` and is skipped when its
``results.json`` exists, so the script resumes, and ``--shard K/N`` splits the runs between N
processes (run them side by side, then once more without ``--shard`` for the whole table).

Run: ``python benchmarks/ablation_training.py --root DATA/synthetic [--set optim.steps=600]``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
from collections.abc import Sequence
from pathlib import Path

from vpsbench.datasets import open_dataset
from vpsbench.evaluation import EvaluationJob, EvaluationSettings, evaluate
from vpsbench.methods.runner import RunRequest, run_method
from vpsbench.predictions import PredictionSource

ROWS = {
    "1 vanilla training": ["loss.drop_loss=false", "augment.copy_paste=none"],
    **{
        f"2 + Video DropLoss (tau {tau})": [
            "loss.drop_loss=true",
            f"loss.drop_loss_iou={tau}",
            "augment.copy_paste=none",
        ]
        for tau in ("0.01", "0.4", "0.5")
    },
    "3 + video copy-paste (tau 0.5)": [
        "loss.drop_loss=true",
        "loss.drop_loss_iou=0.5",
        "augment.copy_paste=plain",
    ],
    "4 + self-enhanced copy-paste (full, tau 0.5)": [
        "loss.drop_loss=true",
        "loss.drop_loss_iou=0.5",
        "augment.copy_paste=self-enhanced",
    ],
}
PSEUDO_LABEL = "pseudo-label"
METRICS = ("STQ", "AQ", "SQ", "VPQ")


def score_labels(root: Path, folder: Path, split: str = "val") -> dict[str, float]:
    """STQ, AQ, SQ (%) of a label folder (STEP PNGs) on the synthetic split."""
    dataset = open_dataset("synthetic", root)
    job = EvaluationJob(dataset, split, PredictionSource.open(folder, "step"))
    result = evaluate(job, EvaluationSettings(metrics=("stq",)))
    return {"STQ": 100 * result.stq.stq, "AQ": 100 * result.stq.aq, "SQ": 100 * result.stq.sq}


def run_dir_name(row: int, seed: int, threshold: str) -> str:
    """The folder of one (row, seed, threshold) run."""
    return f"row{row}-seed{seed}-thr{threshold}"


def copy_done_stages(source: Path, target: Path, stages: Sequence[str]) -> None:
    """Seed ``target`` with ``source``'s finished stages, so the run resumes after them."""
    for stage in stages:
        if not (target / stage).is_dir():
            shutil.copytree(source / stage, target / stage)
        if not (target / "done" / stage).exists():
            shutil.copytree(source / "done" / stage, target / "done" / stage)


def run_one(
    args: argparse.Namespace, row: int, seed: int, threshold: str, first: str | None
) -> None:
    """Train (or reuse the model of the ``first`` threshold's folder) and predict one cell."""
    run_dir = args.work / run_dir_name(row, seed, threshold)
    if (run_dir / "results.json").is_file():
        return
    switches = list(ROWS.values())[row - 1]
    copy_done_stages(args.work / "pseudo-labels-train", run_dir, (PSEUDO_LABEL,))
    if first is not None:  # the same model, predicted at another threshold
        copy_done_stages(args.work / run_dir_name(row, seed, first), run_dir, ("train",))
    train_set = ",".join(
        [*switches, f"optim.seed={seed}", f"model.score_threshold={threshold}", *args.overrides]
    )
    run_method(
        RunRequest(
            "videocups",
            "synthetic",
            args.root,
            overrides=(*args.common, f"train_set={train_set}"),
            run_dir=run_dir,
        ),
        log=lambda _: None,
    )
    print(f"done {run_dir}", flush=True)


def summary_table(work: Path, seeds: Sequence[int], thresholds: Sequence[str]) -> str:
    """Markdown: mean ± sd over the seeds found, per row and threshold, from the runs' results."""
    lines = [
        "| configuration | score thr. | seeds | " + " | ".join(METRICS) + " | train s (median) |",
        "|---|---|---|" + "--:|" * (len(METRICS) + 1),
    ]
    for row, name in enumerate(ROWS, start=1):
        trained = [work / run_dir_name(row, seed, thresholds[0]) / "run.json" for seed in seeds]
        stages = [json.loads(path.read_text())["stages"] for path in trained if path.is_file()]
        train_seconds = [done["train"]["seconds"] for done in stages if "train" in done]
        for threshold in thresholds:
            results = [work / run_dir_name(row, seed, threshold) / "results.json" for seed in seeds]
            metrics = [json.loads(p.read_text())["metrics"] for p in results if p.is_file()]
            if not metrics:
                continue
            cells = []
            for key in METRICS:
                values = [100 * m[key] for m in metrics]
                sd = statistics.stdev(values) if len(values) > 1 else float("nan")
                cells.append(f"{statistics.mean(values):.2f} ± {sd:.2f}")
            seconds = f"{statistics.median(train_seconds):.0f}" if train_seconds else "—"
            row_cells = [name, threshold, str(len(metrics)), *cells, seconds]
            lines.append("| " + " | ".join(row_cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="synthetic dataset root")
    parser.add_argument("--work", type=Path, default=Path("runs/ablation-training"))
    parser.add_argument("--config", default="small", help="training config name or YAML")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        help="training override SECTION.KEY=VALUE for every row (repeatable)",
    )
    parser.add_argument("--rows", default=None, help=f"comma-separated row numbers (1-{len(ROWS)})")
    parser.add_argument("--seeds", default="0,1,2", help="training seeds (optim.seed)")
    parser.add_argument("--thresholds", default="0.05,0.5", help="test score thresholds")
    parser.add_argument("--shard", default="1/1", help="K/N: run every N-th run from the K-th")
    parser.add_argument("--workers", type=int, default=1, help="worker processes per run")
    args = parser.parse_args()
    args.common = ("flow=dis", f"train_config={args.config}", f"workers={args.workers}")
    seeds = [int(s) for s in args.seeds.split(",")]
    thresholds = args.thresholds.split(",")
    wanted = [int(n) for n in args.rows.split(",")] if args.rows else range(1, len(ROWS) + 1)
    shard, shards = (int(n) for n in args.shard.split("/"))

    # Stage 1 once (seed 0): pseudo-labels of the training split, and of val for reference.
    for folder, split in (("pseudo-labels-train", "train"), ("pseudo-labels-val", "val")):
        run_method(
            RunRequest(
                "videocups",
                "synthetic",
                args.root,
                overrides=(*args.common, f"train_split={split}"),
                stages=(PSEUDO_LABEL,),
                run_dir=args.work / folder,
            ),
            log=lambda _: None,
        )
    cells = [(row, seed) for seed in seeds for row in wanted]
    for row, seed in cells[shard - 1 :: shards]:
        for index, threshold in enumerate(thresholds):
            run_one(args, row, seed, threshold, None if index == 0 else thresholds[0])

    reference = score_labels(args.root, args.work / "pseudo-labels-val" / PSEUDO_LABEL / "labels")
    print(
        "\nval pseudo-labels (stage 1 seed 0): "
        + " / ".join(f"{k} {v:.2f}" for k, v in reference.items())
    )
    print(summary_table(args.work, seeds, thresholds))


if __name__ == "__main__":
    main()
