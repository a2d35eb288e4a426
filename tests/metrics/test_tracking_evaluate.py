"""`vpsbench evaluate --metrics hota,clear,identity` on KITTI-MOTS files equals TrackEval's own run.

A random KITTI-MOTS split (cars, pedestrians, the 10000 ignore region) is written in the dataset's
on-disk format, predictions with pseudo-classes as STEP pngs. vpsbench evaluates them end to end
(matching included); TrackEval's Evaluator then reads the same ground truth and the predictions
(relabelled with vpsbench's pseudo-class mapping, since TrackEval has no matching) as KITTI-MOTS
txt files and scores them with its HOTA, CLEAR and Identity classes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests import layouts
from tests.cli_runner import run_cli
from tests.metrics.trackeval_oracle import summary
from vpsbench.datasets import open_dataset
from vpsbench.formats.step import write_step_png
from vpsbench.video import PanopticFrame

trackeval = pytest.importorskip("trackeval", reason="trackeval is not installed (dev extra)")
mask_utils = pytest.importorskip("pycocotools.mask", reason="pycocotools is not installed")

HEIGHT, WIDTH = 30, 48
BACKGROUND_PSEUDO, CAR_PSEUDO, PERSON_PSEUDO = 5, 8, 9
IGNORE_ID = 10000


def random_sequence(
    rng: np.random.Generator, frames: int
) -> tuple[list[np.ndarray], list[PanopticFrame]]:
    """KITTI-MOTS object-id maps and a noisy pseudo-class prediction of them."""
    tracks = []
    for k in range(6):
        cls = int(rng.integers(1, 3))
        top, left = int(rng.integers(0, HEIGHT - 6)), int(rng.integers(0, WIDTH - 8))
        tracks.append([cls, cls * 1000 + k, top, left, int(rng.integers(4, 10)), k + 1])
    next_id = 20
    ids_out, preds = [], []
    for _ in range(frames):
        ids = np.zeros((HEIGHT, WIDTH), dtype=np.int64)
        semantic = np.full((HEIGHT, WIDTH), BACKGROUND_PSEUDO, dtype=np.int32)
        instance = np.zeros((HEIGHT, WIDTH), dtype=np.int32)
        for track in tracks:
            track[2] = int(np.clip(track[2] + rng.integers(-2, 3), 0, HEIGHT - 3))
            track[3] = int(np.clip(track[3] + rng.integers(-2, 3), 0, WIDTH - 3))
            if rng.random() < 0.15:
                track[5] = next_id if rng.random() < 0.7 else int(rng.integers(1, 7))
                next_id += 1
            cls, obj, top, left, size, pred_id = track
            if rng.random() < 0.9:
                ids[top : top + size, left : left + size + 2] = obj
            if rng.random() < 0.85:
                dy, dx = (int(v) for v in rng.integers(-1, 2, size=2))
                pseudo = CAR_PSEUDO if (cls == 1) != (rng.random() < 0.1) else PERSON_PSEUDO
                rows = slice(max(0, top + dy), max(0, top + dy + size))
                cols = slice(max(0, left + dx), max(0, left + dx + size + 2))
                semantic[rows, cols] = pseudo
                instance[rows, cols] = pred_id
        top, left = int(rng.integers(0, HEIGHT - 8)), int(rng.integers(0, WIDTH - 10))
        ids[top : top + 8, left : left + 10] = IGNORE_ID
        if rng.random() < 0.6:  # a prediction inside the ignore region
            semantic[top + 1 : top + 7, left + 1 : left + 8] = PERSON_PSEUDO
            instance[top + 1 : top + 7, left + 1 : left + 8] = next_id
            next_id += 1
        for _ in range(int(rng.integers(0, 2))):  # false positives
            top, left = int(rng.integers(0, HEIGHT - 4)), int(rng.integers(0, WIDTH - 4))
            semantic[top : top + 4, left : left + 4] = CAR_PSEUDO
            instance[top : top + 4, left : left + 4] = next_id
            next_id += 1
        ids_out.append(ids)
        preds.append(PanopticFrame.from_arrays(semantic, instance))
    return ids_out, preds


def _rle(mask: np.ndarray) -> str:
    counts: bytes = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"]
    return counts.decode("utf-8")


def write_trackeval_txt(path: Path, frames: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """KITTI-MOTS txt lines ``frame id class height width rle`` of (class map, id map) frames."""
    lines = []
    for t, (classes, ids) in enumerate(frames):
        for obj in np.unique(ids[ids > 0]):
            mask = ids == obj
            cls = int(classes[mask][0])
            lines.append(f"{t} {int(obj)} {cls} {HEIGHT} {WIDTH} {_rle(mask)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def run_trackeval(gt: Path, trackers: Path, lengths: dict[str, int]) -> dict[str, Any]:
    """TrackEval's KITTI-MOTS evaluation of tracker ``ours``: ``{class: {metric: res}}``."""
    dataset = trackeval.datasets.KittiMOTS(
        {
            "GT_FOLDER": str(gt),
            "TRACKERS_FOLDER": str(trackers),
            "OUTPUT_FOLDER": str(trackers.parent / "trackeval-out"),
            "TRACKERS_TO_EVAL": ["ours"],
            "SEQ_INFO": lengths,
            "PRINT_CONFIG": False,
        }
    )
    evaluator = trackeval.Evaluator(
        {
            "PRINT_RESULTS": False,
            "PRINT_CONFIG": False,
            "TIME_PROGRESS": False,
            "OUTPUT_SUMMARY": False,
            "OUTPUT_DETAILED": False,
            "PLOT_CURVES": False,
            "LOG_ON_ERROR": None,
        }
    )
    metrics = [
        trackeval.metrics.HOTA(),
        trackeval.metrics.CLEAR({"PRINT_CONFIG": False}),
        trackeval.metrics.Identity({"PRINT_CONFIG": False}),
    ]
    results, _ = evaluator.evaluate([dataset], metrics)
    by_sequence = results["KittiMOTS"]["ours"]
    return {
        "combined": by_sequence["COMBINED_SEQ"],
        "per_sequence": {s: v for s, v in by_sequence.items() if s != "COMBINED_SEQ"},
    }


def test_evaluate_cli_tracking_metrics_equal_trackeval(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(7)
    sequences = {name: random_sequence(rng, frames) for name, frames in (("0002", 6), ("0006", 4))}
    root = layouts.write_kitti_mots(
        tmp_path / "data", "val", {name: ids for name, (ids, _) in sequences.items()}
    )
    dataset = open_dataset("kitti-mots", root)
    for sequence in dataset.sequences("val"):
        for frame, pred in zip(sequence.frames, sequences[sequence.name][1], strict=True):
            write_step_png(tmp_path / "preds" / sequence.name / f"{frame.name}.png", pred)
    output = tmp_path / "results.json"
    arguments = ["evaluate", "--pred", str(tmp_path / "preds"), "--dataset", "kitti-mots"]
    arguments += ["--root", str(root), "--split", "val", "--output", str(output), "--quiet"]
    code, out, err = run_cli(
        [*arguments, "--metrics", "stq,hota,clear,identity", "--sequences", "0002,0006"],
        capsys,
    )
    assert code == 0, err
    assert "HOTA" in out and "MOTSA" in out
    results = json.loads(output.read_text())
    names = dataset.label_space().class_names
    mapping = {int(p): names.index(t) if t != "void" else -1 for p, t in results["mapping"].items()}
    assert mapping[CAR_PSEUDO] == names.index("car")
    assert mapping[PERSON_PSEUDO] == names.index("person")

    # The same ground truth and the mapped predictions, as TrackEval's KITTI-MOTS txt files.
    for name, (ids, preds) in sequences.items():
        write_trackeval_txt(
            tmp_path / "te-gt" / "label_02" / f"{name}.txt", [(i // 1000, i) for i in ids]
        )
        mapped = []
        for pred in preds:
            cls = np.array([mapping.get(int(p), -1) for p in range(10)])[pred.semantic]
            tracked = (cls > 0) & (pred.instance > 0)
            mapped.append((cls, np.where(tracked, cls * 1000 + pred.instance, 0)))
        write_trackeval_txt(tmp_path / "te-trackers" / "ours" / "data" / f"{name}.txt", mapped)
    lengths = {name: len(ids) for name, (ids, _) in sequences.items()}
    reference = run_trackeval(tmp_path / "te-gt", tmp_path / "te-trackers", lengths)

    tracking = results["metrics"]["tracking"]
    compared = 0
    for ours_name, theirs_name in (("car", "car"), ("person", "pedestrian")):
        for metric in ("HOTA", "CLEAR", "Identity"):
            expected = summary(metric, reference["combined"][theirs_name][metric])
            for field, value in expected.items():
                assert tracking["per_class"][ours_name][field] == pytest.approx(value, abs=1e-9), (
                    ours_name,
                    metric,
                    field,
                )
                compared += 1
            for sequence, classes in reference["per_sequence"].items():
                expected = summary(metric, classes[theirs_name][metric])
                ours = tracking["per_sequence"][sequence][ours_name]
                for field, value in expected.items():
                    assert ours[field] == pytest.approx(value, abs=1e-9), (sequence, field)
    assert compared > 60
    totals = tracking["detection_averaged"]
    assert totals["CLR_TP"] > 0 and totals["CLR_FP"] > 0 and totals["IDSW"] > 0
    assert results["metrics"]["HOTA"] == tracking["class_averaged"]["HOTA"]
