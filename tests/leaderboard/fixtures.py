"""Real records for leaderboard tests: one evaluated on a tiny KITTI-STEP copy, others reported."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from tests import layouts
from vpsbench.datasets import open_dataset
from vpsbench.evaluation import EvaluationJob, evaluate
from vpsbench.formats.step import write_step_png
from vpsbench.predictions import PredictionSource
from vpsbench.records import Citation, Link, Metrics, Protocol, ResultRecord, record_from_results
from vpsbench.results import result_to_dict
from vpsbench.video import PanopticFrame

STAMP = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
XSS_NAME = "<img src=x onerror=alert(1)>"
SCRIPT_NAME = "<script>alert(1)</script>"
SEQUENCES = ("0002", "0006")


def write_tiny_kitti_step(data_root: Path) -> Path:
    """A KITTI-STEP val split of two 3-frame sequences at ``data_root/kitti-step``."""
    rng = np.random.default_rng(7)
    sequences = {}
    for name in SEQUENCES:
        frames = []
        for _ in range(3):
            semantic = rng.choice([0, 1, 2, 8, 11, 13], size=(12, 16))
            instance = np.where(np.isin(semantic, (11, 13)), rng.integers(1, 4, (12, 16)), 0)
            frames.append(PanopticFrame.from_arrays(semantic, instance))
        sequences[name] = frames
    return layouts.write_kitti_step(data_root / "kitti-step", "val", sequences)


def write_predictions(dataset_root: Path, out: Path, seed: int = 3) -> Path:
    """Noisy pseudo-class predictions (STEP PNGs) for every frame of the tiny split."""
    rng = np.random.default_rng(seed)
    dataset = open_dataset("kitti-step", dataset_root)
    for sequence in dataset.sequences("val"):
        for frame in sequence.frames:
            truth = dataset.load_ground_truth("val", frame)
            semantic = np.where(truth.semantic < 0, 0, truth.semantic)
            noisy = np.where(rng.random(semantic.shape) < 0.15, 2, semantic)
            pseudo = (noisy * 5 + 1) % 23
            instance = np.where(truth.instance > 0, truth.instance % 5 + 1, 0)
            write_step_png(
                out / sequence.name / f"{frame.name}.png",
                PanopticFrame.from_arrays(pseudo, instance),
            )
    return out


def evaluated_results(dataset_root: Path, predictions: Path) -> dict[str, Any]:
    """The evaluator's results document for the tiny split."""
    job = EvaluationJob(
        open_dataset("kitti-step", dataset_root), "val", PredictionSource.open(predictions, "step")
    )
    return result_to_dict(evaluate(job, sequences=SEQUENCES))  # a deliberate subset


def reproduced_record(results: dict[str, Any], method: str = "tiny-method") -> ResultRecord:
    """A reproduced record (per-class and per-sequence numbers) from a results document."""
    return record_from_results(
        results,
        method,
        "1.0",
        method_name="Tiny Method",
        method_commit="0123456789abcdef0123456789abcdef01234567",
        links=[Link(label="code", url="https://example.org/tiny")],
        hardware="test machine",
        timestamp=STAMP,
    )


def reported_record(
    method: str = "paper-method",
    name: str = "Paper Method",
    numbers: tuple[float, float, float] = (0.373, 0.436, 0.32),
    dataset: str = "kitti-step",
    split: str = "val",
    links: tuple[Link, ...] = (),
) -> ResultRecord:
    """A reported record (rounded to 0.1 %) with a citation."""
    stq, aq, sq = numbers
    return ResultRecord(
        method=method,
        method_name=name,
        method_version="paper",
        dataset=dataset,
        split=split,
        protocol=Protocol(matching="hungarian-thing-stuff"),
        metrics=Metrics(stq=stq, aq=aq, sq=sq),
        precision=0.001,
        timestamp=STAMP,
        provenance="reported",
        citation=Citation(text="A. Author: A Paper", locator="Table 9"),
        links=list(links),
        notes=f"notes with markup {XSS_NAME}",
    )


def write_store(folder: Path) -> tuple[Path, Path, Path]:
    """A store with a reproduced, a reported and a markup-named record.

    Returns (store, predictions root laid out for ``verify``, data root for ``$VPSBENCH_DATA``).
    """
    from vpsbench.leaderboard.store import submit_record

    data_root = folder / "data"
    dataset_root = write_tiny_kitti_step(data_root)
    pred_root = folder / "predictions"
    predictions = write_predictions(dataset_root, pred_root / "tiny-method" / "kitti-step-val")
    store = folder / "store"
    submit_record(store, reproduced_record(evaluated_results(dataset_root, predictions)))
    submit_record(store, reported_record())
    submit_record(
        store,
        reported_record(
            method="xss-probe",
            name=XSS_NAME,
            numbers=(0.2, 0.1, 0.4),
            links=(Link(label=XSS_NAME, url="https://example.org/?q=1&r=2"),),
        ),
    )
    return store, pred_root, data_root
