"""Table 4 of the paper on the synthetic dataset: VideoCUPS training, one component at a time.

Rows 1-4 (each adds one component): vanilla training → + Video DropLoss → + video copy-paste (from
the pseudo-labels) → + self-enhanced copy-paste (full), at the paper's tau_IoU 0.5; row 5 is the
small config's synthetic default (tau_IoU 0.01, plain copy-paste, score threshold 0.05). The
pseudo-labels of the training split are made once and shared by every row; each row trains the
``small`` config (or ``--config``) and predicts the val split, which is scored against the ground
truth. For reference it also scores the pseudo-labels of the val split itself (same stage 1
settings), so the claim "the trained model generalises beyond its pseudo-labels" can be read
off: the rows' STQ vs the pseudo-labels' STQ.

Run: ``python benchmarks/ablation_training.py --root DATA/synthetic [--set optim.steps=600]``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from vpsbench.datasets import open_dataset
from vpsbench.evaluation import EvaluationJob, EvaluationSettings, evaluate
from vpsbench.methods.runner import RunRequest, run_method
from vpsbench.predictions import PredictionSource

ROWS = {
    # The paper's rows (Table 4) at the paper's tau_IoU 0.5 and CUPS' score threshold 0.5 (the
    # small config's defaults differ since issue 14's runs: see the config's header).
    "vanilla training": [
        "loss.drop_loss=false",
        "augment.copy_paste=none",
        "model.score_threshold=0.5",
    ],
    "+ Video DropLoss": [
        "loss.drop_loss=true",
        "loss.drop_loss_iou=0.5",
        "augment.copy_paste=none",
        "model.score_threshold=0.5",
    ],
    "+ video copy-paste": [
        "loss.drop_loss=true",
        "loss.drop_loss_iou=0.5",
        "augment.copy_paste=plain",
        "model.score_threshold=0.5",
    ],
    "+ self-enhanced copy-paste (full)": [
        "loss.drop_loss=true",
        "loss.drop_loss_iou=0.5",
        "augment.copy_paste=self-enhanced",
        "model.score_threshold=0.5",
    ],
    # Not in the paper's table: the small config's default on synthetic (CutLER's tau 0.01,
    # pseudo-label copy-paste throughout, detectron2's test threshold 0.05).
    "small-config default (tau 0.01, plain copy-paste, threshold 0.05)": [],
}
PSEUDO_LABEL = "pseudo-label"


def score(root: Path, folder: Path, split: str = "val") -> dict[str, float]:
    """STQ, AQ, SQ (%) of a prediction folder on the synthetic split."""
    dataset = open_dataset("synthetic", root)
    job = EvaluationJob(dataset, split, PredictionSource.open(folder, "step"))
    result = evaluate(job, EvaluationSettings(metrics=("stq",)))
    return {"STQ": 100 * result.stq.stq, "AQ": 100 * result.stq.aq, "SQ": 100 * result.stq.sq}


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
        help="training override SECTION.KEY=VALUE (repeatable)",
    )
    parser.add_argument("--rows", default=None, help="comma-separated row numbers (1-5)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    common = ("flow=dis", f"train_config={args.config}")

    # Stage 1 once: pseudo-labels of the training split, and of val for reference.
    shared = args.work / "pseudo-labels-train"
    started = time.perf_counter()
    run_method(
        RunRequest(
            "videocups",
            "synthetic",
            args.root,
            overrides=common,
            stages=(PSEUDO_LABEL,),
            run_dir=shared,
        ),
        log=lambda _: None,
    )
    label_seconds = time.perf_counter() - started
    reference = args.work / "pseudo-labels-val"
    run_method(
        RunRequest(
            "videocups",
            "synthetic",
            args.root,
            overrides=(*common, "train_split=val"),
            stages=(PSEUDO_LABEL,),
            run_dir=reference,
        ),
        log=lambda _: None,
    )
    rows: list[dict[str, object]] = [
        {
            "configuration": "pseudo-labels (val)",
            **score(args.root, reference / PSEUDO_LABEL / "labels"),
            "train_seconds": 0.0,
            "predict_seconds": 0.0,
        }
    ]
    print(json.dumps(rows[-1] | {"label_seconds_train_split": label_seconds}), flush=True)
    wanted = {int(n) for n in args.rows.split(",")} if args.rows else set(range(1, len(ROWS) + 1))
    for number, (name, switches) in enumerate(ROWS.items(), start=1):
        if number not in wanted:
            continue
        run_dir = args.work / f"row{number}"
        if not (run_dir / PSEUDO_LABEL).is_dir():
            shutil.copytree(shared / PSEUDO_LABEL, run_dir / PSEUDO_LABEL)
            shutil.copytree(shared / "done" / PSEUDO_LABEL, run_dir / "done" / PSEUDO_LABEL)
        train_set = ",".join([*switches, *args.overrides])
        overrides = (*common, f"train_set={train_set}")
        timings: dict[str, float] = {}
        for stage in ("train", "predict"):
            started = time.perf_counter()
            run_method(
                RunRequest(
                    "videocups",
                    "synthetic",
                    args.root,
                    overrides=overrides,
                    stages=(PSEUDO_LABEL, stage),
                    run_dir=run_dir,
                ),
                log=lambda _: None,
            )
            timings[stage] = time.perf_counter() - started
        results = json.loads((run_dir / "results.json").read_text())["metrics"]
        rows.append(
            {
                "configuration": name,
                "STQ": 100 * results["STQ"],
                "AQ": 100 * results["AQ"],
                "SQ": 100 * results["SQ"],
                "train_seconds": timings["train"],
                "predict_seconds": timings["predict"],
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    print("\n| configuration | STQ | AQ | SQ | train s | predict s |\n|---|--:|--:|--:|--:|--:|")
    for row in rows:
        print(
            f"| {row['configuration']} | {row['STQ']:.1f} | {row['AQ']:.1f} | {row['SQ']:.1f} "
            f"| {row['train_seconds']:.0f} | {row['predict_seconds']:.0f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
